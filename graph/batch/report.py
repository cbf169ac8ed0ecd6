"""Summarise a batch output file: counts, latency percentiles, tokens, tool calls; print it as rich tables."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from graph.batch.outputs import count_tool_errors, denied_calls

_LINE_PREFIX = re.compile(r"^line \d+: ")
TOP_ERRORS = 5
UNKNOWN = "unknown"
"""What the report shows for a setting the rows do not record (outputs written before rows carried `run`)."""
SETTINGS = (("concurrency", "concurrency"), ("max steps", "max_steps"), ("timeout", "timeout"))


@dataclass
class Summary:
    """What a batch produced, computed from its rows (so it works for any output file, resumed or not)."""

    total: int = 0
    ok: int = 0
    ok_with_tool_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    model_calls: int = 0
    retries: int = 0
    tools: dict[str, Counter[str]] = field(default_factory=dict)
    denied: Counter[str] = field(default_factory=Counter)
    """Calls denied (they needed approval nobody could give, or their policy is deny), per tool."""
    stopped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    endpoints: Counter[str] = field(default_factory=Counter)
    runs: dict[float, dict[str, Any]] = field(default_factory=dict)
    unstamped: int = 0
    first_start: float | None = None
    last_end: float | None = None

    @property
    def failed(self) -> int:
        """Rows whose status is not ok."""
        return self.total - self.ok

    @property
    def recovered(self) -> int:
        """Tool calls recovered from <tool_call> text."""
        return sum(c["recovered"] for c in self.tools.values())

    def percentile(self, p: int) -> float | None:
        """The p-th percentile of the ok rows' latency (ms), or None without any."""
        data = sorted(self.latencies_ms)
        if len(data) < 2:
            return data[0] if data else None
        return statistics.quantiles(data, n=100, method="inclusive")[p - 1]

    def lines(self) -> list[tuple[str, str]]:
        """The summary as (label, value) pairs, for the terminal and the HTML report."""
        pct = (lambda n: f"{n} ({100 * n / self.total:.0f}%)") if self.total else str
        ps = [self.percentile(p) for p in (50, 90, 99)]
        rate = f" ({self.total / self.wall_s:.2f} questions/s)" if self.wall_s else ""
        stopped = ", ".join(f"{why.replace('_', ' ')} {n}" for why, n in self.stopped.most_common()) or "none"
        tool_errors = f" · {self.ok_with_tool_errors} with tool errors" if self.ok_with_tool_errors else ""
        return [
            ("questions", str(self.total)),
            ("ok", pct(self.ok) + tool_errors),
            ("failed", pct(self.failed)),
            ("latency p50 / p90 / p99", " / ".join("-" if v is None else f"{v / 1000:.2f}s" for v in ps)),
            ("wall time", f"{self.wall_s:.1f}s{rate}"),
            ("tokens in / out", f"{self.tokens_in:,} / {self.tokens_out:,}"),
            ("output tokens/s", f"{self.tokens_out / self.wall_s:,.1f}" if self.wall_s else "-"),
            ("model calls / retries", f"{self.model_calls} / {self.retries}"),
            ("tool calls", str(sum(c["ok"] + c["error"] for c in self.tools.values()))),
            ("recovered text tool calls", str(self.recovered)),
            ("denied tool calls", self.denied_line()),
            ("stopped early", stopped),
        ]

    def denied_line(self) -> str:
        """`0`, or `3 (write_note 2, delete_note 1)`."""
        total = sum(self.denied.values())
        if not total:
            return "0"
        return f"{total} ({', '.join(f'{name} {n}' for name, n in self.denied.most_common())})"

    def run_lines(self) -> list[tuple[str, str]]:
        """Which model and endpoints answered, when, and with which settings ("unknown" where rows do not say)."""
        runs = list(self.runs.values())
        models = self.models or Counter(str(r["model"]) for r in runs if r.get("model"))
        endpoints = self.endpoints or Counter(e for r in runs for e in r.get("endpoints") or [])
        lines = [("model", _counted(models)), ("endpoint", _counted(endpoints)), ("date", self.date())]
        for label, key in SETTINGS:
            values = list(dict.fromkeys(_setting(key, r.get(key)) for r in runs))
            lines.append((label, ", ".join(values + [UNKNOWN] * bool(self.unstamped)) or UNKNOWN))
        resumed = f" ({len(runs) - 1} resume{'s' * (len(runs) > 2)})" if len(runs) > 1 else ""
        lines.append(("runs", f"{len(runs)}{resumed}" if runs and not self.unstamped else UNKNOWN))
        return lines

    def date(self) -> str:
        """When the rows ran, in local time: `2025-01-02 10:00:00 – 10:05:12 +0800`."""
        if self.first_start is None or self.last_end is None:
            return UNKNOWN
        start, end = (datetime.fromtimestamp(t).astimezone() for t in (self.first_start, self.last_end))
        until = end.strftime("%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S")
        return f"{start:%Y-%m-%d %H:%M:%S} – {until} {end:%z}"


def _setting(key: str, value: Any) -> str:
    """One recorded setting as the report shows it: `16`, `120s`, `none` (no --timeout)."""
    if value is None:
        return "none"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}s" if key == "timeout" else f"{value:g}"
    return str(value)


def _counted(counts: Counter[str]) -> str:
    """`a` for one value; `a (9 calls), b (1 call)` for several; "unknown" for none."""
    if len(counts) < 2:
        return next(iter(counts), UNKNOWN)
    return ", ".join(f"{name} ({n} call{'s' * (n != 1)})" for name, n in counts.most_common())


def summarize(rows: list[dict[str, Any]]) -> Summary:
    """Compute the Summary of some output rows."""
    s = Summary(total=len(rows))
    spans = []
    for row in rows:
        ok = row.get("status") == "ok"
        s.ok += ok
        latency = float(row.get("latency_ms") or 0.0)
        if ok:
            s.latencies_ms.append(latency)
        s.ok_with_tool_errors += ok and count_tool_errors(row.get("steps")) > 0
        if latency and row.get("started_at"):
            spans.append((float(row["started_at"]), float(row["started_at"]) + latency / 1000))
        if row.get("started_at"):
            start = float(row["started_at"])
            s.first_start = start if s.first_start is None else min(s.first_start, start)
            s.last_end = max(s.last_end or start, start + latency / 1000)
        run = row.get("run")
        if isinstance(run, dict) and run.get("started_at") is not None:
            s.runs.setdefault(float(run["started_at"]), run)
        else:
            s.unstamped += 1
        usage = row.get("usage") or {}
        s.tokens_in += int(usage.get("prompt_tokens") or 0)
        s.tokens_out += int(usage.get("completion_tokens") or 0)
        s.retries += int(row.get("retries") or 0)
        s.denied.update(denied_calls(row.get("steps")))
        if row.get("stopped"):
            s.stopped[row["stopped"]] += 1
        if not ok:
            s.errors[_LINE_PREFIX.sub("", str(row.get("error") or "unknown error"))] += 1
        for step in row.get("steps") or []:
            if step.get("kind") == "model":
                s.model_calls += 1
                s.models[str(step.get("model") or UNKNOWN)] += 1
                if step.get("endpoint"):
                    s.endpoints[str(step["endpoint"])] += 1
            elif step.get("kind") == "tool":
                counts = s.tools.setdefault(str(step.get("name")), Counter(ok=0, error=0, recovered=0))
                counts["ok" if step.get("status") == "ok" else "error"] += 1
                counts["recovered"] += bool(step.get("recovered"))
    s.wall_s = busy_seconds(spans)
    return s


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start, end) spans: the run's wall time, without pauses between resumes."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def print_summary(
    summary: Summary, console: Console | None = None, title: str = "Batch summary", run: bool = False
) -> None:
    """Print the summary (after the run's model, endpoints, date and settings with `run`), the per-tool table
    and the most common errors as rich tables."""
    console = console or Console()
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    if run:
        for label, value in summary.run_lines():
            table.add_row(label, value, style="dim" if value == UNKNOWN else None)
        table.add_section()
    for label, value in summary.lines():
        style = {
            "failed": "red" if summary.failed else None,
            "ok": "yellow" if summary.ok_with_tool_errors else None,
            "denied tool calls": "yellow" if summary.denied else None,
        }.get(label)
        table.add_row(label, value, style=style)
    console.print(table)
    if summary.tools:
        tools = Table(title="Tool calls", title_justify="left")
        for name in ("tool", "ok", "error", "recovered"):
            tools.add_column(name, justify="left" if name == "tool" else "right")
        for name, counts in sorted(summary.tools.items()):
            tools.add_row(name, str(counts["ok"]), str(counts["error"]), str(counts["recovered"]))
        console.print(tools)
    if summary.errors:
        errors = Table(title="Most common errors", title_justify="left")
        errors.add_column("rows", justify="right")
        errors.add_column("error", overflow="fold")
        for message, n in summary.errors.most_common(TOP_ERRORS):
            errors.add_row(str(n), message)
        console.print(errors)
