"""The batch output file: one JSONL row per finished question, fsync'd as it lands; resume and repair."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from graph.batch.inputs import RESULT_FIELDS, BatchInputError, Question

OUTPUT_SUFFIX = ".answers.jsonl"
STDIN_OUTPUT = "stdin" + OUTPUT_SUFFIX
EXISTS = "{path} already exists; pass --resume to continue it, or -o to write somewhere else."
SAME_AS_INPUT = "the output {path} is the input file; pass -o with another name."
NOT_A_ROW = "line {line} of {path} is not a batch row ({why}); fix or remove that line, then run again."
CANNOT_WRITE = "cannot write {path}: {why}."
WRITE_FAILED = "cannot write {path}: {why}; the {count} rows written before are kept."
OLD_DEFAULT_NAME = (
    "{path} does not exist, but {old} does (the default output name before it kept the input's extension): "
    "pass -o {old} --resume to continue that one."
)
NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def default_output(input_path: str) -> Path:
    """INPUT's whole name + `.answers.jsonl`, next to it (`q.csv` -> `q.csv.answers.jsonl`); stdin -> `stdin...`.

    Appending to the whole name gives every input its own output: `q.csv`, `q.jsonl` and `q` never share one.
    """
    if input_path == "-":
        return Path(STDIN_OUTPUT)
    source = Path(input_path)
    return source.with_name(source.name + OUTPUT_SUFFIX)


def check_old_default(input_path: str) -> None:
    """Under --resume with the default output: refuse to start afresh beside a file under the old default name."""
    if input_path == "-":
        return
    new, source = default_output(input_path), Path(input_path)
    old = source.with_name(source.stem + OUTPUT_SUFFIX)  # `q.csv` -> `q.answers.jsonl`, the name before
    if not new.exists() and old != new and old.exists():
        raise BatchInputError(OLD_DEFAULT_NAME.format(path=new, old=old))


def count_tool_errors(steps: list[dict[str, Any]] | None) -> int:
    """How many of a row's tool calls failed (trace records of kind "tool" with status "error")."""
    return sum(1 for s in steps or [] if s.get("kind") == "tool" and s.get("status") == "error")


def denied_calls(steps: list[dict[str, Any]] | None) -> list[str]:
    """The tools of a row's calls that were denied (they needed approval, or their policy is deny), in order."""
    return [str(s.get("name")) for s in steps or [] if s.get("kind") == "tool" and s.get("decision") == "denied"]


def run_record(
    *, model: str, endpoints: list[str], concurrency: int, max_steps: int, timeout: float | None
) -> dict[str, Any]:
    """The settings of one batch run, stamped on each row it writes as `run` (endpoints are host:port, no key)."""
    return {
        "started_at": round(time.time(), 3),
        "model": model,
        "endpoints": endpoints,
        "concurrency": concurrency,
        "max_steps": max_steps,
        "timeout": timeout,
    }


def output_row(q: Question, **result: Any) -> dict[str, Any]:
    """The output object for `q`: id, line, question, the result fields, `tool_errors` and `denied_calls`, then the
    carried fields."""
    row: dict[str, Any] = {"id": q.id, "line": q.line, "question": q.question, **result}
    if "steps" in result:
        row["tool_errors"] = count_tool_errors(result["steps"])
        row["denied_calls"] = denied_calls(result["steps"])
        row["reasoning_tokens"] = sum(
            s.get("reasoning_tokens") or 0 for s in result["steps"] if s.get("kind") == "model"
        )
    for name, value in q.fields.items():
        row[f"input_{name}" if name in RESULT_FIELDS else name] = value
    return row


def input_failure_row(q: Question) -> dict[str, Any]:
    """The failed row recorded for an input row that cannot run (bad JSON, no question, ...)."""
    return output_row(
        q,
        status="error",
        answer=None,
        error=q.problem,
        stopped=None,
        steps=[],
        usage=dict(NO_USAGE),
        latency_ms=0.0,
        retries=0,
        started_at=round(time.time(), 3),
    )


def check_output(path: Path, input_path: str, *, resume: bool) -> None:
    """Refuse, before anything runs, an output that would overwrite something or cannot be written."""
    if input_path != "-" and path.resolve() == Path(input_path).resolve():
        raise BatchInputError(SAME_AS_INPUT.format(path=path))
    if path.is_dir():
        raise BatchInputError(CANNOT_WRITE.format(path=path, why="it is a directory"))
    if path.exists() and not resume:
        raise BatchInputError(EXISTS.format(path=path))
    if path.exists() and not os.access(path, os.W_OK):
        raise BatchInputError(CANNOT_WRITE.format(path=path, why="permission denied"))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the directories in between are created when the first row is written
    if not parent.is_dir():
        raise BatchInputError(CANNOT_WRITE.format(path=path, why=f"{parent} is not a directory"))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BatchInputError(CANNOT_WRITE.format(path=path, why=f"{parent} is not writable"))


def read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The complete rows of an output file, and the size in bytes of a torn last line (0 if none)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BatchInputError(f"cannot read {path}: {err.strerror or err}.") from None
    complete = data.rfind(b"\n") + 1  # a row is complete once its newline is on disk
    rows = []
    for n, line in enumerate(data[:complete].split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise BatchInputError(NOT_A_ROW.format(line=n, path=path, why=f"invalid JSON: {err}")) from None
        if not isinstance(row, dict) or "id" not in row:
            raise BatchInputError(NOT_A_ROW.format(line=n, path=path, why="no id"))
        rows.append(row)
    return rows, len(data) - complete


def repair(path: Path, torn: int) -> None:
    """Cut a torn last line (left by kill -9 or a power cut mid-write); every complete row stays."""
    with open(path, "r+b") as file:
        file.truncate(file.seek(0, os.SEEK_END) - torn)
        os.fsync(file.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable too (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RowWriter:
    """Append rows to the output; each is flushed and fsync'd before `write` returns, off the event loop.

    With `run` (see `run_record`), every row written gets it as its `run` field.
    """

    def __init__(self, path: Path, run: dict[str, Any] | None = None) -> None:
        self.path = path
        self.count = 0
        self._stamp = {"run": run} if run is not None else {}
        created = not path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: a failed append (disk full) leaves nothing queued for close() to retry.
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        except OSError as err:
            raise BatchInputError(CANNOT_WRITE.format(path=path, why=err.strerror or err)) from None
        if created:
            _fsync_dir(path.parent.resolve())
        # One thread, so rows land whole and in the order they finished, without blocking the loop on fsync.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-writer")

    async def write(self, row: dict[str, Any]) -> None:
        """Append `row`; it is on disk when this returns (and even if the caller is cancelled meanwhile)."""
        data = _encode({**row, **self._stamp})
        await asyncio.get_running_loop().run_in_executor(self._pool, self._append, data)

    def write_now(self, row: dict[str, Any]) -> None:
        """Append `row` from synchronous code (before the runner starts)."""
        self._pool.submit(self._append, _encode({**row, **self._stamp})).result()

    def _append(self, data: bytes) -> None:
        fd = self._file.fileno()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view) :]
            os.fsync(fd)
        except OSError as err:  # ENOSPC, EFBIG, EIO: cut the partial row, keep every complete one
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise BatchInputError(
                WRITE_FAILED.format(path=self.path, why=err.strerror or err, count=self.count)
            ) from None
        self.count += 1

    def close(self) -> None:
        """Finish pending writes and close the file."""
        self._pool.shutdown(wait=True)
        self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _encode(row: dict[str, Any]) -> bytes:
    return (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
