"""The graph's state: the conversation (input) plus the trace of every step (output)."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import add_messages


@dataclass
class InputState:
    """What a caller sends: new messages (usually one user question)."""

    messages: Annotated[list[AnyMessage], add_messages] = field(default_factory=list)
    """The conversation; `plan` and `answer` append AI messages, `call_tool` appends tool results."""


@dataclass
class State(InputState):
    """Everything the graph keeps for a thread."""

    steps: Annotated[list[dict[str, Any]], operator.add] = field(default_factory=list)
    """Trace records (`graph.trace.Step` dumps), appended by `plan`, `observe` and `answer`."""
    allowed_tools: Annotated[list[str], operator.add] = field(default_factory=list)
    """Tools a person allowed for the rest of this conversation (`approve`: "allow for this conversation")."""


def turn_number(messages: list[AnyMessage]) -> int:
    """1-based number of the current user question (0 before the first)."""
    return sum(isinstance(m, HumanMessage) for m in messages)


def current_turn(messages: list[AnyMessage]) -> list[AnyMessage]:
    """The messages after the last user question."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return messages[i + 1 :]
    return list(messages)


def tool_rounds(messages: list[AnyMessage]) -> int:
    """How many times the model asked for tools in the current turn."""
    return sum(isinstance(m, AIMessage) and bool(m.tool_calls) for m in current_turn(messages))
