"""The typed events of one turn, in the order `stream_turn` yields them, and what a finished turn produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graph.trace import Step, StopReason, usage_of


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of a model reply, safe to show (tool-call markup held back)."""

    text: str
    node: str
    """The node whose model call it comes from: "plan" or "answer"."""


@dataclass(frozen=True, slots=True)
class Thinking:
    """A piece of a thinking model's reasoning: shown apart from the answer, never sent back to the model."""

    text: str
    node: str


@dataclass(frozen=True, slots=True)
class ToolStarted:
    """A tool call began (several of one round run at once)."""

    call_id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolFinished:
    """A tool call returned (its trace record follows as a `StepRecorded`)."""

    call_id: str
    name: str
    status: str
    """"ok" or "error"."""
    content: str
    duration_ms: float


@dataclass(frozen=True, slots=True)
class StepRecorded:
    """A trace record was written to the thread: a finished model or tool call."""

    step: Step


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A tool call waiting for a person's decision (one action request of the interrupt)."""

    call_id: str
    name: str
    args: dict[str, Any]
    description: str = ""
    server: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "tool_call_id": self.call_id,
            "name": self.name,
            "args": self.args,
            "description": self.description,
            "server": self.server,
        }


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """The graph paused: these calls need approve / edit / reject before the turn goes on (`resume`)."""

    calls: tuple[PendingCall, ...]
    interrupt_id: str = ""
    error: str | None = None
    """Why the previous answer to this pause could not be used (an unknown call id, a wrong count)."""

    @classmethod
    def from_value(cls, value: Any, interrupt_id: str = "") -> ApprovalRequested:
        """From the interrupt's value (a HITLRequest as `graph.approval.hitl_request` builds it)."""
        value = value if isinstance(value, dict) else {}
        calls = tuple(
            PendingCall(
                call_id=str(a.get("tool_call_id") or ""),
                name=str(a.get("name") or ""),
                args=dict(a.get("args") or {}),
                description=str(a.get("description") or ""),
                server=a.get("server"),
            )
            for a in value.get("action_requests", [])
        )
        return cls(calls, interrupt_id, value.get("error"))


@dataclass
class TurnResult:
    """What one turn produced (the `--json` output of `work-agent run`)."""

    answer: str
    thread_id: str
    steps: list[Step] = field(default_factory=list)
    latency_ms: float = 0.0
    stopped: StopReason | None = None
    pending: ApprovalRequested | None = None
    """Set when the turn paused for approval: the answer comes after `resume`."""

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
            "pending": [c.as_json() for c in self.pending.calls] if self.pending else [],
        }


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The turn finished (the last event); a turn that fails raises instead, one that is stopped just ends."""

    result: TurnResult


Event = Token | Thinking | ToolStarted | ToolFinished | StepRecorded | ApprovalRequested | TurnEnded
"""Everything a turn reports."""
