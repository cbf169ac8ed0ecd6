"""ui.trace_view: a turn's trace records become a timeline, a table, a totals line and JSON."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import pytest

from graph.trace import Step
from ui.trace_view import ERROR_COLOR, TABLE_HEADERS, steps_table, timeline_figure, totals_markdown, trace_json

T0 = 1_700_000_000.0
MODEL = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture
def steps() -> list[Step]:
    """plan → two parallel weather calls (one failed, one recovered) → plan."""
    return [
        Step(
            kind="model",
            turn=1,
            node="plan",
            started_at=T0,
            duration_ms=500,
            model=MODEL,
            ttft_ms=48.0,
            tokens_in=300,
            tokens_out=30,
            finish_reason="tool_calls",
            tool_calls=["get_city_weather"] * 2,
        ),
        Step(
            kind="tool",
            turn=1,
            node="call_tool",
            started_at=T0 + 0.6,
            duration_ms=300,
            name="get_city_weather",
            call_id="c1",
            arguments={"city": "Paris"},
            result="21 °C",
            recovered=True,
        ),
        Step(
            kind="tool",
            turn=1,
            node="call_tool",
            started_at=T0 + 0.65,
            duration_ms=100,
            name="get_city_weather",
            call_id="c2",
            arguments={"city": "北京"},
            status="error",
            error="Error: timeout",
        ),
        Step(
            kind="model",
            turn=1,
            node="plan",
            started_at=T0 + 1.0,
            duration_ms=230,
            model=MODEL,
            ttft_ms=60.0,
            tokens_in=400,
            tokens_out=15,
            finish_reason="stop",
        ),
    ]


def bars(fig: go.Figure) -> list[go.Bar]:
    return [t for t in fig.data if isinstance(t, go.Bar)]


def test_timeline_one_bar_per_step_with_base_and_width_in_seconds(steps: list[Step]) -> None:
    fig = timeline_figure(steps)
    got = [(b.y[0], round(b.base[0], 3), round(b.x[0], 3), b.orientation) for b in bars(fig)]
    assert got == [
        ("model · plan #1", 0.0, 0.5, "h"),
        ("tool · get_city_weather #1", 0.6, 0.3, "h"),
        ("tool · get_city_weather #2", 0.65, 0.1, "h"),
        ("model · plan #2", 1.0, 0.23, "h"),
    ]
    assert "1.23 s" in fig.layout.title.text


def test_timeline_parallel_tools_overlap_failures_red_recovered_marked(steps: list[Step]) -> None:
    b = bars(timeline_figure(steps))
    paris, beijing = b[1], b[2]
    assert beijing.base[0] < paris.base[0] + paris.x[0]  # overlapping in time
    assert beijing.marker.color == ERROR_COLOR
    assert all(x.marker.color != ERROR_COLOR for x in (b[0], b[1], b[3]))
    assert paris.marker.pattern.shape == "/" and "recovered" in paris.text[0]


def test_timeline_empty() -> None:
    fig = timeline_figure([])
    assert not fig.data
    assert fig.layout.annotations[0].text == "no steps yet"


def test_timeline_serialises(steps: list[Step]) -> None:
    json.loads(timeline_figure(steps).to_json())


def test_steps_table(steps: list[Step]) -> None:
    headers, rows = steps_table(steps)
    assert (
        headers
        == TABLE_HEADERS
        == ["#", "kind", "name", "start (s)", "duration (ms)", "tokens in", "tokens out", "TTFT (ms)", "status"]
    )
    assert rows == [
        [1, "model", f"{MODEL} (plan)", 0.0, 500.0, 300, 30, 48, "ok"],
        [2, "tool", "get_city_weather (recovered)", 0.6, 300.0, "", "", "", "ok"],
        [3, "tool", "get_city_weather", 0.65, 100.0, "", "", "", "error"],
        [4, "model", f"{MODEL} (plan)", 1.0, 230.0, 400, 15, 60, "ok"],
    ]
    assert steps_table([]) == (TABLE_HEADERS, [])


def test_totals_markdown(steps: list[Step]) -> None:
    assert totals_markdown(steps) == (
        "**4 steps** · 2 model calls · 2 tool calls (1 failed) · wall 1.23 s · tokens 700 → 45 · "
        "first token 48 ms · 1 recovered from text"
    )
    one = [steps[0].model_copy(update={"tool_calls": []})]
    assert totals_markdown(one) == (
        "**1 step** · 1 model call · 0 tool calls (0 failed) · wall 0.50 s · tokens 300 → 30 · first token 48 ms"
    )
    assert totals_markdown([]) == "*No steps yet.*"


def test_trace_json_round_trips_without_secrets(steps: list[Step]) -> None:
    text = trace_json(steps, turn=1, thread_id="abc123def456")
    data = json.loads(text)
    assert set(data) == {"thread_id", "turn", "steps", "usage"}
    assert data["thread_id"] == "abc123def456" and data["turn"] == 1
    assert [Step.model_validate(s) for s in data["steps"]] == steps
    assert data["usage"] == {"prompt_tokens": 700, "completion_tokens": 45, "total_tokens": 745}
    assert "北京" in text  # not \u-escaped
    assert not re.search(r"sk-[A-Za-z0-9]{8,}|api[_-]?key|authorization|bearer|password|secret", text, re.I)
