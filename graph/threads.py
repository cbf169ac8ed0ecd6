"""Read a conversation thread back as turns, and rewind it (retry, edit, undo) with LangGraph time travel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from graph.state import turn_number
from graph.trace import Step, StopReason, stop_reason_of


@dataclass
class Turn:
    """One finished question and answer of a thread, with its trace."""

    turn: int
    question: str
    answer: str
    steps: list[Step] = field(default_factory=list)
    stopped: StopReason | None = None


def _config(thread_id: str, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    return checkpoint or {"configurable": {"thread_id": thread_id}}


def split_turns(messages: list[AnyMessage], records: list[dict[str, Any]]) -> list[Turn]:
    """The thread's messages and trace records grouped by user question; why a turn stopped is in its records."""
    turns: list[Turn] = []
    start = 0
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    for n, start in enumerate(humans, 1):
        end = humans[n] if n < len(humans) else len(messages)
        chunk = messages[start:end]
        answers = [m for m in chunk if isinstance(m, AIMessage) and not m.tool_calls]
        steps = [Step.model_validate(r) for r in records if r.get("turn") == n]
        turns.append(
            Turn(
                turn=n,
                question=str(messages[start].content),
                answer=str(answers[-1].content) if answers else "",
                steps=steps,
                stopped=stop_reason_of(steps),
            )
        )
    return turns


async def load_turns(graph: Any, thread_id: str) -> list[Turn]:
    """Every turn of a thread (empty for an unknown thread)."""
    snapshot = await graph.aget_state(_config(thread_id))
    values = snapshot.values or {}
    return split_turns(values.get("messages", []), values.get("steps", []))


async def rewind(graph: Any, thread_id: str, keep_turns: int) -> bool:
    """Make the thread's head the finished state after its first `keep_turns` turns.

    Earlier checkpoints stay in the history (LangGraph forks from them), so nothing is destroyed.
    Returns False when no such state exists.
    """
    if keep_turns <= 0:
        await graph.checkpointer.adelete_thread(thread_id)
        return True
    async for snapshot in graph.aget_state_history(_config(thread_id)):
        messages = (snapshot.values or {}).get("messages", [])
        if not snapshot.next and messages and turn_number(messages) == keep_turns:
            # An empty update written "as answer" copies that state into a new head checkpoint.
            await graph.aupdate_state(snapshot.config, {"messages": [], "steps": []}, as_node="answer")
            return True
    return False
