"""Metrics and step logs of one turn, fed from its event stream."""

from __future__ import annotations

from graph.events import Event, StepRecorded, TurnEnded
from graph.obs import metrics
from graph.obs.logs import log_step
from graph.trace import Step


class TurnObserver:
    """Counts the question when created, each step as it is recorded, and the outcome once, at `close`."""

    def __init__(self, interface: str, thread_id: str, *, question: bool = True) -> None:
        self.interface = interface
        self.thread_id = thread_id
        self.steps: list[Step] = []
        self.status = "error"
        self.closed = False
        if question:  # a turn resumed after an approval is the same question
            metrics.record_question(interface)

    def see(self, event: Event) -> None:
        """Log and count a recorded step; note how the turn ended."""
        match event:
            case StepRecorded(step=step):
                self.steps.append(step)
                metrics.record_step(step)
                log_step(step, thread_id=self.thread_id, interface=self.interface)
            case TurnEnded(result=result):
                self.status = "stopped" if result.stopped else "ok"
                if result.pending:
                    self.closed = True  # paused, not finished: the resumed turn counts the answer
            case _:
                pass

    def close(self, status: str | None = None) -> None:
        """Count the finished turn once: `status` (stopped, error) or what `TurnEnded` said."""
        if not self.closed:
            self.closed = True
            metrics.record_answer(self.steps, interface=self.interface, status=status or self.status)
