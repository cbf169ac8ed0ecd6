"""Answer many questions through one graph, N in flight at once, writing each row as it finishes."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import deque
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
from tqdm import tqdm

from configs.settings import Settings
from graph.batch.inputs import Question
from graph.batch.outputs import RowWriter, input_failure_row, output_row
from graph.context import Context
from graph.errors import (
    EXIT_ENDPOINT,
    EXIT_FAILURE,
    UNREACHABLE,
    AgentError,
    ModelNotFoundError,
    explain,
    no_tool_parser,
)
from graph.events import StepRecorded, TurnEnded
from graph.failover import REQUEST_TALLY, RequestTally
from graph.graph import build_graph
from graph.model import list_models
from graph.runner import stream_turn
from graph.trace import Step, stop_note, usage_of

TIMED_OUT = "Timed out after {seconds:g}s (--timeout); the question was abandoned."
FAIL_FAST = "Stopped at the first failed row (--fail-fast): id {id}: {error}"


@dataclass(frozen=True)
class BatchConfig:
    """How to run a batch: endpoint settings, the served model, and the run's limits."""

    settings: Settings
    model: str
    concurrency: int
    max_steps: int
    timeout: float | None = None
    fail_fast: bool = False
    approve: Literal["auto", "deny"] = "deny"
    """Calls whose policy is ask: a batch never waits for a person, so they are denied unless `auto`."""
    allow: tuple[str, ...] = ()
    """Tool names or shell-style patterns that run without asking (`--allow`)."""
    toolbox: Any = None
    """The tools (`shared_toolbox`); None: the process's default one."""


class Progress:
    """The progress bar on stderr (tqdm: done, rate, ETA; plus ok / failed / in flight); off without a TTY."""

    def __init__(self, total: int) -> None:
        self.ok = self.failed = self.in_flight = 0
        self.bar = tqdm(
            total=total, unit="q", desc="batch", file=sys.stderr, dynamic_ncols=True, disable=not sys.stderr.isatty()
        )

    def started(self) -> None:
        """A question went in flight."""
        self.in_flight += 1

    def finished(self, ok: bool) -> None:
        """A question's row is on disk."""
        self.in_flight -= 1
        self.ok, self.failed = self.ok + ok, self.failed + (not ok)
        self.bar.set_postfix_str(f"ok {self.ok} · failed {self.failed} · in flight {self.in_flight}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


async def run_batch(cfg: BatchConfig, questions: list[Question], writer: RowWriter, progress: Progress) -> None:
    """Answer `questions` with `cfg.concurrency` in flight; every finished one is a row on disk.

    Bad input rows are written first. Raises AgentError when the batch cannot go on; on cancellation
    (Ctrl-C) the in-flight requests are closed and every finished row is already written.
    """
    runnable = deque(q for q in questions if q.problem is None)
    for q in (q for q in questions if q.problem is not None):
        progress.started()
        writer.write_now(input_failure_row(q))
        progress.finished(ok=False)
        if cfg.fail_fast:
            raise AgentError(FAIL_FAST.format(id=q.id, error=q.problem), EXIT_FAILURE)
    graph = build_graph(settings=cfg.settings, toolbox=cfg.toolbox)  # no checkpointer: questions are independent

    async def worker() -> None:
        while runnable:
            q = runnable.popleft()
            progress.started()
            row = await answer(graph, cfg, q)
            await writer.write(row)
            progress.finished(row["status"] == "ok")
            if cfg.fail_fast and row["status"] != "ok":
                raise AgentError(FAIL_FAST.format(id=q.id, error=row["error"]), EXIT_FAILURE)

    workers = [asyncio.create_task(worker()) for _ in range(min(cfg.concurrency, len(runnable)))]
    if not workers:
        return
    try:
        done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in workers:
            task.cancel()  # closes their streaming requests; vLLM frees the slots
        await asyncio.gather(*workers, return_exceptions=True)


async def answer(graph: Any, cfg: BatchConfig, q: Question) -> dict[str, Any]:
    """Run one question; return its row (an error row for anything but a batch-ending failure)."""
    tally, steps = RequestTally(), []
    token = REQUEST_TALLY.set(tally)  # the httpx hook in graph.failover counts this question's requests
    started, t0 = time.time(), time.perf_counter()
    result: dict[str, Any] = {"answer": None, "stopped": None, "error": None}
    context = Context(
        model=cfg.model,
        stream=False,
        max_steps=cfg.max_steps,
        approve=cfg.approve,
        approval=dict.fromkeys(cfg.allow, "auto") or None,
    )
    try:
        async with asyncio.timeout(cfg.timeout) as deadline:
            async with aclosing(
                stream_turn(
                    graph,
                    q.question or "",
                    thread_id=f"batch-{uuid.uuid4().hex[:12]}",
                    context=context,
                    interface="batch",
                )
            ) as events:
                async for event in events:
                    match event:
                        case StepRecorded(step=step):
                            steps.append(step)  # kept for the row even when the question fails later
                        case TurnEnded(result=turn):
                            result.update(
                                answer=turn.answer,
                                stopped=turn.stopped,
                                error=_stopped_error(turn.stopped, turn.steps, cfg),
                            )
    except Exception as exc:  # noqa: BLE001 - every failure of one question becomes its row
        if isinstance(exc, TimeoutError) and deadline.expired():
            result["error"] = TIMED_OUT.format(seconds=cfg.timeout)
        elif stop := await _batch_ending(cfg, exc):
            raise stop from None
        else:
            result["error"] = str(_explain(cfg, exc))
    finally:
        REQUEST_TALLY.reset(token)
    return output_row(
        q,
        status="error" if result["error"] else "ok",
        answer=result["answer"],
        error=result["error"],
        stopped=result["stopped"],
        steps=[s.model_dump() for s in steps],
        usage=usage_of(steps),
        latency_ms=round((time.perf_counter() - t0) * 1000, 1),
        retries=tally.retries,
        started_at=round(started, 3),
    )


def _stopped_error(stopped: str | None, steps: list[Step], cfg: BatchConfig) -> str | None:
    """The error of a turn that stopped early (its answer is kept too), worded as every interface words it."""
    if stopped is None:
        return None
    note = stop_note(stopped, steps, cfg.max_steps)
    return f"{note[0].upper()}{note[1:]}."


def _explain(cfg: BatchConfig, exc: BaseException) -> str:
    """The one-line error of a failed question."""
    return str(explain(exc, base_url=cfg.settings.openai_api_base, model=cfg.model))


async def _batch_ending(cfg: BatchConfig, exc: Exception) -> AgentError | None:
    """A failure every later question would share: wrong key or model, or a server that no longer answers."""
    if getattr(exc, "status_code", None) in (401, 404) or isinstance(exc, ModelNotFoundError):
        return AgentError(_explain(cfg, exc), EXIT_ENDPOINT)
    if no_tool_parser(exc):  # every request would be refused the same way
        return AgentError(_explain(cfg, exc), EXIT_ENDPOINT)
    timeout = isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException))
    if timeout or not isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        return None
    # This question's connection failed: is every endpoint gone, or was it just this reply?
    for ep in cfg.settings.endpoints():
        try:
            await list_models(cfg.settings, endpoint=ep)
            return None
        except Exception:  # noqa: BLE001 - any failure to list the models means this endpoint is gone
            continue
    return AgentError(UNREACHABLE.format(base_url=cfg.settings.openai_api_base), EXIT_ENDPOINT)
