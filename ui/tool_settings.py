"""The tool settings' pure parts: the tool and server choices, the tools a turn may use, policies, problems."""

from __future__ import annotations

from collections.abc import Sequence

from configs.secrets import extra_secrets
from tools.mcp import RETRY_AFTER, ServerStatus
from tools.toolbox import ToolInfo

POLICIES = ["default", "auto", "ask", "deny"]
"""The policy radio: `default` leaves the tool's own policy (config file, then its hints)."""
POLICY_MARKS = {"auto": "▶️ auto", "ask": "✋ ask", "deny": "⛔ deny"}
PROBLEM_HINT = (
    "The agent keeps working with the other tools. Once you have fixed it, an MCP server is tried again at "
    f"the first turn {RETRY_AFTER:g} s after it failed; a tools module when the UI restarts."
)


def _order(info: ToolInfo) -> tuple[int, str]:
    return (0 if info.source == "built-in" else 2 if info.server else 1, info.source)


def ordered(listing: Sequence[ToolInfo]) -> list[ToolInfo]:
    """Built-in tools first, then your modules', then each MCP server's (each group in its own order)."""
    return sorted(listing, key=_order)


def tool_label(info: ToolInfo) -> str:
    """A tool as the Enabled tools list shows it: built-in ones by name, the others with their source."""
    return info.name if info.source == "built-in" else f"{info.name} ({info.source})"


def tool_choices(listing: Sequence[ToolInfo]) -> list[tuple[str, str]]:
    """(label, name) of every tool, grouped by source."""
    return [(tool_label(t), t.name) for t in ordered(listing)]


def server_choices(statuses: Sequence[ServerStatus]) -> list[tuple[str, str]]:
    """(label, name) of every MCP server the config file enables, with what it is doing."""
    out = []
    for st in statuses:
        if st.state == "disabled":
            continue
        state = {"ready": f"{len(st.tools)} tools", "failed": "⚠️ unavailable"}.get(st.state, st.state)
        out.append((f"{st.name} · {state}", st.name))
    return out


def enabled_tools(
    listing: Sequence[ToolInfo],
    checked: Sequence[str] | None,
    shown: Sequence[str] | None,
    disabled_servers: Sequence[str],
) -> list[str]:
    """The tools a turn may use: the checked ones (and any not listed yet), minus those of disabled servers.

    `shown` is what the Enabled tools list offered; None means `checked` is the whole story (a caller that
    names its tools). A tool that appeared since (an MCP server that started later) is enabled.
    """
    picked = set(checked or [])
    offered = set(shown) if shown is not None else None
    names = []
    for t in listing:
        if t.server is not None and t.server in disabled_servers:
            continue
        if t.name in picked or (offered is not None and t.name not in offered):
            names.append(t.name)
    return names


def policy_table(listing: Sequence[ToolInfo], overrides: dict[str, str], enabled: Sequence[str]) -> str:
    """A Markdown table of every tool: where it comes from, whether this tab uses it, and its policy."""
    if not listing:
        return "*No tools.*"
    on = set(enabled)
    rows = ["| tool | source | policy | |", "|---|---|---|---|"]
    for t in ordered(listing):
        mark = POLICY_MARKS.get(t.policy, t.policy)
        yours = " (yours)" if t.name in overrides else ""
        state = "" if t.name in on else "off"
        rows.append(f"| `{t.name}` | {t.source} | {mark}{yours} | {state} |")
    return "\n".join(rows)


def redact(text: str) -> str:
    """`text` without the secrets of MCP servers' env and headers."""
    for secret in extra_secrets():
        text = text.replace(secret, "***")
    return text


def problems_markdown(problems: Sequence[str]) -> str:
    """The status area's warning badges: one line per tools module or MCP server that is unavailable."""
    if not problems:
        return ""
    lines = [f"⚠️ {redact(' '.join(p.split()))}" for p in problems]
    return "\n\n".join([*lines, f"*{PROBLEM_HINT}*"])
