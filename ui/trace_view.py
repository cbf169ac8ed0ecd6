"""Pure views of one turn's trace records for the trace panel: timeline, table, totals and JSON."""

from __future__ import annotations

import json
from collections import Counter

import plotly.graph_objects as go

from graph.trace import Step, usage_of

MODEL_COLOR = "#4C78A8"
TOOL_COLOR = "#54A24B"
ERROR_COLOR = "#E45756"
TABLE_HEADERS = [
    "#",
    "kind",
    "name",
    "start (s)",
    "duration (ms)",
    "tokens in",
    "tokens out",
    "TTFT (ms)",
    "status",
]
APPROVAL_HEADERS = ["server", "decision"]
"""Added to the table when a step of the turn comes from an MCP server or went through approval."""


def step_labels(steps: list[Step]) -> list[str]:
    """One unique row label per step: "model · plan #1", "tool · get_city_weather" (numbered when repeated)."""
    labels: list[str] = []
    model_calls: Counter[str] = Counter()
    tool_total = Counter(s.name for s in steps if s.kind == "tool")
    tool_seen: Counter[str | None] = Counter()
    for s in steps:
        if s.kind == "model":
            model_calls[s.node] += 1
            labels.append(f"model · {s.node} #{model_calls[s.node]}")
        else:
            tool_seen[s.name] += 1
            repeat = f" #{tool_seen[s.name]}" if tool_total[s.name] > 1 else ""
            labels.append(f"tool · {s.name}{repeat}")
    return labels


def _span(steps: list[Step]) -> tuple[float, float]:
    """(first start, last end) in epoch seconds."""
    start = min(s.started_at for s in steps)
    return start, max(s.started_at + s.duration_ms / 1000 for s in steps)


def timeline_figure(steps: list[Step]) -> go.Figure:
    """Model and tool calls as horizontal bars on a time axis (seconds since the turn's first step)."""
    fig = go.Figure()
    if not steps:
        fig.add_annotation(text="no steps yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_layout(
            title="Turn timeline",
            height=160,
            xaxis={"visible": False},
            yaxis={"visible": False},
            margin={"l": 20, "r": 20, "t": 40, "b": 20},
        )
        return fig
    t0, end = _span(steps)
    labels = step_labels(steps)
    for step, label in zip(steps, labels, strict=True):
        failed = step.status == "error"
        color = ERROR_COLOR if failed else MODEL_COLOR if step.kind == "model" else TOOL_COLOR
        width, start = step.duration_ms / 1000, step.started_at - t0
        text = f"{width:.2f} s" + (" · recovered" if step.recovered else "") + (" · failed" if failed else "")
        fig.add_trace(
            go.Bar(
                y=[label],
                x=[width],
                base=[start],
                orientation="h",
                name=label,
                marker={"color": color, "pattern": {"shape": "/" if step.recovered else ""}},
                text=[text],
                textposition="auto",
                showlegend=False,
                hovertemplate=f"{label}<br>start {start:.3f} s · {step.duration_ms:.0f} ms<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Turn timeline · {end - t0:.2f} s total",
        barmode="overlay",
        height=120 + 32 * len(steps),
        xaxis={"title": "seconds since the turn's first step", "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": labels, "autorange": "reversed"},
        margin={"l": 20, "r": 20, "t": 50, "b": 40},
    )
    return fig


def steps_table(steps: list[Step]) -> tuple[list[str], list[list]]:
    """Headers and one row per step; missing numbers are empty strings.

    A turn with MCP or approved tool calls gets two more columns: the step's server and its decision
    (`auto` for a tool call that ran by policy).
    """
    if not steps:
        return list(TABLE_HEADERS), []
    t0, _ = _span(steps)
    wide = any(s.server or s.decision for s in steps)
    rows: list[list] = []
    for i, s in enumerate(steps, 1):
        if s.kind == "model":
            name = f"{s.model or '?'} ({s.node})"
        else:
            name = f"{s.name}" + (" (recovered)" if s.recovered else "")
        rows.append(
            [
                i,
                s.kind,
                name,
                round(s.started_at - t0, 3),
                round(s.duration_ms, 1),
                "" if s.tokens_in is None else s.tokens_in,
                "" if s.tokens_out is None else s.tokens_out,
                "" if s.ttft_ms is None else round(s.ttft_ms),
                s.status,
            ]
        )
        if wide:
            rows[-1] += [s.server or "", s.decision or ("auto" if s.kind == "tool" else "")]
    return [*TABLE_HEADERS, *APPROVAL_HEADERS] if wide else list(TABLE_HEADERS), rows


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def totals_markdown(steps: list[Step]) -> str:
    """One Markdown line: steps, model and tool calls, failures, wall time, tokens, first token."""
    if not steps:
        return "*No steps yet.*"
    models = [s for s in steps if s.kind == "model"]
    tools = [s for s in steps if s.kind == "tool"]
    failed = sum(s.status == "error" for s in tools)
    t0, end = _span(steps)
    usage = usage_of(steps)
    parts = [
        f"**{_plural(len(steps), 'step')}**",
        _plural(len(models), "model call"),
        f"{_plural(len(tools), 'tool call')} ({failed} failed)",
        f"wall {end - t0:.2f} s",
        f"tokens {usage['prompt_tokens']} → {usage['completion_tokens']}",
    ]
    if (ttft := next((s.ttft_ms for s in models if s.ttft_ms is not None), None)) is not None:
        parts.append(f"first token {ttft:.0f} ms")
    if recovered := sum(s.recovered for s in tools):
        parts.append(f"{recovered} recovered from text")
    return " · ".join(parts)


def trace_json(steps: list[Step], *, turn: int, thread_id: str) -> str:
    """The turn's trace as JSON, the same records as the CLI's --json (Step holds no secrets)."""
    payload = {
        "thread_id": thread_id,
        "turn": turn,
        "steps": [s.model_dump() for s in steps],
        "usage": usage_of(steps),
    }
    return json.dumps(payload, ensure_ascii=False, indent=2)
