"""Approval before a tool runs, through the graph: the HITL pause, decisions, policies, and the pause's lifetime.

The tools are in-process LangChain tools that record their calls, so "nothing ran" is checked on what the tool
saw, not on what the graph says. The model is the scripted vLLM server; the checkpoint is the test's SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, tool

from configs.settings import get_settings
from graph.approval import DENIED_BY_POLICY, DENIED_UNATTENDED, EDIT_NOTICE, REJECTED, SUPERSEDED
from graph.checkpoint import open_checkpointer
from graph.context import Context
from graph.demo.server import tool_call_text
from graph.events import ApprovalRequested, StepRecorded, ToolStarted, TurnEnded
from graph.graph import build_graph
from graph.runner import StaleApproval, pending_approval, run_turn, stream_turn
from tools.mcp import McpConfig, McpHub
from tools.toolbox import Toolbox

EMAIL = tool_call_text("send_email", {"to": "ann@example.com", "body": "见面吧"})
LOOKUP = tool_call_text("lookup", {"query": "ann"})
DELETE = tool_call_text("delete_file", {"path": "/tmp/report.txt"})


class Recorder:
    """In-process tools that record each call they really received."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def tools(self) -> list[BaseTool]:
        calls = self.calls

        @tool
        def lookup(query: str) -> str:
            """Look a contact up (read-only)."""
            calls.append(("lookup", {"query": query}))
            return f"{query}: ann@example.com"

        @tool
        def send_email(to: str, body: str) -> str:
            """Send an email."""
            calls.append(("send_email", {"to": to, "body": body}))
            return f"sent to {to}"

        @tool
        def delete_file(path: str) -> str:
            """Delete a file."""
            calls.append(("delete_file", {"path": path}))
            return f"deleted {path}"

        lookup.metadata = {"source": "user", "readOnlyHint": True}
        send_email.metadata = {"source": "user"}
        delete_file.metadata = {"source": "user", "destructiveHint": True}
        return [lookup, send_email, delete_file]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def saver() -> AsyncIterator[Any]:
    async with open_checkpointer(get_settings()) as checkpointer:
        yield checkpointer


def make_graph(recorder: Recorder, saver: Any, approval: dict[str, str] | None = None):
    config = McpConfig.model_validate({"approval": approval or {}})
    box = Toolbox(recorder.tools(), hub=McpHub(config))
    return build_graph(settings=get_settings(), toolbox=box, checkpointer=saver)


async def ask(graph, question: str | None, thread: str = "t1", resume: Any = None, **ctx: Any):
    return await run_turn(graph, question, thread_id=thread, context=Context(**ctx), resume=resume)


def tool_steps(result) -> list:
    return [s for s in result.steps if s.kind == "tool"]


async def thread_values(graph, thread: str = "t1") -> dict[str, Any]:
    return (await graph.aget_state({"configurable": {"thread_id": thread}})).values


async def tool_messages(graph, thread: str = "t1") -> list[ToolMessage]:
    return [m for m in (await thread_values(graph, thread))["messages"] if isinstance(m, ToolMessage)]


APPROVE = {"decisions": [{"type": "approve"}]}


# ------------------------------------------------------------------------------------------- the pause


async def test_an_ask_tool_pauses_with_the_hitl_request_and_nothing_runs(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL, "Sent.")
    events = [
        e async for e in stream_turn(graph, "Email Ann: 见面吧", thread_id="t1", context=Context(), interface="cli")
    ]

    assert recorder.calls == []
    kinds = [type(e).__name__ for e in events]
    assert kinds[-2:] == ["ApprovalRequested", "TurnEnded"] and "ToolStarted" not in kinds
    requested, ended = events[-2], events[-1]
    assert isinstance(requested, ApprovalRequested) and isinstance(ended, TurnEnded)
    assert ended.result.pending == requested and ended.result.answer == ""
    (call,) = requested.calls
    assert (call.name, call.args, call.server) == ("send_email", {"to": "ann@example.com", "body": "见面吧"}, None)
    assert call.description == 'send_email wants to run with {"to": "ann@example.com", "body": "见面吧"}'

    snapshot = await graph.aget_state({"configurable": {"thread_id": "t1"}})
    (interrupt,) = snapshot.interrupts
    assert interrupt.value == {  # LangChain's HITLRequest, each action naming its call id
        "action_requests": [
            {
                "name": "send_email",
                "args": {"to": "ann@example.com", "body": "见面吧"},
                "description": call.description,
                "tool_call_id": call.call_id,
                "server": None,
            }
        ],
        "review_configs": [{"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject"]}],
    }
    assert requested.interrupt_id == interrupt.id
    assert await pending_approval(graph, "t1") == requested
    assert len(vllm.requests) == 1  # the model is not asked again while the call waits


async def test_approve_runs_the_call_and_records_the_decision(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL, "Sent it.")
    await ask(graph, "Email Ann")
    events = [e async for e in stream_turn(graph, None, thread_id="t1", context=Context(), resume=APPROVE)]
    assert any(isinstance(e, ToolStarted) for e in events)
    result = events[-1].result
    assert recorder.calls == [("send_email", {"to": "ann@example.com", "body": "见面吧"})]
    (step,) = tool_steps(result)
    assert (step.name, step.status, step.decision, step.result) == (
        "send_email",
        "ok",
        "approved",
        "sent to ann@example.com",
    )
    assert result.answer == "Sent it." and result.pending is None
    assert await pending_approval(graph, "t1") is None
    recorded = [e.step for e in events if isinstance(e, StepRecorded) and e.step.kind == "tool"]
    assert [s.decision for s in recorded] == ["approved"]


async def test_edit_runs_with_the_new_arguments_and_tells_the_model(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL, "Sent the edited email.")
    await ask(graph, "Email Ann")
    edited = {"to": "bob@example.com", "body": "明天见"}
    result = await ask(
        graph, None, resume={"decisions": [{"type": "edit", "edited_action": {"name": "send_email", "args": edited}}]}
    )
    assert recorder.calls == [("send_email", edited)]
    (step,) = tool_steps(result)
    assert (step.decision, step.arguments) == ("edited", edited)
    assert step.result.endswith("sent to bob@example.com")
    (message,) = await tool_messages(graph)
    assert message.content.startswith(EDIT_NOTICE.format(args='{"to": "bob@example.com", "body": "明天见"}'))
    assert message.content.endswith("sent to bob@example.com")
    assert "明天见" in str(vllm.requests[-1]["messages"])  # the model reads what really ran


@pytest.mark.parametrize("reason", ["not to Ann, she is on leave", ""])
async def test_reject_does_not_run_and_the_model_reads_why(vllm, recorder, saver, reason):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL, "OK, I did not send it.")
    paused = await ask(graph, "Email Ann")
    call_id = paused.pending.calls[0].call_id
    result = await ask(graph, None, resume={"decisions": [{"type": "reject", "message": reason}]})

    assert recorder.calls == []
    (step,) = tool_steps(result)
    assert (step.name, step.status, step.decision) == ("send_email", "error", "rejected")
    (message,) = await tool_messages(graph)
    expected = (
        f"User rejected the tool call for `send_email` with reason: {reason}"
        if reason
        else REJECTED.format(name="send_email", call_id=call_id)
    )
    assert message.content == expected == step.error and message.status == "error"
    assert result.answer == "OK, I did not send it."
    tool_turn = [m for m in vllm.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_turn[-1]["content"] == expected


async def test_decisions_by_position_and_by_call_id(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL + "\n" + DELETE, "Done what you allowed.")
    paused = await ask(graph, "Email Ann and delete the report", thread="pos")
    email, delete = paused.pending.calls
    assert (email.name, delete.name) == ("send_email", "delete_file")
    assert "(marked destructive)" in delete.description
    await ask(graph, None, thread="pos", resume={"decisions": [{"type": "approve"}, {"type": "reject"}]})
    assert recorder.names() == ["send_email"]

    recorder.calls.clear()
    vllm.script(EMAIL + "\n" + DELETE, "Done what you allowed.")
    paused = await ask(graph, "Email Ann and delete the report", thread="ids")
    email, delete = paused.pending.calls
    by_id = {delete.call_id: {"type": "approve"}, email.call_id: {"type": "reject", "message": "no"}}
    result = await ask(graph, None, thread="ids", resume={"decisions": by_id})
    assert recorder.names() == ["delete_file"]
    assert {s.name: s.decision for s in tool_steps(result)} == {"send_email": "rejected", "delete_file": "approved"}


async def test_allow_for_thread_stops_asking_in_that_thread_only(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL, "Sent.")
    await ask(graph, "Email Ann", thread="a")
    first = await ask(graph, None, thread="a", resume={"decisions": [{"type": "approve", "allow_for_thread": True}]})
    assert [s.decision for s in tool_steps(first)] == ["allowed"]
    assert (await thread_values(graph, "a"))["allowed_tools"] == ["send_email"]

    vllm.script(EMAIL, "Sent again.")
    again = await ask(graph, "Email Ann again", thread="a")
    assert again.pending is None and again.answer == "Sent again."
    assert [s.decision for s in tool_steps(again)] == ["allowed"]

    vllm.script(DELETE)  # the turn pauses: no reply after the call is asked for
    other_tool = await ask(graph, "Delete the report", thread="a")
    assert other_tool.pending is not None  # only that tool is allowed

    vllm.script(EMAIL)
    elsewhere = await ask(graph, "Email Ann", thread="b")
    assert elsewhere.pending is not None and [c.name for c in elsewhere.pending.calls] == ["send_email"]
    assert recorder.names() == ["send_email", "send_email"]


# ------------------------------------------------------------------------------------------- policies


@pytest.mark.parametrize(
    ("approval", "context_approval"),
    [({"send_*": "deny"}, None), (None, {"send_email": "deny"})],
    ids=["config-pattern", "context"],
)
async def test_deny_policy_refuses_without_asking(vllm, recorder, saver, approval, context_approval):
    graph = make_graph(recorder, saver, approval)
    vllm.script(EMAIL, "I am not allowed to send email.")
    result = await ask(graph, "Email Ann", approval=context_approval)
    assert result.pending is None and recorder.calls == []
    (step,) = tool_steps(result)
    assert (step.decision, step.status, step.error) == ("denied", "error", DENIED_BY_POLICY.format(name="send_email"))
    assert result.answer == "I am not allowed to send email."


async def test_context_approval_overrides_the_config_file(vllm, recorder, saver):
    graph = make_graph(recorder, saver, {"send_email": "deny", "lookup": "ask"})
    vllm.script(EMAIL, "Sent.")
    result = await ask(graph, "Email Ann", approval={"send_*": "auto"})
    assert result.pending is None and recorder.names() == ["send_email"]
    assert [s.decision for s in tool_steps(result)] == [None]  # auto: no decision recorded
    vllm.script(LOOKUP, "Found Ann.")
    paused = await ask(graph, "Find Ann", thread="t2")
    assert [c.name for c in paused.pending.calls] == ["lookup"]  # a read-only tool the config says to ask about


async def test_unattended_runs_auto_approve_or_deny_what_needs_asking(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL, "Sent.")
    auto = await ask(graph, "Email Ann", thread="auto", approve="auto")
    assert auto.pending is None and [s.decision for s in tool_steps(auto)] == ["approved"]
    assert recorder.names() == ["send_email"]

    vllm.script(LOOKUP + "\n" + EMAIL, "I found Ann but could not email her.")
    denied = await ask(graph, "Find Ann and email her", thread="deny", approve="deny")
    assert denied.pending is None
    assert recorder.names() == ["send_email", "lookup"]  # the read-only one still ran
    steps = {s.name: s for s in tool_steps(denied)}
    assert (steps["lookup"].decision, steps["lookup"].status) == (None, "ok")
    assert steps["send_email"].decision == "denied"
    assert steps["send_email"].error == DENIED_UNATTENDED.format(name="send_email")


async def test_mixed_calls_in_one_step_only_the_ask_one_waits(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(LOOKUP + "\n" + EMAIL, "Found Ann; the email was not sent.")
    paused = await ask(graph, "Find Ann and email her")
    assert [c.name for c in paused.pending.calls] == ["send_email"]  # the auto one is not asked about
    assert recorder.calls == []
    result = await ask(graph, None, resume={"decisions": [{"type": "reject", "message": "not now"}]})
    assert recorder.names() == ["lookup"]
    assert {s.name: (s.decision, s.status) for s in tool_steps(result)} == {
        "lookup": (None, "ok"),
        "send_email": ("rejected", "error"),
    }


# ------------------------------------------------------------------------------------- unusable answers


@pytest.mark.parametrize(
    ("decisions", "error"),
    [
        ({"no-such-call": {"type": "approve"}}, "no pending call has id 'no-such-call': the pending calls are {ids}"),
        ([{"type": "approve"}, {"type": "approve"}], "expected 1 decisions (one per pending call: {ids}), got 2"),
        ([], "no decision for call '{id}': decide on every pending call ({ids})"),
        ([{"type": "maybe"}], "unknown decision 'maybe' for send_email: use approve, edit or reject"),
        (
            [{"type": "edit", "edited_action": {"name": "delete_file", "args": {}}}],
            "an edit may change the arguments of send_email, not call another tool",
        ),
        ("yes", 'resume with {"decisions": [{"type": "approve"}, ...]}, one per pending call'),
    ],
    ids=["unknown-id", "too-many", "none", "unknown-type", "edit-other-tool", "not-a-list"],
)
async def test_an_unusable_answer_asks_again_with_the_error_and_runs_nothing(vllm, recorder, saver, decisions, error):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL, "Sent.")
    paused = await ask(graph, "Email Ann")
    (call,) = paused.pending.calls
    again = await ask(graph, None, resume={"decisions": decisions} if decisions != "yes" else "yes")

    assert recorder.calls == [] and tool_steps(again) == []
    assert again.pending is not None and again.pending.calls == paused.pending.calls
    expected = error.replace("{ids}", f"{call.call_id} (send_email)").replace("{id}", call.call_id)
    assert again.pending.error == expected
    assert (await pending_approval(graph, "t1")).error == again.pending.error  # the checkpoint has it too
    done = await ask(graph, None, resume=APPROVE)  # a usable answer still works afterwards
    assert recorder.names() == ["send_email"] and done.answer == "Sent."


async def test_a_stale_approval_is_refused_and_runs_nothing(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    with pytest.raises(StaleApproval, match="nothing on conversation fresh is waiting for approval"):
        await ask(graph, None, thread="fresh", resume=APPROVE)  # never paused

    vllm.script(EMAIL, "Sent.")
    await ask(graph, "Email Ann")
    await ask(graph, None, resume=APPROVE)
    with pytest.raises(StaleApproval) as caught:  # already decided (another tab, a double click)
        await ask(graph, None, resume=APPROVE)
    assert "nothing was run" in str(caught.value) and "\n" not in str(caught.value)
    assert recorder.names() == ["send_email"]


async def test_a_new_question_while_calls_wait_closes_them_as_superseded(vllm, recorder, saver):
    graph = make_graph(recorder, saver)
    vllm.script(EMAIL + "\n" + DELETE)
    paused = await ask(graph, "Email Ann and delete the report")
    assert len(paused.pending.calls) == 2
    vllm.script("Hello! What can I do for you?")
    result = await ask(graph, "Never mind, just say hello")

    assert recorder.calls == [] and result.answer == "Hello! What can I do for you?" and result.pending is None
    assert await pending_approval(graph, "t1") is None
    messages = await tool_messages(graph)
    assert [(m.name, m.content, m.status) for m in messages] == [
        ("send_email", SUPERSEDED, "error"),
        ("delete_file", SUPERSEDED, "error"),
    ]
    steps = [s for s in (await thread_values(graph))["steps"] if s["kind"] == "tool"]
    assert [(s["name"], s["decision"]) for s in steps] == [("send_email", "superseded"), ("delete_file", "superseded")]
    sent = vllm.requests[-1]["messages"]
    assert [m["role"] for m in sent[-4:]] == ["assistant", "tool", "tool", "user"]  # a valid history for the model
    with pytest.raises(StaleApproval):
        await ask(graph, None, resume={"decisions": [{"type": "approve"}, {"type": "approve"}]})
    assert recorder.calls == []


async def test_the_pause_survives_a_restart(vllm, recorder):
    settings = get_settings()
    async with open_checkpointer(settings) as first:
        graph = make_graph(recorder, first)
        vllm.script(EMAIL, "Sent after the restart.")
        paused = await ask(graph, "Email Ann", thread="kept")
    # the process is gone: a new checkpointer on the same SQLite file, a new graph, new tools
    after = Recorder()
    async with open_checkpointer(settings) as second:
        graph = make_graph(after, second)
        assert await pending_approval(graph, "kept") == paused.pending
        result = await ask(graph, None, thread="kept", resume=APPROVE)
    assert recorder.calls == [] and after.names() == ["send_email"]
    assert result.answer == "Sent after the restart." and [s.decision for s in tool_steps(result)] == ["approved"]


# ---------------------------------------------------------------------------------- policy precedence


def test_policy_precedence_run_over_config_over_server_tools_over_server_over_hints():
    config = McpConfig.model_validate(
        {
            "mcpServers": {
                "s": {"command": "unused", "approval": "deny", "tools": {"t_listed": "auto", "t_cfg": "auto"}},
                "plain": {"command": "unused"},
            },
            "approval": {"t_cfg*": "ask", "t_exact": "deny"},
        }
    )

    def mcp_tool(name: str, server: str, **hints: Any) -> BaseTool:
        @tool(name)
        def made() -> str:
            """A tool of an MCP server."""
            return ""

        made.metadata = {"source": "mcp", "server": server, "mcp_name": name, **hints}
        return made

    box = Toolbox(
        [
            mcp_tool("t_listed", "s", readOnlyHint=True),
            mcp_tool("t_cfg", "s", readOnlyHint=True),
            mcp_tool("t_other", "s", readOnlyHint=True),
            mcp_tool("t_exact", "plain", readOnlyHint=True),
            mcp_tool("t_read", "plain", readOnlyHint=True),
            mcp_tool("t_both", "plain", readOnlyHint=True, destructiveHint=True),
            mcp_tool("t_none", "plain"),
        ],
        hub=McpHub(config),
    )
    assert box.policy("t_listed") == "auto"  # the server's `tools` beats its `approval`
    assert box.policy("t_cfg") == "ask"  # the config's `approval` pattern beats the server's `tools`
    assert box.policy("t_other") == "deny"  # the server's `approval` beats the tool's readOnlyHint
    assert box.policy("t_exact") == "deny"  # the config's `approval`, by exact name
    assert box.policy("t_read") == "auto"  # hints: read-only runs
    assert box.policy("t_both") == "ask"  # destructive wins over read-only
    assert box.policy("t_none") == "ask"  # no hints: ask
    # the run's overrides beat everything, exact names first, then patterns
    assert box.policy("t_cfg", {"t_cfg": "deny"}) == "deny"
    assert box.policy("t_other", {"t_*": "auto"}) == "auto"
    assert box.policy("t_exact", {"t_exact": "auto", "t_*": "deny"}) == "auto"
    assert box.policy("t_read", {"other": "deny"}) == "auto"  # an override for another tool changes nothing
    assert box.policy("t_read", {"t_read": "sometimes"}) == "auto"  # not a policy: ignored
    rows = {r.name: r.policy for r in box.listing({"t_none": "auto"})}
    assert rows["t_none"] == "auto" and rows["t_other"] == "deny"


async def test_approval_policies_in_the_config_file_apply_without_any_server(vllm, recorder, saver, tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text('{"approval": {"lookup": "deny"}}', encoding="utf-8")
    box = Toolbox.from_settings(get_settings(), builtins=recorder.tools(), mcp_config=path, tool_modules=[])
    assert box.policy("lookup") == "deny"
    graph = build_graph(settings=get_settings(), toolbox=box, checkpointer=saver)
    vllm.script(LOOKUP, "Looking people up is turned off.")
    result = await ask(graph, "Find Ann")
    assert recorder.calls == [] and [s.decision for s in tool_steps(result)] == ["denied"]
