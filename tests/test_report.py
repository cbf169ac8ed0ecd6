"""The batch summary's run details and tool-error counts, the HTML report page, and its search box in Chromium."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from graph.batch.report import print_summary, summarize
from graph.batch.report_html import render_html
from tests.conftest import run_cli
from tests.ui_fixtures import chromium  # noqa: F401 - a fixture, used by name

START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
RUN = {
    "started_at": START - 1,
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "endpoints": ["gpu-1:8000", "gpu-2:8000"],
    "concurrency": 8,
    "max_steps": 4,
    "timeout": 120.0,
}


def model_step(endpoint: str = "gpu-1:8000", model: str = "Qwen/Qwen2.5-7B-Instruct") -> dict[str, Any]:
    return {"kind": "model", "model": model, "endpoint": endpoint, "status": "ok", "tokens_in": 10, "tokens_out": 5}


def tool_step(name: str, status: str = "ok", error: str | None = None) -> dict[str, Any]:
    return {"kind": "tool", "name": name, "status": status, "error": error, "recovered": False}


def row(
    i: Any,
    question: str,
    *,
    answer: str | None = "fine",
    status: str = "ok",
    error: str | None = None,
    tools: tuple[dict[str, Any], ...] = (),
    latency: float = 1500.0,
    start: float = START,
    run: dict[str, Any] | None = RUN,
    endpoint: str = "gpu-1:8000",
) -> dict[str, Any]:
    out = {
        "id": i,
        "line": i if isinstance(i, int) else 1,
        "question": question,
        "status": status,
        "answer": answer,
        "error": error,
        "stopped": None,
        "steps": [model_step(endpoint), *tools, model_step(endpoint)],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10},
        "latency_ms": latency,
        "retries": 0,
        "started_at": start,
    }
    if run is not None:
        out["run"] = run
    return out


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, so dates in the report are known."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def rows_of_a_run() -> list[dict[str, Any]]:
    weather_down = "Error: weather service unavailable, try again later."
    return [
        row(1, "What time is it in Tokyo?", answer="It is 10:00 in Tokyo.", tools=(tool_step("get_current_time"),)),
        row(
            2,
            "查询北京的天气",
            answer="抱歉，天气服务暂时不可用。",
            tools=(tool_step("get_city_weather", "error", weather_down),),
            start=START + 1,
        ),
        row(
            3,
            "<script>alert('x')</script> what is 1/0?",
            answer="Division by zero.",
            tools=(tool_step("calculate", "error", "division by zero"), tool_step("calculate", "error", "again")),
            start=START + 2,
            endpoint="gpu-2:8000",
        ),
        row(
            4,
            "slow one",
            answer=None,
            status="error",
            error="Timed out after 120s (--timeout); abandoned.",
            tools=(tool_step("get_city_weather", "error", weather_down),),
            latency=120_000.0,
            start=START + 3,
        ),
        row(5, "What is 6*7?", answer="42", tools=(tool_step("calculate"),), start=START + 4),
    ]


def test_summary_counts_answered_rows_whose_tools_failed():
    rows = rows_of_a_run()
    s = summarize(rows)
    assert (s.total, s.ok, s.failed, s.ok_with_tool_errors) == (5, 4, 1, 2)  # a failed row is not counted twice
    assert dict(s.lines())["ok"] == "4 (80%) · 2 with tool errors"
    del rows[1]["steps"][1]  # its tool call succeeded after all
    assert dict(summarize(rows).lines())["ok"] == "4 (80%) · 1 with tool errors"
    clean = summarize([row(1, "hi"), row(2, "ho", tools=(tool_step("calculate"),))])
    assert clean.ok_with_tool_errors == 0 and dict(clean.lines())["ok"] == "2 (100%)"


def test_terminal_summary_shows_the_run_and_the_tool_errors(utc):
    out = io.StringIO()
    print_summary(summarize(rows_of_a_run()), Console(file=out, width=140), run=True)
    text = out.getvalue()
    assert "4 (80%) · 2 with tool errors" in text and "Qwen/Qwen2.5-7B-Instruct" in text
    assert "gpu-1:8000 (8 calls), gpu-2:8000 (2 calls)" in text and "120s" in text
    assert "2023-11-14 22:13:20 – 22:15:23 +0000" in text  # the first row's start to the last row's end


def test_run_details_come_from_the_rows_and_are_unknown_for_old_files(utc):
    resumed = rows_of_a_run()
    later = {**RUN, "started_at": START + 86_400, "concurrency": 2, "timeout": None}
    resumed.append(row(6, "again", start=START + 86_400, run=later))
    lines = dict(summarize(resumed).run_lines())
    assert lines["concurrency"] == "8, 2" and lines["max steps"] == "4" and lines["timeout"] == "120s, none"
    assert lines["runs"] == "2 (1 resume)" and lines["date"] == "2023-11-14 22:13:20 – 2023-11-15 22:13:21 +0000"

    old = [{k: v for k, v in r.items() if k != "run"} for r in rows_of_a_run()]  # written before rows had `run`
    lines = dict(summarize(old).run_lines())
    assert lines["model"] == "Qwen/Qwen2.5-7B-Instruct"  # from the model steps
    assert lines["endpoint"] == "gpu-1:8000 (8 calls), gpu-2:8000 (2 calls)"
    assert (lines["concurrency"], lines["max steps"], lines["timeout"], lines["runs"]) == ("unknown",) * 4
    assert lines["date"] == "2023-11-14 22:13:20 – 22:15:23 +0000"

    bare = dict(summarize([{"id": 1, "status": "error", "error": "line 1: empty line", "steps": []}]).run_lines())
    assert set(bare.values()) == {"unknown"}


def test_html_report_has_the_run_rows_errors_and_a_search_box_and_escapes_everything(utc):
    rows = rows_of_a_run()
    page = render_html(summarize(rows), rows, "Batch report: a&b.jsonl")
    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page
    for text in (
        "Qwen/Qwen2.5-7B-Instruct",
        "gpu-1:8000 (8 calls), gpu-2:8000 (2 calls)",
        "2023-11-14 22:13:20 – 22:15:23 +0000",
        "<th>concurrency</th><td>8</td>",
        "<th>max steps</th><td>4</td>",
        "<th>timeout</th><td>120s</td>",
        "4 (80%) · 2 with tool errors",
    ):
        assert text in page, text
    for r in rows:  # every question, with its answer or error
        assert f'<div class="clip">{escape(r["question"])}</div>' in page
        assert escape(r["answer"] or r["error"]) in page
    assert "查询北京的天气" in page and "抱歉，天气服务暂时不可用。" in page  # Chinese as text, not entities
    assert page.count('<tr class="tool-errors" data-status="tool-errors">') == 2
    assert page.count('<tr class="error" data-status="error">') == 1 and "ok · 2 tool errors" in page
    assert "Timed out after 120s (--timeout); abandoned." in page and "calculate: division by zero" in page
    assert '<span class="tool bad">calculate ✗</span>' in page and "<h2>Errors</h2>" in page
    # the question's <script> is text; the page's own search script is the only one
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and page.count("<script") == 1
    assert '<input type="search" id="q"' in page and '<option value="tool-errors">' in page
    assert "a&amp;b.jsonl" in page and 'class="bar"' in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch: works offline

    old = [{k: v for k, v in r.items() if k != "run"} for r in rows]
    assert "<th>concurrency</th><td class=dim>unknown</td>" in render_html(summarize(old), old, "old")


def test_report_never_writes_the_page_over_the_rows_or_another_file(tmp_path: Path):
    out = tmp_path / "a.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows_of_a_run()), encoding="utf-8")
    before = out.read_bytes()
    other = tmp_path / "questions.csv"
    other.write_bytes(before)
    for target in (out, other):
        proc = run_cli("report", str(out), "--html", str(target))
        assert proc.returncode == 2 and "that file exists and is not an .html page" in proc.stderr, proc.stderr
        assert target.read_bytes() == before and "Traceback" not in proc.stderr
    page = tmp_path / "old-report.html"
    page.write_text("an old report")
    proc = run_cli("report", str(out), "--html", str(page))  # an earlier report is simply replaced
    assert proc.returncode == 0, proc.stderr
    assert "2 with tool errors" in proc.stdout and "查询北京的天气" in page.read_text(encoding="utf-8")


@pytest.mark.browser
@pytest.mark.slow
def test_the_search_box_and_status_filter_narrow_the_rows_in_chromium(chromium: Any, tmp_path: Path):  # noqa: F811
    from playwright.sync_api import expect

    rows = rows_of_a_run()
    path = tmp_path / "report.html"
    path.write_text(render_html(summarize(rows), rows, "Batch report"), encoding="utf-8")
    context = chromium.new_context(offline=True)  # the page must need nothing from the network
    try:
        page = context.new_page()
        page.goto(path.as_uri())
        visible = page.locator("#rows tbody tr:visible td.id")
        expect(page.locator("#shown")).to_have_text("5 of 5 rows")
        page.fill("#q", "北京")
        expect(visible).to_have_text(["2"])
        page.fill("#q", "CALCULATE")  # case-insensitive, over the tools column too
        expect(visible).to_have_text(["3", "5"])
        page.fill("#q", "calculate zero")  # every word must match
        expect(visible).to_have_text(["3"])
        page.fill("#q", "")
        page.select_option("#st", "tool-errors")
        expect(visible).to_have_text(["2", "3"])
        expect(page.locator("#shown")).to_have_text("2 of 5 rows")
        page.select_option("#st", "error")
        expect(visible).to_have_text(["4"])
        assert page.evaluate("document.querySelectorAll('script').length") == 1  # the question's <script> is text
    finally:
        context.close()
