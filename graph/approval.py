"""The `approve` node: a person's yes before a tool runs, in LangChain's human-in-the-loop request format.

When a call of the step needs a decision, the node pauses the graph with `interrupt()`. The interrupt's
value is a `HITLRequest` as LangChain's `HumanInTheLoopMiddleware` raises it (`action_requests` and
`review_configs`, plus each call's `tool_call_id`), so LangGraph Studio and agent-chat-ui drive the same
pause. Resume with `Command(resume={"decisions": [...]})`: one decision per action request, in order
(`{"type": "approve"}`, `{"type": "edit", "edited_action": {"name", "args"}}`, `{"type": "reject",
"message": ...}`), or a mapping from call id to decision. An approve with `"allow_for_thread": true`
stops asking about that tool in this conversation. A resume that does not fit (an unknown call id, a
wrong count, an edit of another tool) asks again, with the problem in `error`; nothing runs.

The decisions are written onto the model's message (`response_metadata["approvals"]`), where
`call_tool` reads them: approved calls run (edited ones with the new arguments), the others become tool
messages the model can read. The pause lives in the checkpoint, so it survives a reload and a restart.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from configs.settings import Settings
from graph.context import Context
from graph.state import State

Decision = Literal["auto", "allowed", "approved", "edited", "rejected", "denied", "superseded"]
"""What happened to a call: ran by policy, allowed for the thread, approved, edited, rejected, denied, or
left undecided when the user asked something else."""
ALLOWED_DECISIONS = ["approve", "edit", "reject"]

DENIED_BY_POLICY = (
    "Error: {name} is not allowed here (its approval policy is deny), so it was not run. Answer without it; "
    "if the user needs it, say that it is turned off."
)
DENIED_UNATTENDED = (
    "Error: {name} needs a person's approval before it runs, and nobody can approve it in this run, so it "
    "was not run. Answer without it, and say that it needs approval."
)
REJECTED_WITH_REASON = "User rejected the tool call for `{name}` with reason: {reason}"
REJECTED = (
    "User rejected the tool call for `{name}` with id {call_id}. The tool was not executed. Do not retry "
    "this tool call unless the user explicitly requests it."
)
SUPERSEDED = "Not run: the user asked something else instead of deciding on this call."
EDIT_NOTICE = "Note: a person changed this call's arguments before it ran, to {args}."


def describe(call: dict[str, Any], info: dict[str, Any]) -> str:
    """The text a reviewer sees for one call: the tool, where it comes from, and its arguments."""
    where = f" from MCP server '{info['server']}'" if info.get("server") else ""
    hint = " (marked destructive)" if info.get("destructiveHint") else ""
    args = json.dumps(call["args"], ensure_ascii=False)
    return f"{call['name']}{where}{hint} wants to run with {args}"


def hitl_request(calls: list[dict[str, Any]], infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The interrupt value: LangChain's HITLRequest, each action naming its call id."""
    return {
        "action_requests": [
            {
                "name": c["name"],
                "args": c["args"],
                "description": describe(c, infos.get(c["name"], {})),
                "tool_call_id": c["id"],
                "server": infos.get(c["name"], {}).get("server"),
            }
            for c in calls
        ],
        "review_configs": [{"action_name": c["name"], "allowed_decisions": list(ALLOWED_DECISIONS)} for c in calls],
    }


def parse_decisions(answer: Any, calls: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The resume value as {call id: decision}, or the one-line problem that makes it unusable."""
    raw = answer.get("decisions") if isinstance(answer, dict) else answer
    ids = [c["id"] for c in calls]
    pending = ", ".join(f"{c['id']} ({c['name']})" for c in calls)
    by_id: dict[str, Any] = {}
    if isinstance(raw, dict):
        by_id = dict(raw)
    elif isinstance(raw, list) and all(isinstance(d, dict) and d.get("tool_call_id") for d in raw):
        by_id = {d["tool_call_id"]: d for d in raw}
    elif isinstance(raw, list):
        if len(raw) != len(calls):
            return {}, f"expected {len(calls)} decisions (one per pending call: {pending}), got {len(raw)}"
        by_id = dict(zip(ids, raw))
    else:
        return {}, 'resume with {"decisions": [{"type": "approve"}, ...]}, one per pending call'
    unknown = [k for k in by_id if k not in ids]
    if unknown:
        return {}, f"no pending call has id {unknown[0]!r}: the pending calls are {pending}"
    missing = [i for i in ids if i not in by_id]
    if missing:
        return {}, f"no decision for call {missing[0]!r}: decide on every pending call ({pending})"
    out: dict[str, dict[str, Any]] = {}
    for call in calls:
        d = by_id[call["id"]]
        kind = d.get("type") if isinstance(d, dict) else None
        if kind == "approve":
            out[call["id"]] = {"decision": "approved", "allow_for_thread": bool(d.get("allow_for_thread"))}
        elif kind == "reject":
            reason = str(d.get("message") or "").strip()
            text = (
                REJECTED_WITH_REASON.format(name=call["name"], reason=reason)
                if reason
                else REJECTED.format(name=call["name"], call_id=call["id"])
            )
            out[call["id"]] = {"decision": "rejected", "message": text}
        elif kind == "edit":
            action = d.get("edited_action") or {}
            args = action.get("args") if isinstance(action, dict) else None
            if action.get("name", call["name"]) != call["name"]:
                return {}, f"an edit may change the arguments of {call['name']}, not call another tool"
            if not isinstance(args, dict):
                return {}, f"the edit of {call['name']} needs edited_action.args as a JSON object"
            out[call["id"]] = {"decision": "edited", "args": args}
        else:
            return {}, f"unknown decision {kind!r} for {call['name']}: use approve, edit or reject"
    return out, None


def decide(
    calls: list[dict[str, Any]],
    policy_of: Any,
    ctx: Context,
    allowed: set[str],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Decisions that need nobody (auto, deny, unattended), and the calls a person must decide on."""
    decided: dict[str, dict[str, Any]] = {}
    ask: list[dict[str, Any]] = []
    for call in calls:
        policy = policy_of(call["name"], ctx.approval)
        if policy == "deny":
            decided[call["id"]] = {"decision": "denied", "message": DENIED_BY_POLICY.format(name=call["name"])}
        elif policy == "ask" and call["name"] in allowed:
            decided[call["id"]] = {"decision": "allowed"}
        elif policy == "ask" and ctx.approve == "auto":
            decided[call["id"]] = {"decision": "approved"}
        elif policy == "ask" and ctx.approve == "deny":
            decided[call["id"]] = {"decision": "denied", "message": DENIED_UNATTENDED.format(name=call["name"])}
        elif policy == "ask":
            ask.append(call)
    return decided, ask


def needs_review(ai: AIMessage, policy_of: Any, ctx: Context) -> bool:
    """Any call of this step is not simply `auto` (so the step goes through `approve`)."""
    return any(policy_of(c["name"], ctx.approval) != "auto" for c in ai.tool_calls)


def make_approve(settings: Settings, toolbox: Any):
    """The `approve` node: decide each call of the step by policy, pausing for the ones a person decides."""
    from graph.nodes import knobs

    async def approve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = knobs(runtime.context, settings)
        ai = state.messages[-1]
        if not isinstance(ai, AIMessage) or not ai.tool_calls:
            return {}
        # A resume in a new process (after a restart) starts here, not in `plan`: list the tools first, so
        # the MCP servers are up and their tools' policies known.
        await toolbox.tools()
        calls = [dict(c) for c in ai.tool_calls]
        decided, ask = decide(calls, toolbox.policy, ctx, set(state.allowed_tools))
        newly_allowed: list[str] = []
        if ask:
            request = hitl_request(ask, {c["name"]: toolbox.info(c["name"]) for c in ask})
            answer = interrupt(request)
            parsed, error = parse_decisions(answer, ask)
            while error is not None:  # ask again: the earlier answers replay in order when the node reruns
                answer = interrupt({**request, "error": error})
                parsed, error = parse_decisions(answer, ask)
            for call in ask:
                if parsed[call["id"]].pop("allow_for_thread", False):
                    parsed[call["id"]]["decision"] = "allowed"
                    newly_allowed.append(call["name"])
            decided.update(parsed)
        if not decided:
            return {}
        meta = {**ai.response_metadata, "approvals": decided}
        update: dict[str, Any] = {"messages": [ai.model_copy(update={"response_metadata": meta})]}
        if newly_allowed:
            update["allowed_tools"] = sorted(set(newly_allowed))
        return update

    return approve
