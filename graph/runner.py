"""Run one user turn through the graph as a one-way stream of typed events; shared by every interface."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphRecursionError
from langgraph.types import Command

from configs.prompts import OUT_OF_STEPS_FALLBACK
from graph.approval import SUPERSEDED
from graph.context import Context
from graph.errors import AgentError
from graph.events import (
    ApprovalRequested,
    Event,
    StepRecorded,
    Thinking,
    Token,
    ToolFinished,
    ToolStarted,
    TurnEnded,
    TurnResult,
)
from graph.graph import recursion_limit
from graph.obs.observer import TurnObserver
from graph.state import turn_number
from graph.trace import Step, stop_reason_of

CANCELLED_TOOL = "Cancelled: the user stopped this turn before the tool finished."
STOPPED_MODEL = "stopped by the user"

__all__ = ["StaleApproval", "TurnResult", "new_thread_id", "pending_approval", "run_turn", "stream_turn"]


class StaleApproval(AgentError):
    """A decision arrived for a thread that no longer waits for one (it moved on, or another tab decided)."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(
            f"nothing on conversation {thread_id} is waiting for approval any more (it moved on, or it was "
            "already decided): nothing was run"
        )


def new_thread_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex[:12]


class _Progress:
    """What a running turn has shown so far: what a stop must save."""

    def __init__(self) -> None:
        self.partial: list[str] = []
        self.node = "plan"
        self.model_started = time.time()
        self.tools: dict[str, tuple[ToolStarted, float]] = {}

    def see(self, event: Event) -> None:
        match event:
            case Token(text=text, node=node):
                self.node = node
                self.partial.append(text)
            case ToolStarted(call_id=call_id):
                self.tools[call_id] = (event, time.time())
            case ToolFinished(call_id=call_id):
                self.tools.pop(call_id, None)
            case StepRecorded(step=step) if step.kind == "model":
                self.partial.clear()  # a new model call starts a new partial answer
                self.model_started = time.time()


async def stream_turn(
    graph: Any,
    question: str | None,
    *,
    thread_id: str,
    context: Context,
    interface: str = "cli",
    resume: Any = None,
) -> AsyncGenerator[Event, None]:
    """Ask `question` on `thread_id` and yield the turn's events as they happen, ending with `TurnEnded`.

    A turn that pauses for approval yields `ApprovalRequested` and ends with `TurnEnded` whose result is
    `pending`; call again with `resume=` the decisions (`{"decisions": [...]}`, see `graph.approval`) and
    no question to go on. A new question while calls wait closes them as not run (`superseded`).

    Model-server failures propagate as their original exceptions (map them with `graph.errors.explain`).
    A turn that is cancelled, or whose stream is closed early (Stop, Ctrl-C, Gradio closing its generator),
    is saved to the thread with its partial answer and the trace records of what was cut short, and the
    request to the model server is closed. Metrics and step logs see every event (`TurnObserver`).
    """
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    if context.max_steps:
        config["recursion_limit"] = recursion_limit(context.max_steps)
    observer = TurnObserver(interface, thread_id, question=resume is None)
    progress = _Progress()
    result = TurnResult(answer="", thread_id=thread_id)
    started = time.perf_counter()
    if resume is not None:
        if graph.checkpointer is not None and await pending_approval(graph, thread_id) is None:
            observer.close("error")
            raise StaleApproval(thread_id)
        inputs: Any = Command(resume=resume)
    else:
        if graph.checkpointer is not None:
            for step in await supersede_pending(graph, config):
                observer.see(StepRecorded(step))
        inputs = {"messages": [HumanMessage(question or "")]}
    stream = graph.astream(inputs, config, context=context, stream_mode=["custom", "updates"])
    try:
        async with aclosing(stream):
            async for mode, data in stream:
                for event in _events(mode, data, result):
                    progress.see(event)
                    observer.see(event)
                    yield event
    except GraphRecursionError:  # a safety net: the step budget normally ends the turn first
        result.answer = OUT_OF_STEPS_FALLBACK.format(max_steps=context.max_steps or "its")
        result.stopped = "max_steps"
    except (asyncio.CancelledError, GeneratorExit):
        for step in await save_stopped(graph, config, progress, context):
            observer.see(StepRecorded(step))
        observer.close("stopped")
        raise
    except BaseException:
        observer.close("error")
        raise
    result.latency_ms = (time.perf_counter() - started) * 1000
    if result.pending:
        result.answer = ""
    result.stopped = result.stopped or stop_reason_of(result.steps)
    ended = TurnEnded(result)
    observer.see(ended)
    observer.close()
    yield ended


def _events(mode: str, data: Any, result: TurnResult) -> list[Event]:
    """The typed events of one item of LangGraph's stream; records steps and the answer in `result`."""
    if mode == "custom":
        return [data] if isinstance(data, Token | Thinking | ToolStarted | ToolFinished) else []
    events: list[Event] = []
    for node, update in data.items():
        if node == "__interrupt__":
            for pause in update:
                result.pending = ApprovalRequested.from_value(pause.value, getattr(pause, "id", ""))
                events.append(result.pending)
            continue
        for record in (update or {}).get("steps", []):
            step = Step.model_validate(record)
            result.steps.append(step)
            events.append(StepRecorded(step))
        for msg in (update or {}).get("messages", []):
            if isinstance(msg, AIMessage) and not msg.tool_calls:
                result.answer = str(msg.content)
    return events


async def run_turn(
    graph: Any,
    question: str | None,
    *,
    thread_id: str,
    context: Context,
    interface: str = "cli",
    resume: Any = None,
) -> TurnResult:
    """Run a whole turn (or its part after an approval) and return what it produced (`stream_turn`, drained)."""
    async with aclosing(
        stream_turn(graph, question, thread_id=thread_id, context=context, interface=interface, resume=resume)
    ) as events:
        async for event in events:
            if isinstance(event, TurnEnded):
                return event.result
    raise RuntimeError("the turn ended without a result")  # unreachable: stream_turn ends with TurnEnded


async def pending_approval(graph: Any, thread_id: str) -> ApprovalRequested | None:
    """What the thread's paused turn waits for (None when it waits for nothing); kept in the checkpoint."""
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    for pause in snapshot.interrupts or ():
        return ApprovalRequested.from_value(pause.value, pause.id)
    return None


async def supersede_pending(graph: Any, config: dict[str, Any]) -> list[Step]:
    """Close calls left waiting for approval when a new question comes: not run, and recorded so."""
    snapshot = await graph.aget_state(config)
    if not snapshot.interrupts:
        return []
    messages = snapshot.values.get("messages", [])
    dangling, turn, now = _dangling(messages), turn_number(messages), time.time()
    patch = [ToolMessage(SUPERSEDED, tool_call_id=tc["id"], name=tc["name"], status="error") for tc in dangling]
    steps = [
        _closed_call(tc, turn, now, now, status="error", error=SUPERSEDED, decision="superseded") for tc in dangling
    ]
    await graph.aupdate_state(config, {"messages": patch, "steps": [s.model_dump() for s in steps]}, as_node="answer")
    return steps


def _dangling(messages: list[Any]) -> list[Any]:
    """The calls of the last model message that have no tool result yet."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    last = messages[-1] if messages else None
    return [tc for tc in last.tool_calls if tc["id"] not in answered] if isinstance(last, AIMessage) else []


async def save_stopped(graph: Any, config: dict[str, Any], progress: _Progress, context: Context) -> list[Step]:
    """Close a stopped turn in the thread: cancel dangling tool calls, keep the partial answer, record the stop.

    Nothing presentational goes into the conversation: the partial answer is kept as it was streamed, and
    the stop itself is a trace record (`stopped="user"`). Returns the records written.
    """
    if graph.checkpointer is None:
        return []
    snapshot = await graph.aget_state(config)
    messages = snapshot.values.get("messages", [])
    dangling, turn, now = _dangling(messages), turn_number(messages), time.time()
    patch: list[Any] = [
        ToolMessage(CANCELLED_TOOL, tool_call_id=tc["id"], name=tc["name"], status="error") for tc in dangling
    ]
    if dangling:
        steps = [_cancelled_tool(tc, progress.tools.get(tc["id"] or ""), turn, now) for tc in dangling]
    else:
        steps = [
            Step(
                kind="model",
                node=progress.node,
                turn=turn,
                started_at=progress.model_started,
                duration_ms=(now - progress.model_started) * 1000,
                status="cancelled",
                model=context.model or None,
                error=STOPPED_MODEL,
                stopped="user",
            )
        ]
    if partial := "".join(progress.partial).strip():
        patch.append(AIMessage(partial))
    await graph.aupdate_state(config, {"messages": patch, "steps": [s.model_dump() for s in steps]}, as_node="answer")
    return steps


def _cancelled_tool(call: Any, started: tuple[ToolStarted, float] | None, turn: int, now: float) -> Step:
    """The trace record of a tool call the user's Stop cut short."""
    began = started[1] if started else now
    return _closed_call(call, turn, began, now, status="cancelled", error=CANCELLED_TOOL, stopped="user")


def _closed_call(call: Any, turn: int, began: float, now: float, **outcome: Any) -> Step:
    """The trace record of a tool call closed without running to its end (stopped, or superseded)."""
    return Step(
        kind="tool",
        node="call_tool",
        turn=turn,
        name=call["name"],
        call_id=call["id"],
        arguments=call["args"],
        started_at=began,
        duration_ms=(now - began) * 1000,
        **outcome,
    )
