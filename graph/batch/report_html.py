"""Write a batch summary as one small self-contained HTML page: numbers, latency histogram, tool table.

The histogram is hand-written inline SVG rather than plotly: plotly's self-contained HTML embeds ~4 MB of
JavaScript (and plotly is only in the `ui` extra); twenty bars of SVG are a few kilobytes and need nothing.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from graph.batch.report import TOP_ERRORS, Summary

BINS = 20
WIDTH, HEIGHT, PAD = 640, 220, 32
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:52rem}
table{border-collapse:collapse;margin:0 0 1.5rem}
td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right}.bad{color:#b00020}svg text{font-size:11px;fill:#555}rect.bar{fill:#4c78a8}
"""


def histogram_svg(latencies_ms: list[float], bins: int = BINS) -> str:
    """An inline SVG histogram of latencies in seconds (empty text when there are none)."""
    if not latencies_ms:
        return "<p>No successful rows, so no latency histogram.</p>"
    lo, hi = min(latencies_ms) / 1000, max(latencies_ms) / 1000
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for ms in latencies_ms:
        counts[min(int((ms / 1000 - lo) / width), bins - 1)] += 1
    top, bar_w = max(counts), (WIDTH - 2 * PAD) / bins
    bars = []
    for i, n in enumerate(counts):
        h = (HEIGHT - 2 * PAD) * n / top
        x, y = PAD + i * bar_w, HEIGHT - PAD - h
        tip = f"{lo + i * width:.2f}-{lo + (i + 1) * width:.2f}s: {n} rows"
        bars.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}">'
                    f"<title>{tip}</title></rect>")
    axis = (f'<text x="{PAD}" y="{HEIGHT - 12}">{lo:.2f}s</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 12}" text-anchor="end">{hi:.2f}s</text>'
            f'<text x="{PAD}" y="{PAD - 10}">{top} row{"s" * (top != 1)}</text>'
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'aria-label="latency histogram">{"".join(bars)}{axis}</svg>')


def render_html(summary: Summary, title: str) -> str:
    """The whole report page."""
    rows = "".join(
        f'<tr{" class=bad" if label == "failed" and summary.failed else ""}><th>{escape(label)}</th>'
        f"<td>{escape(value)}</td></tr>"
        for label, value in summary.lines()
    )
    tools = "".join(
        f'<tr><td>{escape(name)}</td><td class="n">{c["ok"]}</td><td class="n">{c["error"]}</td>'
        f'<td class="n">{c["recovered"]}</td></tr>'
        for name, c in sorted(summary.tools.items())
    ) or '<tr><td colspan="4">no tool calls</td></tr>'
    errors = "".join(
        f'<tr><td class="n">{n}</td><td>{escape(message)}</td></tr>'
        for message, n in summary.errors.most_common(TOP_ERRORS)
    )
    error_section = f"<h2>Most common errors</h2><table><tr><th class=n>rows</th><th>error</th></tr>{errors}</table>"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<table>{rows}</table>"
        f"<h2>Latency of successful rows</h2>{histogram_svg(summary.latencies_ms)}"
        f'<h2>Tool calls</h2><table><tr><th>tool</th><th class="n">ok</th><th class="n">error</th>'
        f'<th class="n">recovered</th></tr>{tools}</table>'
        f"{error_section if errors else ''}</body></html>\n"
    )


def write_html(summary: Summary, path: Path, title: str) -> None:
    """Write the report page to `path` (UTF-8)."""
    path.write_text(render_html(summary, title), encoding="utf-8")
