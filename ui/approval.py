"""The approval panel's pure parts: what it shows for the waiting calls, and the decision its inputs make."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from graph.events import PendingCall

Kind = Literal["approve", "edit", "reject"]

HEADER = "### ⏸️ Approval needed · 需要确认"
ONE_WAITS = "**{name}** waits for your decision: approve it, edit its arguments and run it, or reject it."
MANY_WAIT = (
    "**{count} tool calls** wait for your decision. Decide each one (pick it under *Call*); the turn goes on "
    "once all are decided."
)
BAD_JSON = (
    "The arguments are not valid JSON (line {line}, column {col}: {msg}): fix them, or press Approve to run "
    "the call as it is. Nothing was sent."
)
NOT_OBJECT = (
    'The arguments must be a JSON object, like {"title": "…"}: fix them, or press Approve to run the call as '
    "it is. Nothing was sent."
)
DESTRUCTIVE = "(marked destructive)"
"""How `graph.approval.describe` marks a call whose tool the server says is destructive."""
DESTRUCTIVE_NOTE = "⚠️ Its server marks this tool **destructive**: check the arguments before you approve."


def call_label(call: PendingCall) -> str:
    """How a waiting call is named in the panel: the tool and its server."""
    return f"{call.name} · {call.server}" if call.server else call.name


def undecided(calls: Sequence[PendingCall], decisions: dict[str, dict[str, Any]]) -> list[PendingCall]:
    """The calls that still need a decision, in the order the model asked for them."""
    return [c for c in calls if c.call_id not in decisions]


def call_choices(calls: Sequence[PendingCall], decisions: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, call id) of each undecided call, for the panel's call picker."""
    return [(call_label(c), c.call_id) for c in undecided(calls, decisions)]


def args_text(call: PendingCall | None) -> str:
    """A call's arguments as the pretty JSON the Edit box starts from."""
    return json.dumps(call.args, ensure_ascii=False, indent=2) if call is not None else ""


def decided_line(call: PendingCall, decision: dict[str, Any]) -> str:
    """One decided call, as the panel lists it until the turn goes on."""
    kind = decision.get("type")
    if kind == "edit":
        what = "edited, will run with " + json.dumps(decision["edited_action"]["args"], ensure_ascii=False)
    elif kind == "reject":
        reason = decision.get("message") or ""
        what = f"rejected: {reason}" if reason else "rejected"
    else:
        what = "approved" + (" for this conversation" if decision.get("allow_for_thread") else "")
    return f"- ✔️ `{call_label(call)}`: {what}"


def panel_markdown(calls: Sequence[PendingCall], decisions: dict[str, dict[str, Any]]) -> str:
    """The panel's text: what waits, and what this tab has already decided of it."""
    if not calls:
        return ""
    waiting = undecided(calls, decisions)
    lines = [HEADER]
    if len(calls) == 1:
        lines.append(ONE_WAITS.format(name=call_label(calls[0])))
        if DESTRUCTIVE in calls[0].description:
            lines.append(DESTRUCTIVE_NOTE)
        return "\n\n".join(lines)
    lines.append(MANY_WAIT.format(count=len(calls)))
    for call in calls:
        if call.call_id in decisions:
            lines.append(decided_line(call, decisions[call.call_id]))
        else:
            lines.append(f"- ⏳ {call.description or call_label(call)}")
    if waiting:
        lines.append(f"\nNow deciding: **{call_label(waiting[0])}**")
    return "\n".join(lines)


def parse_args(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The Edit box's text as a JSON object, or the one-line reason it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, BAD_JSON.format(line=exc.lineno, col=exc.colno, msg=exc.msg)
    if not isinstance(value, dict):
        return None, NOT_OBJECT
    return value, None


def decision_for(
    kind: Kind, call: PendingCall, args: str, reason: str, allow: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """The HITL decision the panel's inputs make for `call`, or the inline error that stops it being sent."""
    if kind == "approve":
        return {"type": "approve", "allow_for_thread": bool(allow)}, None
    if kind == "reject":
        return {"type": "reject", "message": (reason or "").strip()}, None
    parsed, error = parse_args(args or "")
    if parsed is None:
        return None, error
    return {"type": "edit", "edited_action": {"name": call.name, "args": parsed}}, None
