"""The endpoint status badge: the same checks as `work-agent doctor`, summed up in one line."""

from __future__ import annotations

from configs.settings import Settings
from graph.doctor import run_checks

START_HINT = "Start the server with `./run_vllm.sh`, or set `OPENAI_API_BASE` (or the endpoint URL in Settings)."


async def status_markdown(settings: Settings) -> str:
    """🟢 when the agent can work with the endpoint; otherwise 🔴 with what is wrong and how to fix it."""
    report = await run_checks(settings, quick=True)
    marks = {c.name: c for c in report.checks}
    if report.ok:
        tool = marks.get("tool calling")
        extra = f" ({tool.detail})" if tool is not None and tool.status == "warn" else ""
        return f"🟢 **{report.model}** at `{report.base_url}` · reachable · model served · tool calling enabled{extra}"
    failed = next(c for c in report.checks if c.status == "fail")
    fix = failed.fix or START_HINT
    if failed.name == "endpoint" and "cannot connect" in failed.detail:
        fix = START_HINT
    return f"🔴 **{failed.name}**: {failed.detail}. **Fix:** {fix}"
