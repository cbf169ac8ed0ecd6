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


@dataclass
class TurnResult:
    """What one turn produced (the `--json` output of `work-agent run`)."""

    answer: str
    thread_id: str
    steps: list[Step] = field(default_factory=list)
    latency_ms: float = 0.0
    stopped: StopReason | None = None

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


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The turn finished (the last event); a turn that fails raises instead, one that is stopped just ends."""

    result: TurnResult


Event = Token | ToolStarted | ToolFinished | StepRecorded | TurnEnded
"""Everything a turn reports. Approval requests and reasoning tokens will join this union."""
