"""Record one row per (case, interface) of the fault matrix, and run CLI subprocesses a few at a time.

A row is written to the JSON file named by RELIABILITY_RESULTS (when set) as the test decides its verdict;
`scripts/reliability_report.py` turns that file into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_ENV = "RELIABILITY_RESULTS"
MESSAGE_CHARS = 400
_LOCK = threading.Lock()

# `python -c` wrapper that runs the CLI under an RLIMIT_FSIZE (a full disk, as the kernel reports it: EFBIG).
# Python ignores SIGXFSZ, so an oversize write fails with OSError instead of killing the process.
_FSIZE_WRAPPER = (
    "import resource, runpy, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
    "sys.argv = ['graph.cli', *sys.argv[2:]]; runpy.run_module('graph.cli', run_name='__main__', alter_sys=True)"
)


@dataclass
class Observation:
    """What one interface showed for one case."""

    message: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    requests: int | None = None
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        """Note `problem` unless `ok`."""
        if not ok:
            self.problems.append(problem)


class Recorder:
    """The `matrix` fixture: `verdict()` writes the row and fails the test if a check failed."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.recorded = False
        self.row: dict[str, Any] = {
            "case": node.name,
            "family": "?",
            "title": node.name,
            "interface": "?",
            "expected": "",
            "order": 0,
        }
        self.started = time.perf_counter()

    def begin(self, **row: Any) -> None:
        """Name the row early (case, family, title, interface, expected, order), in case the test raises."""
        self.row.update(row)

    @property
    def known_bug(self) -> str | None:
        marker = self.node.get_closest_marker("xfail")
        return str(marker.kwargs.get("reason", "known bug")) if marker is not None else None

    def verdict(self, obs: Observation) -> None:
        """Record the row (pass / fail / xfail / xpass) and raise AssertionError listing the failed checks."""
        self.recorded = True
        passed = not obs.problems
        bug = self.known_bug
        result = ("xpass" if passed else "xfail") if bug else ("pass" if passed else "fail")
        write_row(
            {
                **self.row,
                "result": result,
                "message": one_line(obs.message),
                "exit_code": obs.exit_code,
                "duration_s": round(obs.duration_s or time.perf_counter() - self.started, 2),
                "requests": obs.requests,
                "problems": obs.problems,
                "known_bug": bug,
                "test": self.node.nodeid,
            }
        )
        assert passed, f"{self.row['case']} via {self.row['interface']}:\n  - " + "\n  - ".join(obs.problems)

    def abandoned(self) -> None:
        """The test ended before its verdict (an exception in the scenario itself)."""
        if self.recorded:
            return
        bug = self.known_bug
        write_row(
            {
                **self.row,
                "result": "xfail" if bug else "fail",
                "message": "the test raised before it could judge the outcome (see the pytest output)",
                "exit_code": None,
                "duration_s": round(time.perf_counter() - self.started, 2),
                "requests": None,
                "problems": ["the scenario raised"],
                "known_bug": bug,
                "test": self.node.nodeid,
            }
        )


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_row(row: dict[str, Any]) -> None:
    """Append `row` to the RELIABILITY_RESULTS JSON array (rewritten whole; a few hundred rows at most)."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    with _LOCK:
        target = Path(path)
        rows = json.loads(target.read_text(encoding="utf-8")) if target.exists() and target.stat().st_size else []
        rows.append(row)
        target.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------- subprocess pool


@dataclass
class Job:
    """One `python -m graph.cli ...` run."""

    key: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    stdin: bytes | None = None
    fsize: int | None = None  # RLIMIT_FSIZE in bytes for the child
    before: Callable[[], Any] | None = None  # runs in the worker thread just before the child starts
    after: Callable[[Any], Any] | None = None  # gets what `before` returned, once the child has exited
    timeout: float = 120.0


@dataclass
class Done:
    """A finished Job."""

    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    extra: Any = None


def command(job: Job) -> list[str]:
    if job.fsize is None:
        return [sys.executable, "-m", "graph.cli", *job.args]
    return [sys.executable, "-c", _FSIZE_WRAPPER, str(job.fsize), *job.args]


def run_job(job: Job) -> Done:
    state = job.before() if job.before else None
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command(job), input=job.stdin, capture_output=True, timeout=job.timeout, env=job.env, cwd=job.cwd
        )
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -9, exc.stdout or b"", (exc.stderr or b"") + f"\n[killed after {job.timeout}s]".encode()
    took = time.perf_counter() - started
    extra = job.after(state) if job.after else None
    return Done(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), took, extra)


def run_jobs(jobs: Iterable[Job], workers: int) -> dict[str, Done]:
    """Run the jobs `workers` at a time (the fake servers answer from threads of this process)."""
    jobs = list(jobs)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fault-cli") as pool:
        futures = {job.key: pool.submit(run_job, job) for job in jobs}
        return {key: future.result() for key, future in futures.items()}
