"""Run one user turn through the graph, reporting events as they happen; shared by CLI and UI."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphRecursionError

from configs.prompts import OUT_OF_STEPS_FALLBACK
from graph.context import Context
from graph.obs import metrics
from graph.graph import recursion_limit
from graph.obs.logs import log_step
from graph.nodes import stop_reason
from graph.trace import Step, cut_at_token_limit, usage_of

STOPPED_MARK = "\n\n*(stopped)*"
CANCELLED_TOOL = "Cancelled: the user stopped this turn before the tool finished."

Event = dict[str, Any]
"""`{"type": "token", "text", "node"}`, `{"type": "tool_start", ...}`, `{"type": "tool_end", ...}`,
`{"type": "step", "step": Step}` for each finished trace record."""


@dataclass
class TurnResult:
    """What one turn produced (the `--json` output of `work-agent run`)."""

    answer: str
    thread_id: str
    steps: list[Step] = field(default_factory=list)
    latency_ms: float = 0.0
    stopped: str | None = None

    @property
    def usage(self) -> dict[str, int]:
        """Token totals of the turn's model calls."""
        return usage_of(self.steps)

    def as_json(self) -> dict[str, Any]:
        """The JSON object printed by `run --json`."""
        return {
            "answer": self.answer,
            "thread_id": self.thread_id,
            "steps": [s.model_dump() for s in self.steps],
            "usage": self.usage,
            "latency_ms": round(self.latency_ms, 1),
            "stopped": self.stopped,
        }


def new_thread_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex[:12]


async def run_turn(
    graph: Any,
    question: str,
    *,
    thread_id: str,
    context: Context,
    max_steps: int,
    on_event: Callable[[Event], None] = lambda event: None,
    interface: str = "cli",
) -> TurnResult:
    """Ask `question` on `thread_id`; call `on_event` for tokens, tool starts/ends and trace records.

    Model-server failures propagate as their original exceptions (map them with `graph.errors.explain`).
    On cancellation the partial answer is saved to the thread, marked stopped, before re-raising.
    Every trace record is logged and counted in the Prometheus metrics under `interface`.
    """
    metrics.record_question(interface)
    status = "error"
    result = TurnResult(answer="", thread_id=thread_id)
    try:
        await _run(graph, question, thread_id, context, max_steps, on_event, result)
        status = "stopped" if result.stopped else "ok"
        return result
    except asyncio.CancelledError:
        status = "stopped"
        raise
    finally:
        metrics.record_turn(result.steps, interface=interface, status=status)
        for step in result.steps:
            log_step(step, thread_id=thread_id, interface=interface)


async def _run(graph: Any, question: str, thread_id: str, context: Context, max_steps: int,
               on_event: Callable[[Event], None], result: TurnResult) -> None:
    """Stream the turn into `result`."""
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit(max_steps)}
    question_msg = HumanMessage(question)
    turn_messages: list[Any] = [question_msg]  # this turn's messages, to tell why it stopped
    partial: list[str] = []
    started = time.perf_counter()
    try:
        async for mode, data in graph.astream(
            {"messages": [question_msg]}, config, context=context,
            stream_mode=["custom", "updates"],
        ):
            if mode == "custom":
                if data.get("type") == "token":
                    partial.append(data["text"])
                on_event(data)
                continue
            for node, update in data.items():
                for record in (update or {}).get("steps", []):
                    step = Step.model_validate(record)
                    result.steps.append(step)
                    on_event({"type": "step", "step": step})
                for msg in (update or {}).get("messages", []):
                    turn_messages.append(msg)
                    if isinstance(msg, AIMessage) and not msg.tool_calls:
                        result.answer = str(msg.content)
                    if node == "plan":
                        partial.clear()  # a new model call starts a new partial answer
    except GraphRecursionError:
        result.answer, result.stopped = OUT_OF_STEPS_FALLBACK.format(max_steps=max_steps), "max_steps"
    except asyncio.CancelledError:
        await save_stopped(graph, config, "".join(partial))
        raise
    result.latency_ms = (time.perf_counter() - started) * 1000
    if result.stopped is None and any(s.node == "answer" for s in result.steps):
        result.stopped = stop_reason(turn_messages, max_steps) or "max_steps"
    if result.stopped is None and cut_at_token_limit(result.steps):
        result.stopped = "length"  # the answer was cut at the token limit (AGENT_MAX_TOKENS)


async def save_stopped(graph: Any, config: dict[str, Any], partial: str) -> None:
    """Close a stopped turn in the thread: cancel dangling tool calls, keep the partial answer."""
    if graph.checkpointer is None:
        return
    snapshot = await graph.aget_state(config)
    messages = snapshot.values.get("messages", [])
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    last = messages[-1] if messages else None
    patch: list[Any] = []
    if isinstance(last, AIMessage):
        patch += [
            ToolMessage(CANCELLED_TOOL, tool_call_id=tc["id"], name=tc["name"], status="error")
            for tc in last.tool_calls
            if tc["id"] not in answered
        ]
    patch.append(AIMessage(partial.strip() + STOPPED_MARK if partial.strip() else STOPPED_MARK.strip()))
    await graph.aupdate_state(config, {"messages": patch}, as_node="answer")
