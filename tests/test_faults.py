"""Faults and bad input, measured (issue #7): every case through the CLI, the UI's chat handler and a batch row.

Each test judges one (case, interface) pair and records a row of the reliability matrix (tests/faults/matrix.py;
`RELIABILITY_RESULTS=path` collects them, `scripts/reliability_report.py` writes docs/reliability.md). Every
case checks: one clear message saying what happened and what to do, the exit code, no traceback, no lost turn or
row, the API key (SECRET) nowhere in what the user sees, and for the UI a normal turn right afterwards.

Budget (2 cores): a CLI process costs 4-5 s of CPU, nearly all of it imports, so
- the CLI runs every server fault but only one case per model, tool and input family; its processes run 4 at a
  time, all started by one module fixture (`prefetched`) before the first CLI or batch test (only the selected
  cases run, so `-k` stays cheap);
- the model-side and per-question faults are rows of ONE batch file (`ROWS`, `_big_batch_job`); faults that end a
  batch (unreachable, 401, 404, no tool parser) and bad input files are small batch runs of their own (`RUNS`);
- the UI cases call `ui.handlers.Handlers.run` in-process (no browser), each followed by a normal turn;
- the MCP and approval cases (issue #14, interface `agent`) run through `graph.runner.stream_turn` in-process,
  the turn every interface runs, with the notes MCP server of tests/mcp as a real process, each followed by a
  turn that uses the notes server and a built-in tool.
Three fake vLLM servers serve the module (accepting SECRET; wanting another key; no tool parser); each case asks a
question carrying its own tag, so `script_for` scripts it and the requests it caused can be counted.
"No lost turn": the question is in the thread afterwards whenever the turn started; a failure before it starts
(model lookup: unreachable, 401; an empty question; a checkpoint file that cannot be opened or written) stores
nothing, and the question stays visible in the chat (UI) or on the command line (CLI).
Not applicable, so not run: the in-stream error event for batch (batch requests do not stream); invalid UTF-8,
a BOM and a CSV header for the UI (the browser sends text, there is no file); SQLite cases for batch (batch
keeps no threads).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool

from configs.settings import get_settings, load_settings
from graph.demo.server import DemoConfig, DemoServer, Reply, tool_call_text
from tests.conftest import ROOT, SETTING_VARS
from tests.faults.matrix import Done, Job, Observation, Recorder, one_line, run_jobs

pytestmark = pytest.mark.slow

SECRET = "sk-fault-SECRET-1234"
OTHER_SERVER_KEY = "vllm-other-server-key-5678"
CLOSED_URL = "http://127.0.0.1:9/v1"
MODEL = "Qwen/Qwen2.5-7B-Instruct"
WORKERS = int(os.environ.get("FAULTS_WORKERS", "4"))
PREFETCH_TIMEOUT = 900  # the first CLI/batch test also runs every selected process (pytest-timeout covers setup)
WORDS = "word " * 60
LONG_ASCII = ("lorem ipsum dolor sit amet " * 4000)[:100_000]  # ~25k tokens: fits a 32k context
LONG_CJK = ("北京上海广州深圳" * 12500)[:100_000]  # ~75k tokens: more than max_model_len=32768
LONG_ANSWER = "The full story goes on and on. " * 12
REQUEST_TIMEOUT = "1"  # AGENT_REQUEST_TIMEOUT of the stall cases
TOOL_TIMEOUT = "1"

MISSING_BRACE = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7"}\n</tool_call>'
SINGLE_QUOTES = "<tool_call>\n{'name': 'calculate', 'arguments': {'expression': '6*7'}}\n</tool_call>"
TRAILING_COMMAS = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7",},}\n</tool_call>'
TRUNCATED_CALL = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*'
UNKNOWN_TOOL = tool_call_text("get_stock_price", {"symbol": "NVDA"})
BAD_ARGUMENTS = tool_call_text("calculate", {"expr": 42})
FAILING_CALL = tool_call_text("calculate", {"expression": "1/0"})
WORK_IT_OUT = "Please work it out"  # no numbers, no tool words: only the scripted call can produce "42"


def weather_call(city: str) -> str:
    return tool_call_text("get_city_weather", {"city": city})


# ----------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    family: str
    title: str
    question: str = "Tell me something"
    script: Callable[[bool], list[Reply | str]] = lambda stream: []
    """The scripted replies for the case's question; the argument says whether the interface streams."""


def _n(reply: Reply | str, n: int) -> Callable[[bool], list[Reply | str]]:
    return lambda stream: [reply] * n


CASES: dict[str, Case] = {
    # server side
    "server/down-at-start": Case("server", "endpoint down at start"),
    "server/dropped-mid-stream": Case(
        "server", "connection closed after some tokens", script=_n(Reply(text=WORDS, drop_after_tokens=5), 3)
    ),
    "server/stalled-stream": Case(
        "server",
        f"reply stalls past AGENT_REQUEST_TIMEOUT={REQUEST_TIMEOUT}s",
        script=_n(Reply(text=WORDS, stall_after_tokens=5), 4),
    ),
    "server/http-500": Case("server", "500, retried with backoff, then reported", script=_n(Reply(status=500), 4)),
    "server/http-503": Case(
        "server", "503 without Retry-After, retried, then reported", script=_n(Reply(status=503), 4)
    ),
    "server/http-503-retry-after": Case(
        "server",
        "503 with Retry-After: 1, retried, then reported",
        script=_n(Reply(status=503, headers={"Retry-After": "1"}), 4),
    ),
    "server/error-event-in-stream": Case(
        "server", 'data: {"error": ...} inside a 200 stream', script=_n(Reply(text=WORDS, error_after_tokens=3), 2)
    ),
    "server/context-too-long": Case(
        "server", "400 prompt longer than max_model_len (100k CJK characters)", question=LONG_CJK
    ),
    "server/unauthorized": Case("server", "401 wrong API key"),
    "server/unknown-model": Case("server", "404 unknown model"),
    "server/no-auto-tool-choice": Case("server", "400 server started without --enable-auto-tool-choice"),
    # model side
    "model/json-missing-brace": Case(
        "model", "<tool_call> JSON missing its closing brace", WORK_IT_OUT, script=_n(MISSING_BRACE, 1)
    ),
    "model/json-single-quotes": Case(
        "model",
        "<tool_call> JSON with single quotes",
        WORK_IT_OUT,
        script=lambda stream: [SINGLE_QUOTES] * (2 if stream else 1),
    ),
    "model/json-trailing-commas": Case(
        "model", "<tool_call> JSON with trailing commas", WORK_IT_OUT, script=_n(TRAILING_COMMAS, 1)
    ),
    "model/call-cut-at-max-tokens": Case(
        "model",
        "<tool_call> cut off by max tokens (finish_reason length)",
        WORK_IT_OUT,
        script=_n(Reply(text=TRUNCATED_CALL, finish="length"), 1),
    ),
    "model/unknown-tool": Case(
        "model", "call to a tool that does not exist", "Price of NVDA?", script=_n(UNKNOWN_TOOL, 1)
    ),
    "model/arguments-fail-schema": Case(
        "model", "arguments that fail the tool's schema", WORK_IT_OUT, script=_n(BAD_ARGUMENTS, 1)
    ),
    "model/same-failing-call-forever": Case(
        "model", "the same failing call, repeated forever", "What is 1/0?", script=_n(FAILING_CALL, 12)
    ),
    "model/step-budget": Case(
        "model",
        "a different failing call every step, past the step budget",
        "Keep computing",
        script=lambda stream: [tool_call_text("calculate", {"expression": f"{i}/0"}) for i in range(1, 12)],
    ),
    "model/answer-cut-by-length": Case(
        "model", 'answer cut by finish_reason "length"', script=_n(Reply(text=LONG_ANSWER, finish="length"), 2)
    ),
    # tool side
    "tool/raises": Case("tool", "a tool that raises", "Weather in Paris?", script=_n(weather_call("fault-500"), 1)),
    "tool/hangs-past-timeout": Case(
        "tool",
        f"a tool that hangs past TOOL_TIMEOUT={TOOL_TIMEOUT}s",
        "Weather in Paris?",
        script=_n(weather_call("fault-hang"), 1),
    ),
    "tool/ten-megabyte-result": Case(
        "tool", "a tool returning 10 MB", "Weather in Paris?", script=_n(weather_call("fault-huge"), 1)
    ),
    "tool/weather-garbage": Case(
        "tool",
        "weather upstream answers 200 with garbage",
        "Weather in Paris?",
        script=_n(weather_call("fault-garbage"), 1),
    ),
    "tool/weather-timeout": Case(
        "tool",
        "weather upstream never answers (TOOL_TIMEOUT)",
        "Weather in Paris?",
        script=_n(weather_call("fault-hang"), 1),
    ),
    # input side
    "input/empty-question": Case("input", "an empty question", "   "),
    "input/100k-question": Case("input", "a 100,000-character question", LONG_ASCII),
    "input/invalid-utf8": Case("input", "invalid UTF-8 input"),
    "input/bom": Case("input", "UTF-8 input starting with a BOM", "What time is it in Tokyo?"),
    "input/csv-without-question-column": Case("input", "a CSV without a question column"),
    "input/unwritable-output": Case("input", "an output path that cannot be written"),
    "input/full-disk": Case("input", "a full disk while writing"),
    "input/sqlite-two-writers": Case("input", "another process writing the same SQLite file", "What is 6*7?"),
    "input/sqlite-corrupted": Case("input", "a corrupted SQLite checkpoint file"),
    # MCP servers (measured through the agent's turn, `test_agent`)
    "mcp/fails-to-start": Case("mcp", "an MCP server exits at start (exit 2, one line on stderr)"),
    "mcp/hangs-at-start": Case("mcp", "an MCP server never answers the handshake (AGENT_MCP_START_TIMEOUT=2s)"),
    "mcp/crashes-mid-call": Case("mcp", "an MCP server's process exits in the middle of a call"),
    "mcp/hangs-mid-call": Case("mcp", f"an MCP tool never answers (TOOL_TIMEOUT={TOOL_TIMEOUT}s)"),
    "mcp/returns-garbage": Case("mcp", "an MCP server writes lines that are not JSON-RPC to stdout during a call"),
    "mcp/tool-error": Case("mcp", "an MCP tool returns an error result"),
    # approval
    "approval/unknown-call-id": Case("approval", "a decision for a call id that is not pending"),
    "approval/stale-after-moved-on": Case("approval", "an approval that arrives after the thread moved on"),
}


def tag_for(case_id: str, interface: str) -> str:
    """A per-(case, interface) marker for the question: letters only, so the demo brain ignores it."""
    digest = hashlib.sha1(f"{case_id}:{interface}".encode()).digest()
    return "ref" + "".join(chr(97 + b % 26) for b in digest[:8])


def question_for(case_id: str, interface: str) -> str:
    case = CASES[case_id]
    return f"{case.question} ({tag_for(case_id, interface)})"


def asked(server: DemoServer, tag: str) -> int:
    """Chat requests the server received whose latest user message carries `tag`."""
    count = 0
    for body in list(server.requests):
        users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
        if users and tag in str(users[-1].get("content")):
            count += 1
    return count


@dataclass(frozen=True)
class Want:
    """What the user should get through one interface."""

    expected: str  # one line for the report
    exit: int | None = None
    error: tuple[str, ...] | None = None  # substrings of the ONE error message; None: no error
    shows: tuple[str, ...] = ()  # substrings of what the user sees (answer, steps, notes)
    status: str | None = None  # batch row status
    requests: int | None = None  # chat requests the question caused (1 + retries)
    keeps_turn: bool = True  # the question is in the thread afterwards (CLI, UI)
    stopped: str | None = None  # batch row `stopped`
    recovered: bool = False  # batch row: a tool step was recovered from the reply's text


# Messages the product should give (graph/errors.py wording), shared by the interfaces.
UNREACHABLE = ("Cannot reach the model server", "Start it with ./run_vllm.sh", "OPENAI_API_BASE")
DROPPED = ("closed the connection in the middle of a reply", "Check its log")
TIMED_OUT = ("did not answer in time", "AGENT_REQUEST_TIMEOUT")
SERVER_FAILED = ("The model server failed while answering", "Try again", "check the vLLM log")
CONTEXT = ("context window", "max 32768 tokens", "--max-model-len")
UNAUTHORIZED = ("refused the API key (401 Unauthorized)", "Set OPENAI_API_KEY")
NOT_SERVED = ("The model 'gpt-4' is not served", f"it serves: {MODEL}", "AGENT_MODEL")
NO_PARSER = ("started without tool calling", "--enable-auto-tool-choice --tool-call-parser hermes")
CUT_BY_LENGTH = ("cut", "AGENT_MAX_TOKENS")
KEY_OF_OTHER_SERVER = OTHER_SERVER_KEY


# ------------------------------------------------------------------------------------- fake servers


@dataclass
class Servers:
    main: DemoServer  # accepts SECRET
    wrong_key: DemoServer  # wants another key: 401
    no_parser: DemoServer  # started without --enable-auto-tool-choice
    side: DemoServer  # accepts SECRET, used by one case at a time (its model lookups and timings are that case's)

    def url(self, name: str) -> str:
        return CLOSED_URL if name == "closed" else getattr(self, name).base_url

    def server(self, name: str) -> DemoServer:
        return self.main if name == "closed" else getattr(self, name)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    main = DemoServer(DemoConfig(api_key=SECRET)).start()
    wrong = DemoServer(DemoConfig(api_key=OTHER_SERVER_KEY)).start()
    bare = DemoServer(DemoConfig(api_key=SECRET, enable_auto_tool_choice=False, tool_call_parser=None)).start()
    side = DemoServer(DemoConfig(api_key=SECRET)).start()
    try:
        yield Servers(main, wrong, bare, side)
    finally:
        for server in (main, wrong, bare, side):
            server.stop()


def script(server: DemoServer, case_id: str, interface: str, stream: bool) -> str:
    """Queue the case's replies for its tagged question on `server`; return the tag."""
    tag = tag_for(case_id, interface)
    replies = CASES[case_id].script(stream)
    if replies:
        server.script_for(tag, *replies)
    return tag


def base_env(servers: Servers, workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env.update(
        {
            "OPENAI_API_BASE": servers.main.base_url,
            "OPENAI_API_KEY": SECRET,
            "WEATHER_GEOCODING_URL": servers.main.geocoding_url,
            "WEATHER_FORECAST_URL": servers.main.forecast_url,
            "AGENT_CHECKPOINT_DB": str(workdir / "threads.sqlite"),
            "AGENT_MAX_RETRIES": "0",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "LANGSMITH_TRACING": "false",
            "PYTHONPATH": str(ROOT),
            "PYTHONIOENCODING": "utf-8",
        }
    )
    env.update(extra)
    return env


# --------------------------------------------------------------------------- SQLite helpers (files)


HOLD_LOCK = textwrap.dedent("""
    import select, sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS other_writer (at REAL)")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO other_writer VALUES (?)", (time.time(),))
    print("locked", flush=True)
    select.select([sys.stdin], [], [], float(sys.argv[2]))  # until told, or the timeout
    conn.execute("COMMIT")
    print("released", time.time(), flush=True)
""")


class OtherWriter:
    """Another process holding the SQLite file's write lock (an open write transaction) until released."""

    def __init__(self, db: Path, hold_s: float) -> None:
        db.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), str(hold_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def release_when(self, ready: Callable[[], bool], then_s: float, limit_s: float = 60.0) -> None:
        """Release `then_s` seconds after `ready()` turns true (polled from a thread)."""

        def watch() -> None:
            deadline = time.monotonic() + limit_s
            while not ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(then_s)
            self.release()

        threading.Thread(target=watch, name="release-sqlite-lock", daemon=True).start()

    def finish(self) -> float:
        """Wait for the commit; the time (time.time()) the lock was released."""
        out, _ = self.proc.communicate(timeout=90)
        return float(out.split()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def first_arrival(server: DemoServer, since: float) -> float | None:
    """When the first generated chat reply after `since` arrived at `server`."""
    arrivals = [t["arrived"] for t in list(server.timings) if t["arrived"] >= since]
    return min(arrivals) if arrivals else None


def corrupt(db: Path) -> tuple[bytes, int]:
    """Write a file that is not a SQLite database; return its bytes and mtime to compare later."""
    db.parent.mkdir(parents=True, exist_ok=True)
    data = hashlib.sha256(b"garbage").digest() * 2048  # 64 KiB of noise
    db.write_bytes(data)
    return data, db.stat().st_mtime_ns


def untouched(db: Path, before: tuple[bytes, int]) -> bool:
    return db.exists() and db.read_bytes() == before[0] and db.stat().st_mtime_ns == before[1]


def make_checkpoint_db(db: Path) -> None:
    """A ready checkpoint file (tables created, WAL), as a previous run leaves it."""

    async def setup() -> None:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            await saver.conn.execute("PRAGMA journal_mode=WAL")
            await saver.setup()

    db.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(setup())


async def thread_questions(db: Path, thread_id: str) -> list[str]:
    """The user questions stored in a thread of a checkpoint file (never creates the file)."""
    if not db.exists():
        return []
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        found = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
    messages = found.checkpoint["channel_values"].get("messages", []) if found else []
    return [str(m.content) for m in messages if isinstance(m, HumanMessage)]


# ------------------------------------------------------------------------------------- CLI matrix


@dataclass(frozen=True)
class CliCase:
    want: Want
    server: str = "main"
    args: tuple[str, ...] = ()  # extra arguments after the question
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None  # the question is read from stdin (`run -`) when set
    via_stdin: bool = False  # the case's tagged question is sent on stdin (`run -`): too long for argv
    question: str | None = None  # instead of the case's tagged question
    setup: str | None = None  # "corrupt" | "lock" | "full-disk" | "unwritable"
    xfail: str | None = None


RETRIES = "2"
CLI: dict[str, CliCase] = {
    "server/down-at-start": CliCase(
        Want(
            "exit 3; says the server is unreachable, how to start it or set OPENAI_API_BASE",
            exit=3,
            error=UNREACHABLE,
            keeps_turn=False,
        ),
        server="closed",
    ),
    "server/dropped-mid-stream": CliCase(
        Want(
            "exit 3; says the connection closed mid-reply and to check the server log; the streamed part stays "
            "on screen",
            exit=3,
            error=DROPPED,
            shows=("word word",),
            requests=1,
        )
    ),
    "server/stalled-stream": CliCase(
        Want(
            "exit 3; says the server did not answer in time and to raise AGENT_REQUEST_TIMEOUT; a stream that "
            "already started is not retried",
            exit=3,
            error=TIMED_OUT,
            requests=1,
        ),
        env={"AGENT_REQUEST_TIMEOUT": REQUEST_TIMEOUT, "AGENT_MAX_RETRIES": "1"},
    ),
    "server/http-500": CliCase(
        Want(
            f"exit 1 after 1+{RETRIES} requests; says the server failed, try again, check the vLLM log",
            exit=1,
            error=SERVER_FAILED,
            requests=1 + int(RETRIES),
        ),
        env={"AGENT_MAX_RETRIES": RETRIES},
    ),
    "server/http-503-retry-after": CliCase(
        Want(
            f"exit 1 after 1+{RETRIES} requests, waiting Retry-After (>= 2 s); says try again",
            exit=1,
            error=SERVER_FAILED,
            requests=1 + int(RETRIES),
        ),
        env={"AGENT_MAX_RETRIES": RETRIES},
    ),
    "server/error-event-in-stream": CliCase(
        Want(
            "exit 1; says the server failed while answering, with vLLM's message; the streamed part stays on screen",
            exit=1,
            error=SERVER_FAILED + ("Internal server error",),
            shows=("word word",),
            requests=1,
        )
    ),
    "server/context-too-long": CliCase(
        Want(
            "exit 3; says the question no longer fits the context, to shorten it or raise --max-model-len",
            exit=3,
            error=CONTEXT + ("Shorten",),
            requests=1,
        ),
        via_stdin=True,
    ),
    "server/unauthorized": CliCase(
        Want(
            "exit 3; says the key was refused and to set OPENAI_API_KEY; the key is never shown",
            exit=3,
            error=UNAUTHORIZED,
            keeps_turn=False,
        ),
        server="wrong_key",
    ),
    "server/unknown-model": CliCase(
        Want(
            "exit 3; names the model, lists the served ones, says to set AGENT_MODEL",
            exit=3,
            error=NOT_SERVED,
            requests=1,
        ),
        args=("--model", "gpt-4"),
    ),
    "server/no-auto-tool-choice": CliCase(
        Want("exit 3; names the vLLM flags to restart with", exit=3, error=NO_PARSER, requests=1), server="no_parser"
    ),
    "model/json-missing-brace": CliCase(
        Want(
            "exit 0; the call runs (the stream parser sends it as a call); the answer has the result",
            exit=0,
            shows=("✓ calculate", "42"),
            requests=2,
        )
    ),
    "model/same-failing-call-forever": CliCase(
        Want(
            "exit 0; stops after the same call failed twice, says so, shows the tool error",
            exit=0,
            shows=("division by zero", "stopped early: a tool call kept failing"),
            requests=2,
        )
    ),
    "model/answer-cut-by-length": CliCase(
        Want(
            "exit 0; the cut answer is shown and the user is told it was cut and to raise AGENT_MAX_TOKENS",
            exit=0,
            shows=("The full story goes on",) + CUT_BY_LENGTH,
        )
    ),
    "tool/raises": CliCase(
        Want(
            "exit 0; the failed tool step says the weather service is unavailable; the model answers",
            exit=0,
            shows=("✗ get_city_weather", "weather service unavailable, try again later"),
        )
    ),
    "tool/hangs-past-timeout": CliCase(
        Want(
            f"exit 0; the tool step fails after TOOL_TIMEOUT={TOOL_TIMEOUT}s saying it did not answer in time",
            exit=0,
            shows=("✗ get_city_weather", "did not answer within 1 seconds"),
        ),
        env={"TOOL_TIMEOUT": TOOL_TIMEOUT},
    ),
    "tool/ten-megabyte-result": CliCase(
        Want(
            "exit 0; the 10 MB result reaches the model truncated with a note, and the model answers",
            exit=0,
            shows=("Here's what I found",),
        )
    ),
    "input/empty-question": CliCase(
        Want(
            "exit 2; says the question is empty and how to pass one",
            exit=2,
            error=("The question is empty", "'-' to read stdin"),
            keeps_turn=False,
        ),
        question="",
    ),
    "input/100k-question": CliCase(
        Want(
            "exit 0; answered (100k ASCII characters fit the 32k context)",
            exit=0,
            shows=("Work Agent demo",),
            requests=1,
        ),
        via_stdin=True,
    ),
    "input/invalid-utf8": CliCase(
        Want(
            "exit 2; says stdin is not UTF-8 and how to convert it",
            exit=2,
            error=("not UTF-8", "iconv"),
            keeps_turn=False,
        ),
        stdin=b"Quelle heure est-il \xe0 Paris ?\n",
    ),
    "input/bom": CliCase(
        Want("exit 0; answered; the BOM is not part of the stored question", exit=0, shows=("Asia/Tokyo",)),
        stdin="\ufeffWhat time is it in Tokyo?\n".encode(),
    ),
    "input/unwritable-output": CliCase(
        Want(
            "exit 2; says the checkpoint file cannot be written and to set AGENT_CHECKPOINT_DB",
            exit=2,
            error=("AGENT_CHECKPOINT_DB",),
            keeps_turn=False,
        ),
        setup="unwritable",
    ),
    "input/full-disk": CliCase(
        Want(
            "exit 1; says the checkpoint could not be saved because the disk is full, and what to do",
            exit=1,
            error=("Cannot save the conversation", "disk is probably full", "AGENT_CHECKPOINT_DB"),
            keeps_turn=False,
        ),
        setup="full-disk",
    ),
    "input/sqlite-two-writers": CliCase(
        Want(
            "exit 0; waits for the other process's write transaction (busy timeout), then answers and saves the turn",
            exit=0,
            shows=("42",),
            requests=2,
        ),
        server="side",
        setup="lock",
    ),
    "input/sqlite-corrupted": CliCase(
        Want(
            "exit 2; says the checkpoint file is not a SQLite database and to move it or set AGENT_CHECKPOINT_DB; "
            "the file is not modified",
            exit=2,
            error=("not a SQLite database", "AGENT_CHECKPOINT_DB"),
            keeps_turn=False,
        ),
        setup="corrupt",
    ),
}


# ------------------------------------------------------------------------------------ batch matrix

BATCH_ENV = {"AGENT_MAX_RETRIES": "1", "AGENT_REQUEST_TIMEOUT": "3", "TOOL_TIMEOUT": TOOL_TIMEOUT}
BATCH_MAX_STEPS = 3


@dataclass(frozen=True)
class RowCase:
    """One row of the big batch file (ids are the case ids)."""

    want: Want
    question: str | None = None  # None: the case's tagged question
    xfail: str | None = None


ROWS: dict[str, RowCase] = {
    "server/dropped-mid-stream": RowCase(
        Want(
            "row error after 1+1 requests (a non-streaming reply is retried): connection closed mid-reply; the batch "
            "goes on",
            status="error",
            error=DROPPED,
            requests=2,
        )
    ),
    "server/stalled-stream": RowCase(
        Want(
            "row error after 1+1 requests: did not answer in time, raise AGENT_REQUEST_TIMEOUT",
            status="error",
            error=TIMED_OUT,
            requests=2,
        )
    ),
    "server/http-500": RowCase(
        Want(
            "row error after 1+1 requests: server failed, try again; retries=1 in the row",
            status="error",
            error=SERVER_FAILED,
            requests=2,
        )
    ),
    "server/http-503": RowCase(
        Want("row error after 1+1 requests: server failed, try again", status="error", error=SERVER_FAILED, requests=2)
    ),
    "server/http-503-retry-after": RowCase(
        Want("row error after 1+1 requests: server failed, try again", status="error", error=SERVER_FAILED, requests=2)
    ),
    "server/context-too-long": RowCase(
        Want(
            "row error: too long for the context, shorten it or raise --max-model-len",
            status="error",
            error=CONTEXT + ("Shorten",),
            requests=1,
        )
    ),
    "model/json-missing-brace": RowCase(
        Want("row ok: the call is recovered from text and runs", status="ok", shows=("42",), requests=2, recovered=True)
    ),
    "model/json-single-quotes": RowCase(
        Want("row ok: the call is recovered from text and runs", status="ok", shows=("42",), requests=2, recovered=True)
    ),
    "model/json-trailing-commas": RowCase(
        Want("row ok: the call is recovered from text and runs", status="ok", shows=("42",), requests=2, recovered=True)
    ),
    "model/call-cut-at-max-tokens": RowCase(
        Want(
            "row error: the cut call is not run; the row says the reply was cut and to raise AGENT_MAX_TOKENS",
            status="error",
            error=CUT_BY_LENGTH,
            stopped="length",
            shows=CUT_BY_LENGTH,
        )
    ),
    "model/unknown-tool": RowCase(
        Want(
            "row ok: the tool step says the tool does not exist and lists the valid ones; the model answers",
            status="ok",
            shows=("get_stock_price is not a valid tool", "get_current_time, get_city_weather, calculate"),
        )
    ),
    "model/arguments-fail-schema": RowCase(
        Want(
            "row ok: the tool step names the schema problem and the expected arguments",
            status="ok",
            shows=("invalid arguments for tool 'calculate'", "expression (string, required)"),
        )
    ),
    "model/same-failing-call-forever": RowCase(
        Want(
            "row error (answer kept): stopped after the same call failed twice, with the tool error",
            status="error",
            error=("Stopped early: a tool call kept failing", "division by zero"),
            stopped="repeated_failure",
            requests=2,
        )
    ),
    "model/step-budget": RowCase(
        Want(
            f"row error (answer kept): used all {BATCH_MAX_STEPS} steps, raise --max-steps",
            status="error",
            error=(f"used all {BATCH_MAX_STEPS} tool steps", "raise AGENT_MAX_STEPS or --max-steps"),
            stopped="max_steps",
            requests=BATCH_MAX_STEPS,
        )
    ),
    "model/answer-cut-by-length": RowCase(
        Want(
            "row error (answer kept): the row keeps the cut answer and says it was cut, raise AGENT_MAX_TOKENS",
            status="error",
            error=CUT_BY_LENGTH,
            stopped="length",
            shows=("The full story goes on",) + CUT_BY_LENGTH,
        )
    ),
    "tool/raises": RowCase(
        Want(
            "row ok: the failed tool step says the weather service is unavailable",
            status="ok",
            shows=("weather service unavailable, try again later",),
        )
    ),
    "tool/hangs-past-timeout": RowCase(
        Want(
            f"row ok: the tool step fails after TOOL_TIMEOUT={TOOL_TIMEOUT}s",
            status="ok",
            shows=("did not answer within 1 seconds",),
        )
    ),
    "tool/ten-megabyte-result": RowCase(
        Want(
            "row ok: the 10 MB result reaches the model truncated with a note",
            status="ok",
            shows=("Here's what I found",),
        )
    ),
    "tool/weather-garbage": RowCase(
        Want(
            "row ok: the tool step says the weather response could not be read",
            status="ok",
            shows=("could not be read",),
        )
    ),
    "input/empty-question": RowCase(
        Want(
            "row error: the question is empty (line number)",
            status="error",
            error=("the question is empty",),
            requests=0,
        ),
        question="   ",
    ),
    "input/100k-question": RowCase(Want("row ok: answered", status="ok", shows=("Work Agent demo",), requests=1)),
    "input/bom": RowCase(
        Want("row ok: the first line, after the BOM, is read normally", status="ok", shows=("Asia/Tokyo",))
    ),
}
BOM_ROW = "input/bom"  # the first line of the file


@dataclass(frozen=True)
class RunCase:
    """A batch run of its own (faults that end the batch, bad input files)."""

    want: Want
    server: str = "main"
    args: tuple[str, ...] = ()
    input: str = "jsonl"  # jsonl | csv | invalid-utf8
    setup: str | None = None  # "unwritable" | "full-disk"
    xfail: str | None = None


RUNS: dict[str, RunCase] = {
    "server/down-at-start": RunCase(
        Want(
            "exit 3 before any question runs; unreachable, how to start it; no row claims a failure",
            exit=3,
            error=UNREACHABLE,
        ),
        server="closed",
    ),
    "server/unauthorized": RunCase(
        Want(
            "exit 3 before any question runs; key refused, set OPENAI_API_KEY; the key is never shown",
            exit=3,
            error=UNAUTHORIZED,
        ),
        server="wrong_key",
    ),
    "server/unknown-model": RunCase(
        Want(
            "exit 3 at once; model not served, the served names; the resume command",
            exit=3,
            error=NOT_SERVED + ("--resume",),
        ),
        args=("--model", "gpt-4"),
    ),
    "server/no-auto-tool-choice": RunCase(
        Want(
            "exit 3 at once (every request would be refused); the flags to restart vLLM with", exit=3, error=NO_PARSER
        ),
        server="no_parser",
    ),
    "input/invalid-utf8": RunCase(
        Want(
            "exit 2; the line and byte, and the iconv command; nothing written",
            exit=2,
            error=("is not UTF-8: byte 0xe0 on line 2", "iconv -f GBK -t UTF-8"),
        ),
        input="invalid-utf8",
    ),
    "input/csv-without-question-column": RunCase(
        Want(
            "exit 2; names the missing column and shows the header",
            exit=2,
            error=("has no 'question' column", "its header is: id, prompt"),
        ),
        input="csv",
    ),
    "input/unwritable-output": RunCase(
        Want("exit 2; says the output cannot be written and why", exit=2, error=("cannot write", "Permission denied")),
        setup="unwritable",
    ),
    "input/full-disk": RunCase(
        Want(
            "exit 2 with one line: the output could not be written (file too large / disk full), the rows already "
            "written are kept (no torn line), the resume command",
            exit=2,
            error=("cannot write", "File too large", "rows written before are kept", "--resume"),
        ),
        setup="full-disk",
    ),
}
RUN_QUESTIONS = ["What is 6*7?", "What time is it in Tokyo?", "What is 2+3?", "Hello there", "What is 10-4?"]


# ------------------------------------------------------------------------------------ the prefetch


@dataclass
class Prefetched:
    """Every selected CLI case and batch run, run once per module, 4 processes at a time."""

    servers: Servers
    workdir: Path
    cli: dict[str, Done] = field(default_factory=dict)
    cli_extra: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, Done] = field(default_factory=dict)
    big: Done | None = None
    big_ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _selected(session: pytest.Session, test_name: str) -> list[str]:
    return [
        item.callspec.params["case"]
        for item in session.items
        if getattr(item, "originalname", None) == test_name and hasattr(item, "callspec")
    ]


def _cli_job(case_id: str, spec: CliCase, servers: Servers, root: Path) -> Job:
    workdir = root / "cli" / case_id.replace("/", "-")
    workdir.mkdir(parents=True)
    db = workdir / "threads.sqlite"
    env = base_env(servers, workdir, **spec.env)
    server = servers.server(spec.server)
    env["OPENAI_API_BASE"] = servers.url(spec.server)
    tag = script(server, case_id, "cli", stream=True)
    before = after = None
    stdin = question_for(case_id, "cli").encode() if spec.via_stdin else spec.stdin
    if stdin is not None:
        args = ["run", "-", "--thread", tag, *spec.args]
    else:
        question = question_for(case_id, "cli") if spec.question is None else spec.question
        args = ["run", question, "--thread", tag, *spec.args]
    fsize = None
    if spec.setup == "corrupt":
        state = corrupt(db)
        after = lambda _: untouched(db, state)  # noqa: E731
    elif spec.setup == "lock":

        def hold() -> OtherWriter:
            writer = OtherWriter(db, hold_s=90)
            # Once the CLI has looked its model up it opens the file and must wait for the lock: release it then.
            writer.release_when(lambda: server.models_listed > 0, then_s=1.5)
            return writer

        before, after = hold, OtherWriter.finish
    elif spec.setup == "full-disk":
        make_checkpoint_db(db)
        fsize = 40960  # room for the -shm file (32 KiB), not for the WAL writes of one turn
    elif spec.setup == "unwritable":
        env["AGENT_CHECKPOINT_DB"] = "/sys/work-agent-faults/threads.sqlite"
    return Job(
        key=f"cli:{case_id}", args=args, env=env, cwd=workdir, stdin=stdin, fsize=fsize, before=before, after=after
    )


def _big_batch_job(ids: list[str], servers: Servers, root: Path) -> Job:
    workdir = root / "batch-big"
    workdir.mkdir(parents=True)
    lines = []
    for case_id in ids:
        spec = ROWS[case_id]
        script(servers.main, case_id, "batch", stream=False)
        question = question_for(case_id, "batch") if spec.question is None else spec.question
        lines.append(
            json.dumps({"id": case_id, "question": question, "family": CASES[case_id].family}, ensure_ascii=False)
        )
    (workdir / "questions.jsonl").write_bytes(("\ufeff" + "\n".join(lines) + "\n").encode("utf-8"))
    args = [
        "batch",
        "questions.jsonl",
        "-o",
        "answers.jsonl",
        "--concurrency",
        "8",
        "--max-steps",
        str(BATCH_MAX_STEPS),
    ]
    return Job(key="big-batch", args=args, env=base_env(servers, workdir, **BATCH_ENV), cwd=workdir)


def _run_job(case_id: str, spec: RunCase, servers: Servers, root: Path) -> Job:
    workdir = root / "batch" / case_id.replace("/", "-")
    workdir.mkdir(parents=True)
    env = base_env(servers, workdir, **BATCH_ENV)
    env["OPENAI_API_BASE"] = servers.url(spec.server)
    tag = tag_for(case_id, "batch-run")
    questions = [f"{q} ({tag})" for q in RUN_QUESTIONS]
    if spec.input == "csv":
        source = workdir / "questions.csv"
        source.write_text("id,prompt\n" + "".join(f"q{i},{q}\n" for i, q in enumerate(questions)), encoding="utf-8")
    elif spec.input == "invalid-utf8":
        source = workdir / "questions.txt"
        source.write_bytes(questions[0].encode() + b"\nQuelle heure est-il \xe0 Paris ?\n")
    else:
        source = workdir / "questions.jsonl"
        source.write_text(
            "".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in enumerate(questions)),
            encoding="utf-8",
        )
    out = "answers.jsonl"
    fsize = None
    if spec.setup == "unwritable":
        out = "/sys/work-agent-faults.answers.jsonl"
    elif spec.setup == "full-disk":
        fsize = 2500  # about one row fits
    args = ["batch", source.name, "-o", out, "--concurrency", "1", *spec.args]
    return Job(key=f"run:{case_id}", args=args, env=env, cwd=workdir, fsize=fsize)


@pytest.fixture(scope="module")
def prefetched(
    request: pytest.FixtureRequest, servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Prefetched:
    root = tmp_path_factory.mktemp("faults")
    done = Prefetched(servers=servers, workdir=root)
    jobs = [_cli_job(c, CLI[c], servers, root) for c in dict.fromkeys(_selected(request.session, "test_cli"))]
    jobs += [_run_job(c, RUNS[c], servers, root) for c in dict.fromkeys(_selected(request.session, "test_batch_run"))]
    if _selected(request.session, "test_batch_row"):
        # The BOM row first: the file's BOM sits in front of its line.
        done.big_ids = [BOM_ROW] + [c for c in ROWS if c != BOM_ROW]
        jobs.append(_big_batch_job(done.big_ids, servers, root))
    jobs.sort(key=lambda j: j.key != "big-batch")  # the longest run first
    started = time.perf_counter()
    results = run_jobs(jobs, WORKERS)
    done.wall_s = time.perf_counter() - started
    for key, result in results.items():
        kind, _, case_id = key.partition(":")
        if kind == "big-batch":
            done.big = result
        elif kind == "cli":
            done.cli[case_id] = result
        else:
            done.runs[case_id] = result
    return done


# --------------------------------------------------------------------------------------- judging


@pytest.fixture
def matrix(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    recorder = Recorder(request.node)
    yield recorder
    recorder.abandoned()


def begin(matrix: Recorder, case: str, interface: str, want: Want) -> None:
    info = CASES[case]
    matrix.begin(
        case=case,
        family=info.family,
        title=info.title,
        interface=interface,
        expected=want.expected,
        order=list(CASES).index(case),
    )


def _params(table: dict[str, Any]) -> list[Any]:
    return [
        pytest.param(
            case_id, id=case_id, marks=[pytest.mark.xfail(strict=True, reason=spec.xfail)] if spec.xfail else []
        )
        for case_id, spec in table.items()
    ]


def common_checks(obs: Observation, *texts: str) -> None:
    """No traceback and no API key in anything the user sees."""
    blob = "\n".join(texts)
    obs.check("Traceback" not in blob, "a traceback was shown")
    obs.check(SECRET not in blob, "the API key (OPENAI_API_KEY) was shown")
    obs.check(KEY_OF_OTHER_SERVER not in blob, "the server's key was shown")


def check_message(obs: Observation, want: Want, message: str, count: int) -> None:
    """`count` error messages were shown; `message` is the first."""
    if want.error is None:
        obs.check(count == 0, f"an unexpected error was shown: {one_line(message, 200)!r}")
        return
    obs.check(count == 1, f"{count} error messages were shown, expected exactly one")
    for part in want.error:
        obs.check(part in message, f"the message lacks {part!r}")


def check_shows(obs: Observation, want: Want, seen: str) -> None:
    for part in want.shows:
        obs.check(part in seen, f"the user never sees {part!r}")


def check_requests(obs: Observation, want: Want, server: DemoServer, tag: str) -> None:
    obs.requests = asked(server, tag)
    if want.requests is not None:
        obs.check(
            obs.requests == want.requests,
            f"the server saw {obs.requests} requests for the question, expected {want.requests}",
        )


def cli_message(stderr: str, stdout: str) -> tuple[str, int]:
    """The error line(s) on stderr; else what the user reads about the outcome."""
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    if errors:
        return errors[0], len(errors)
    if "Traceback" in stderr:
        last = [line for line in stderr.splitlines() if line.strip()][-1]
        return f"(traceback) {last}", 0
    notes = [line.strip() for line in stderr.splitlines() if line.strip().startswith(("✗", "(stopped"))]
    return " | ".join(notes + [one_line(stdout, 200)]) if notes else one_line(stdout, 300), 0


@pytest.mark.timeout(PREFETCH_TIMEOUT)
@pytest.mark.parametrize("case", _params(CLI))
def test_cli(case: str, prefetched: Prefetched, matrix: Recorder) -> None:
    spec = CLI[case]
    want = spec.want
    begin(matrix, case, "cli", want)
    done = prefetched.cli[case]
    obs = Observation(exit_code=done.returncode, duration_s=done.duration_s)
    obs.message, count = cli_message(done.stderr, done.stdout)
    obs.check(done.returncode == want.exit, f"exit code {done.returncode}, expected {want.exit}")
    check_message(obs, want, obs.message, count)
    check_shows(obs, want, done.stdout + done.stderr)
    common_checks(obs, done.stdout, done.stderr)
    tag = tag_for(case, "cli")
    server = prefetched.servers.server(spec.server)
    check_requests(obs, want, server, tag)
    db = prefetched.workdir / "cli" / case.replace("/", "-") / "threads.sqlite"
    stored = asyncio.run(thread_questions(db, tag)) if spec.setup not in ("corrupt", "full-disk") else []
    question = (
        spec.stdin.decode("utf-8", "replace")
        if spec.stdin is not None
        else question_for(case, "cli")
        if spec.question is None
        else spec.question
    ).strip("\ufeff \n")
    if want.keeps_turn:
        obs.check(
            question in [q.lstrip("\ufeff") for q in stored], "the user's question is not in the thread afterwards"
        )
    if case == "server/http-503-retry-after":
        obs.check(done.duration_s >= 2.0, f"took {done.duration_s:.1f}s: Retry-After: 1 was not honoured")
    if spec.setup == "corrupt":
        obs.check(done.extra is True, "the corrupted checkpoint file was modified")
    if spec.setup == "lock":
        obs.check("locked" not in done.stderr, "'database is locked' reached the user")
        arrived = first_arrival(server, since=0)
        obs.check(
            arrived is not None and arrived >= done.extra,
            "the turn did not wait for the other writer (no contention was measured)",
        )
    if case == "input/bom":
        obs.check(all(not q.startswith("\ufeff") for q in stored), "the stored question starts with the BOM")
    matrix.verdict(obs)


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.timeout(PREFETCH_TIMEOUT)
@pytest.mark.parametrize("case", _params(ROWS))
def test_batch_row(case: str, prefetched: Prefetched, matrix: Recorder) -> None:
    spec = ROWS[case]
    want = spec.want
    begin(matrix, case, "batch", want)
    done = prefetched.big
    assert done is not None
    out = prefetched.workdir / "batch-big" / "answers.jsonl"
    rows = _rows(out)
    mine = [r for r in rows if r.get("id") == case]
    row = mine[0] if mine else {}
    obs = Observation(exit_code=done.returncode, duration_s=(row.get("latency_ms") or 0) / 1000)
    obs.check(done.returncode == 1, f"the batch exit code is {done.returncode}, expected 1 (some rows failed)")
    obs.check(len(mine) == 1, f"{len(mine)} rows for this id, expected exactly one")
    obs.check(
        sorted(str(r["id"]) for r in rows) == sorted(prefetched.big_ids),
        "the output does not hold exactly one row per input id",
    )
    error = row.get("error") or ""
    step_errors = " ".join(s["error"] for s in row.get("steps") or [] if s.get("error"))
    obs.message = error or f"(ok) {row.get('answer') or ''}" + (f" | tool: {step_errors}" if step_errors else "")
    if want.status is not None:
        obs.check(row.get("status") == want.status, f"status {row.get('status')!r}, expected {want.status!r}")
    if want.stopped is not None:
        obs.check(row.get("stopped") == want.stopped, f"stopped {row.get('stopped')!r}, expected {want.stopped!r}")
    check_message(obs, want, error, 1 if error else 0)
    obs.check("\n" not in error, "the row's error is more than one line")
    check_shows(obs, want, f"{row.get('answer') or ''} {error} {step_errors}")
    common_checks(obs, done.stdout, done.stderr, out.read_text(encoding="utf-8") if out.exists() else "")
    check_requests(obs, want, prefetched.servers.main, tag_for(case, "batch"))
    if case == "server/http-500":
        obs.check(row.get("retries") == 1, f"retries={row.get('retries')} in the row, expected 1")
    if want.recovered:
        obs.check(
            any(st.get("recovered") and st.get("kind") == "tool" for st in row.get("steps") or []),
            "no tool step is marked recovered from text",
        )
    matrix.verdict(obs)


@pytest.mark.timeout(PREFETCH_TIMEOUT)
@pytest.mark.parametrize("case", _params(RUNS))
def test_batch_run(case: str, prefetched: Prefetched, matrix: Recorder) -> None:
    spec = RUNS[case]
    want = spec.want
    begin(matrix, case, "batch", want)
    done = prefetched.runs[case]
    workdir = prefetched.workdir / "batch" / case.replace("/", "-")
    obs = Observation(exit_code=done.returncode, duration_s=done.duration_s)
    obs.message, count = cli_message(done.stderr, done.stdout)
    out = workdir / "answers.jsonl"
    if count == 0 and spec.setup != "full-disk" and _rows(out):
        errors = [r.get("error") or "ok" for r in _rows(out)]
        obs.message = f"(no error line; {len(errors)} rows, the first says) {errors[0]}"
    obs.check(done.returncode == want.exit, f"exit code {done.returncode}, expected {want.exit}")
    check_message(obs, want, obs.message, count)
    common_checks(
        obs, done.stdout, done.stderr, out.read_text(encoding="utf-8", errors="replace") if out.exists() else ""
    )
    check_requests(obs, want, prefetched.servers.server(spec.server), tag_for(case, "batch-run"))
    rows = _rows(out) if spec.setup != "full-disk" else []
    if spec.setup == "full-disk":
        data = out.read_bytes() if out.exists() else b""
        complete = data[: data.rfind(b"\n") + 1]
        kept = [json.loads(line) for line in complete.splitlines()]
        obs.check(len(kept) >= 1, "no row survived: the rows written before the disk filled up are lost")
        obs.check(data == complete, "a partly written row was left at the end of the output")
    elif spec.server != "main" or spec.args:
        obs.check(not out.exists(), "rows were written claiming the questions failed (they never ran)")
    else:
        obs.check(not rows, "an output file was written for an input that was refused")
    matrix.verdict(obs)


# ---------------------------------------------------------------------------------------- the UI

HUGE = 10 * 1024 * 1024


@tool
def explode(text: str) -> str:
    """Fail like a buggy tool: a runtime error whose message carries the API key.

    Args:
        text: Anything.
    """
    raise RuntimeError(f"connection to the inventory database lost (auth {SECRET})")


@tool
async def never_returns(text: str) -> str:
    """Hang like a tool whose backend never answers.

    Args:
        text: Anything.
    """
    await asyncio.sleep(3600)
    return "unreachable"


@tool
def huge_report(text: str) -> str:
    """Return a 10 MB report.

    Args:
        text: Anything.
    """
    return "x" * HUGE


EXTRA_TOOLS = [explode, never_returns, huge_report]


@dataclass(frozen=True)
class UiCase:
    want: Want
    server: str = "main"  # the endpoint URL the session uses for the faulty turn
    model: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    script: list[Reply | str] | None = None  # instead of the case's script
    question: str | None = None
    setup: str | None = None  # "corrupt" | "lock" | "full-disk" | "unwritable"
    follow_up: str = "same"  # "same": the next turn on the same conversation; "new": a new conversation
    timeout: float = 12.0  # the turn must end by itself within this many seconds
    max_steps: int = 8
    xfail: str | None = None


def ui_call(name: str) -> list[Reply | str]:
    return [tool_call_text(name, {"text": "go"})]


UI: dict[str, UiCase] = {
    "server/down-at-start": UiCase(
        Want(
            "one error bubble naming the session's endpoint: unreachable, how to start it or set OPENAI_API_BASE",
            error=UNREACHABLE,
            keeps_turn=False,
        ),
        server="closed",
    ),
    "server/dropped-mid-stream": UiCase(
        Want(
            "one error bubble: connection closed mid-reply, check the log; the partial answer stays",
            error=DROPPED,
            shows=("word word",),
            requests=1,
        )
    ),
    "server/stalled-stream": UiCase(
        Want("one error bubble: did not answer in time, raise AGENT_REQUEST_TIMEOUT", error=TIMED_OUT, requests=1),
        env={"AGENT_REQUEST_TIMEOUT": REQUEST_TIMEOUT, "AGENT_MAX_RETRIES": "1"},
    ),
    "server/http-500": UiCase(
        Want(
            f"one error bubble after 1+{RETRIES} requests: server failed, try again",
            error=SERVER_FAILED,
            requests=1 + int(RETRIES),
        ),
        env={"AGENT_MAX_RETRIES": RETRIES},
    ),
    "server/http-503": UiCase(
        Want(
            f"one error bubble after 1+{RETRIES} requests: server failed, try again",
            error=SERVER_FAILED,
            requests=1 + int(RETRIES),
        ),
        env={"AGENT_MAX_RETRIES": RETRIES},
    ),
    "server/http-503-retry-after": UiCase(
        Want(
            f"one error bubble after 1+{RETRIES} requests (Retry-After honoured)",
            error=SERVER_FAILED,
            requests=1 + int(RETRIES),
        ),
        env={"AGENT_MAX_RETRIES": RETRIES},
    ),
    "server/error-event-in-stream": UiCase(
        Want(
            "one error bubble with vLLM's message; the partial answer stays",
            error=SERVER_FAILED,
            shows=("word word",),
            requests=1,
        )
    ),
    "server/context-too-long": UiCase(
        Want(
            "one error bubble: does not fit the context, shorten it or raise --max-model-len; then a new "
            "conversation works",
            error=CONTEXT + ("Shorten",),
            requests=1,
        ),
        follow_up="new",
    ),
    "server/unauthorized": UiCase(
        Want(
            "one error bubble naming the session's endpoint: key refused, set OPENAI_API_KEY; the key is never shown",
            error=UNAUTHORIZED,
            keeps_turn=False,
        ),
        server="wrong_key",
    ),
    "server/unknown-model": UiCase(
        Want("one error bubble: model not served, the served names, AGENT_MODEL", error=NOT_SERVED, requests=1),
        model="gpt-4",
    ),
    "server/no-auto-tool-choice": UiCase(
        Want("one error bubble naming the vLLM flags", error=NO_PARSER, requests=1), server="no_parser"
    ),
    "model/json-missing-brace": UiCase(
        Want("answered with the result (the stream parser already sends a call)", shows=("42",), requests=2)
    ),
    "model/json-single-quotes": UiCase(
        Want(
            "answered with the result, recovered from the non-streamed text",
            shows=("42", "recovered from text"),
            requests=3,
        )
    ),
    "model/json-trailing-commas": UiCase(
        Want("answered with the result, the arguments repaired", shows=("42", "recovered from text"), requests=2)
    ),
    "model/call-cut-at-max-tokens": UiCase(
        Want(
            "the cut call is not run; the user is told the reply was cut and to raise AGENT_MAX_TOKENS",
            shows=CUT_BY_LENGTH,
        )
    ),
    "model/unknown-tool": UiCase(
        Want(
            "a failed tool bubble listing the valid tools; the model answers",
            shows=("get_stock_price failed", "not a valid tool", "get_current_time, get_city_weather, calculate"),
        )
    ),
    "model/arguments-fail-schema": UiCase(
        Want(
            "a failed tool bubble naming the expected arguments; the model answers",
            shows=("calculate failed", "expression (string, required)"),
        )
    ),
    "model/same-failing-call-forever": UiCase(
        Want(
            "stops after the same call failed twice; the chat says so",
            shows=("division by zero", "a tool call kept failing"),
            requests=2,
        )
    ),
    "model/step-budget": UiCase(
        Want(
            f"stops after {BATCH_MAX_STEPS} failing tool rounds; the chat says the step budget was used",
            shows=(f"used all {BATCH_MAX_STEPS} tool steps", "division by zero"),
            requests=BATCH_MAX_STEPS,
        ),
        max_steps=BATCH_MAX_STEPS,
    ),
    "model/answer-cut-by-length": UiCase(
        Want(
            "the cut answer stays and the user is told it was cut, raise AGENT_MAX_TOKENS",
            shows=("The full story goes on",) + CUT_BY_LENGTH,
        )
    ),
    "tool/raises": UiCase(
        Want(
            "a failed tool bubble: the error type and message, the key redacted; the model answers",
            shows=("explode failed", "tool failed: RuntimeError", "[redacted]"),
        ),
        script=ui_call("explode"),
    ),
    "tool/hangs-past-timeout": UiCase(
        Want(
            f"the tool is abandoned after TOOL_TIMEOUT={TOOL_TIMEOUT}s with a failed tool bubble saying so",
            shows=("never_returns failed",),
        ),
        script=ui_call("never_returns"),
        env={"TOOL_TIMEOUT": TOOL_TIMEOUT},
        timeout=5.0,
    ),
    "tool/ten-megabyte-result": UiCase(
        Want(
            "the 10 MB result reaches the model truncated with a note; the model answers; the thread still works",
            shows=("Here's what I found",),
        ),
        script=ui_call("huge_report"),
    ),
    "tool/weather-garbage": UiCase(
        Want(
            "a failed tool bubble: the weather response could not be read",
            shows=("get_city_weather failed", "could not be read"),
        )
    ),
    "tool/weather-timeout": UiCase(
        Want(
            f"a failed tool bubble after TOOL_TIMEOUT={TOOL_TIMEOUT}s: did not answer in time",
            shows=("get_city_weather failed", "did not answer within 1 seconds"),
        ),
        env={"TOOL_TIMEOUT": TOOL_TIMEOUT},
    ),
    "input/empty-question": UiCase(
        Want("nothing is sent and nothing is added to the chat", requests=0, keeps_turn=False), question=""
    ),
    "input/100k-question": UiCase(Want("answered", shows=("Work Agent demo",), requests=1)),
    "input/unwritable-output": UiCase(
        Want(
            "one error bubble: the checkpoint file cannot be written, set AGENT_CHECKPOINT_DB",
            error=("AGENT_CHECKPOINT_DB",),
            keeps_turn=False,
        ),
        setup="unwritable",
    ),
    "input/full-disk": UiCase(
        Want(
            "one error bubble: the conversation could not be saved, the disk is full, what to do",
            error=("Cannot save the conversation", "disk is probably full", "AGENT_CHECKPOINT_DB"),
            keeps_turn=False,
        ),
        setup="full-disk",
        question="Keep this note: " + "n" * 20_000,
    ),  # bigger than the free space left in the file's pages
    "input/sqlite-two-writers": UiCase(
        Want("waits for the other process's write transaction (2 s), then answers", shows=("42",)),
        server="side",
        setup="lock",
    ),
    "input/sqlite-corrupted": UiCase(
        Want(
            "one error bubble: the checkpoint file is not a SQLite database, move it or set AGENT_CHECKPOINT_DB; "
            "the file is not modified",
            error=("not a SQLite database", "AGENT_CHECKPOINT_DB"),
            keeps_turn=False,
        ),
        setup="corrupt",
    ),
}


MIN_SECONDS = {"server/http-500": 1.1, "server/http-503": 1.1, "server/http-503-retry-after": 2.0}


class _Request:
    username = None


def _chat_text(messages: list[Any]) -> list[tuple[str, str, str]]:
    """(role, title, content) of each chat message."""
    out = []
    for m in messages:
        if isinstance(m, dict):
            role, meta, content = m.get("role", ""), m.get("metadata") or {}, m.get("content")
        else:
            role, meta, content = m.role, m.metadata or {}, m.content
        out.append((str(role), str((meta or {}).get("title") or ""), str(content)))
    return out


async def ui_turn(
    handlers: Any,
    session: Any,
    question: str,
    *,
    base_url: str | None = None,
    model: str | None = None,
    timeout: float = 20.0,
    max_steps: int = 8,
) -> tuple[list[tuple[str, str, str]], bool]:
    """Run one turn through the chat handler; the turn's messages, and whether it ended by itself in time."""
    from tools import TOOLS

    before = len(session.display())
    names = [t.name for t in [*TOOLS, *EXTRA_TOOLS]]
    gen = handlers.run(question, session, "owner", base_url, model, 0.2, 1024, max_steps, names, _Request())

    async def consume() -> None:
        async for _ in gen:
            pass

    try:
        await asyncio.wait_for(consume(), timeout)
        ended = True
    except TimeoutError:
        ended = False
    return _chat_text(session.display()[before:]), ended


ERROR_TITLE = "💥 Error"


@pytest.mark.parametrize("case", _params(UI))
async def test_ui(
    case: str, servers: Servers, matrix: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from graph.graph import build_graph
    from tools import TOOLS
    from ui import backend as backend_module
    from ui.backend import Backend, Session
    from ui.handlers import Handlers

    spec, info = UI[case], CASES[case]
    want = spec.want
    begin(matrix, case, "ui", want)
    db = tmp_path / "ui" / "threads.sqlite"
    env = {
        "OPENAI_API_BASE": servers.main.base_url,
        "OPENAI_API_KEY": SECRET,
        "WEATHER_GEOCODING_URL": servers.main.geocoding_url,
        "WEATHER_FORECAST_URL": servers.main.forecast_url,
        "AGENT_CHECKPOINT_DB": str(db),
        "AGENT_MAX_RETRIES": "0",
        **spec.env,
    }
    if spec.setup == "unwritable":
        env["AGENT_CHECKPOINT_DB"] = "/sys/work-agent-faults/threads.sqlite"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    monkeypatch.setattr(backend_module, "build_graph", lambda **kw: build_graph(tools=[*TOOLS, *EXTRA_TOOLS], **kw))
    server = servers.server(spec.server)
    tag = tag_for(case, "ui")
    replies = spec.script if spec.script is not None else CASES[case].script(True)
    if replies:
        server.script_for(tag, *replies)
    question = f"{info.question} ({tag})" if spec.question is None else spec.question
    state = corrupt(db) if spec.setup == "corrupt" else None
    locker = OtherWriter(db, hold_s=2.0) if spec.setup == "lock" else None

    backend = Backend(load_settings())
    handlers, session = Handlers(backend), Session()
    obs = Observation()
    started, started_at = time.perf_counter(), time.time()
    try:
        if spec.setup == "full-disk":
            await backend.ready()
            pages = (await (await backend._saver.conn.execute("PRAGMA page_count")).fetchone())[0]
            await backend._saver.conn.execute(f"PRAGMA max_page_count={pages}")
        base_url = None if spec.server == "main" else servers.url(spec.server)
        raised: Exception | None = None
        try:
            turn, ended = await ui_turn(
                handlers,
                session,
                question,
                base_url=base_url,
                model=spec.model,
                timeout=spec.timeout,
                max_steps=spec.max_steps,
            )
        except Exception as exc:  # noqa: BLE001 - an exception out of the handler is itself the finding
            raised, turn, ended = exc, [], True
        obs.duration_s = time.perf_counter() - started
        if locker is not None:
            released = locker.finish()
            arrived = first_arrival(server, since=started_at)
            obs.check(
                arrived is not None and arrived >= released,
                "the turn did not wait for the other writer (no contention was measured)",
            )
        if spec.setup == "full-disk":
            await backend._saver.conn.execute("PRAGMA max_page_count=1073741823")
        obs.check(ended, f"the turn did not end by itself within {spec.timeout:g} s")
        if case in MIN_SECONDS:  # the retries waited (backoff 0.5 s then 1 s, minus jitter; or Retry-After: 1)
            obs.check(
                obs.duration_s >= MIN_SECONDS[case],
                f"took {obs.duration_s:.2f}s: the retries did not back off (>= {MIN_SECONDS[case]}s)",
            )
        errors = [content for role, title, content in turn if title == ERROR_TITLE]
        tools_failed = [
            f"{title}: {content}" for role, title, content in turn if title.startswith("💥 ") and title != ERROR_TITLE
        ]
        answer = [content for role, title, content in turn if role == "assistant" and not title]
        obs.message = errors[0] if errors else " | ".join(tools_failed + answer[-1:]) or "(nothing shown)"
        if raised is not None:
            obs.message = f"(the chat handler raised {type(raised).__name__}: {raised})"
            obs.check(False, f"the chat handler raised {type(raised).__name__} instead of showing a message")
        check_message(obs, want, errors[0] if errors else "", len(errors))
        endpoint = servers.url(spec.server)
        if errors and "http://" in errors[0]:
            obs.check(endpoint in errors[0], f"the message names another endpoint than the one used ({endpoint})")
        rendered = "\n".join(f"{title}\n{content}" for _, title, content in turn)
        check_shows(obs, want, rendered)
        common_checks(obs, rendered)
        check_requests(obs, want, server, tag)
        if spec.question == "":
            obs.check(turn == [], "the empty question added something to the chat")
        else:
            obs.check(
                any(role == "user" and question.strip() in content for role, _, content in turn),
                "the question is not in the chat",
            )
        if want.keeps_turn and session.thread_id:
            stored = [t.question for t in await handlers.last_turns(session, None)]
            obs.check(question in stored, "the user's question is not in the conversation afterwards")
        if state is not None:
            obs.check(untouched(db, state), "the corrupted checkpoint file was modified")
            db.rename(db.with_suffix(".corrupt"))  # what the message tells the user to do
        if spec.setup == "unwritable":
            backend.settings = load_settings(agent_checkpoint_db=tmp_path / "ui" / "moved.sqlite")
        # The handlers still serve a normal turn afterwards.
        if spec.follow_up == "new":
            handlers.new_conversation(session)
        after, ended = await ui_turn(handlers, session, "What time is it in Tokyo?")
        after_errors = [content for _, title, content in after if title == ERROR_TITLE]
        obs.check(
            ended and not after_errors and any("Current time (get_current_time)" in c for _, _, c in after),
            "the next normal turn failed: " + one_line(" ".join(after_errors) or str(after[-1:]), 200),
        )
        common_checks(obs, "\n".join(c for _, _, c in after))
    finally:
        if locker is not None:
            locker.kill()
        await backend.close()
    matrix.verdict(obs)


# ------------------------------------------------------------------------------ MCP and approval (agent)
#
# Measured in-process through `graph.runner.stream_turn`, the one turn path the CLI, the UI and batch share
# (what each interface then prints of it is tested with that interface). The toolbox comes from settings and
# an mcp.json, as in every interface; the notes MCP server (tests/mcp/notes_server.py) is a real process.


@dataclass(frozen=True)
class AgentCase:
    want: Want
    xfail: str | None = None
    broken: tuple[str, ...] | None = None  # flags of a second notes server, "broken" (None: no second server)
    env: dict[str, str] = field(default_factory=dict)


MCP_START_TIMEOUT = "2"  # AGENT_MCP_START_TIMEOUT of the hang-at-start case
FAIL_START_LINE = "notes: cannot open the notes database (permission denied)"

AGENT: dict[str, AgentCase] = {
    "mcp/fails-to-start": AgentCase(
        Want(
            "one line naming the server and quoting its stderr line; its tools are left out, the other server's and "
            "the built-in tools work in the same turn",
            error=("MCP server 'broken' is unavailable: it exited at start", f"saying: {FAIL_START_LINE}"),
            requests=2,
        ),
        broken=("--fail-start",),
    ),
    "mcp/hangs-at-start": AgentCase(
        Want(
            f"one line after AGENT_MCP_START_TIMEOUT={MCP_START_TIMEOUT}s naming the server and the setting; its "
            "process is ended; the turn goes on with the other tools",
            error=("MCP server 'broken' is unavailable", "did not start within 2 s", "AGENT_MCP_START_TIMEOUT"),
            requests=2,
        ),
        broken=("--hang-start",),
        env={"AGENT_MCP_START_TIMEOUT": MCP_START_TIMEOUT},
    ),
    "mcp/crashes-mid-call": AgentCase(
        Want(
            "the call is a tool error naming the server, which the model reads and answers from; the next model "
            "call (the same turn's answer) starts the server again, a new process",
            error=("the MCP server 'notes' failed while running crash", "Try once more"),
            requests=2,
        )
    ),
    "mcp/hangs-mid-call": AgentCase(
        Want(
            f"the call is stopped after 3 x TOOL_TIMEOUT={TOOL_TIMEOUT}s with a tool error saying so; the same server "
            "process answers the next call",
            error=("hang did not answer within 3 seconds", f"TOOL_TIMEOUT={TOOL_TIMEOUT}"),
            requests=2,
        ),
        env={"TOOL_TIMEOUT": TOOL_TIMEOUT},
    ),
    "mcp/returns-garbage": AgentCase(
        Want(
            "the call still answers; each line that is not JSON-RPC is one warning naming the server (no traceback); "
            "the same server process answers the next call",
            shows=("MCP server 'notes': Failed to parse JSONRPC message", "which is not JSON-RPC"),
            requests=2,
        )
    ),
    "mcp/tool-error": AgentCase(
        Want(
            "the server's error result is a failed tool step the model reads; the server stays up",
            error=("it failed: disk quota exceeded",),
            requests=2,
        )
    ),
    "approval/unknown-call-id": AgentCase(
        Want(
            "the pause is asked again with one line naming the pending call ids; nothing runs; a right decision "
            "then runs the call",
            error=("no pending call has id 'call-that-does-not-exist'", "the pending calls are"),
            requests=2,
        )
    ),
    "approval/stale-after-moved-on": AgentCase(
        Want(
            "the late approval is refused with one line (nothing was run); the waiting call was closed as "
            "superseded when the new question came; both questions stay in the thread",
            error=("is waiting for approval any more", "nothing was run"),
            requests=1,
        )
    ),
}
FOLLOW_UP = "Read note n and work out 6*7"


@dataclass
class AgentRun:
    """One case's graph, toolbox and thread; `turn` runs a turn and keeps what the user was shown."""

    graph: Any
    box: Any
    notes: Path
    server: DemoServer
    thread: str
    shown: list[str] = field(default_factory=list)
    logs: Any = None
    """The log lines written so far (an io.StringIO behind the agent's log handler)."""

    async def turn(self, question: str | None, resume: Any = None) -> Any:
        from graph.context import Context
        from graph.runner import run_turn

        result = await run_turn(self.graph, question, thread_id=self.thread, context=Context(), resume=resume)
        self.shown += [s.summary(width=400) for s in result.steps if s.kind == "tool"]
        self.shown += [result.answer] if result.answer else []
        if result.pending is not None:
            self.shown += [c.description for c in result.pending.calls] + [result.pending.error or ""]
        self.shown += [line for line in self.box.problems() if line not in self.shown]
        return result

    def tool(self, result: Any, name: str) -> Any:
        return next((s for s in result.steps if s.kind == "tool" and s.name == name), None)

    async def questions(self) -> list[str]:
        from langchain_core.messages import HumanMessage

        state = await self.graph.aget_state({"configurable": {"thread_id": self.thread}})
        return [str(m.content) for m in state.values.get("messages", []) if isinstance(m, HumanMessage)]


def _notes_server(name: str, notes: Path, *flags: str) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": ["-m", "tests.mcp.notes_server", "--name", name, *flags],
        "cwd": str(ROOT),
        "env": {"NOTES_DIR": str(notes)},
    }


async def _mcp_case(case: str, run: AgentRun, obs: Observation, tag: str) -> None:
    """The faulty turn of one MCP case: sets obs.message, checks what the case promises."""
    from tests.mcp.helpers import server_pids

    question = question_for(case, "agent")
    marker = f"fault-{case.replace('/', '-')}"
    if case in ("mcp/fails-to-start", "mcp/hangs-at-start"):
        run.server.script_for(
            tag, tool_call_text("read_note", {"title": "n"}) + "\n" + tool_call_text("calculate", {"expression": "6*7"})
        )
        run.server.script_for(tag, "The note says kept; 6*7 = 42.")
        started = time.perf_counter()
        result = await run.turn(question)
        took = time.perf_counter() - started
        lines = run.box.problems()
        obs.message = lines[0] if lines else "(no line about the broken server)"
        check_message(obs, AGENT[case].want, obs.message, len(lines))
        steps = [(s.name, s.status) for s in result.steps if s.kind == "tool"]
        obs.check(steps == [("read_note", "ok"), ("calculate", "ok")], f"the other tools did not work: {steps}")
        obs.check(server_pids(f"{marker}-broken") == [], "the broken server's process is still running")
        if case == "mcp/hangs-at-start":
            obs.check(took < float(MCP_START_TIMEOUT) + 5, f"the turn waited {took:.1f}s for the hung server")
        return
    if case == "mcp/crashes-mid-call":
        await run.box.tools()  # started, to know the process that will crash
        crashing = server_pids(marker)
        run.server.script_for(tag, tool_call_text("crash", {}), "The notes server crashed; I could not finish.")
        result = await run.turn(question)
        step = run.tool(result, "crash")
        obs.message = step.error if step is not None and step.error else "(no tool error)"
        check_message(obs, AGENT[case].want, obs.message, int(step is not None and step.status == "error"))
        obs.check(step is not None and step.server == "notes", "the failed step does not name its server")
        now = server_pids(marker)
        obs.check(len(crashing) == 1 and crashing[0] not in now, "the crashed process is still there")
        obs.check(len(now) == 1, f"the server was not started again for the answer: {now}")
        obs.check(run.box.problems() == [], f"the restarted server is still reported down: {run.box.problems()}")
        obs.check(result.answer.startswith("The notes server crashed"), "the model did not answer after the crash")
        return
    if case == "mcp/hangs-mid-call":
        run.server.script_for(tag, tool_call_text("hang", {}), "The notes server did not answer.")
        started = time.perf_counter()
        result = await run.turn(question)
        took = time.perf_counter() - started
        step = run.tool(result, "hang")
        obs.message = step.error if step is not None and step.error else "(no tool error)"
        check_message(obs, AGENT[case].want, obs.message, int(step is not None and step.status == "error"))
        obs.check(3.0 <= took < 10.0, f"the stuck call was stopped after {took:.1f}s, expected about 3 s")
        obs.check(run.box.problems() == [], f"a server is reported down: {run.box.problems()}")
        return
    if case == "mcp/returns-garbage":
        run.server.script_for(tag, tool_call_text("garbage", {}), "The notes server answered ok.")
        result = await run.turn(question)
        step = run.tool(result, "garbage")
        warnings = [line for line in run.logs.getvalue().splitlines() if "mcp.client" in line]
        obs.message = " | ".join([*warnings[:1], step.summary(width=200) if step is not None else "(no step)"])
        obs.check(len(warnings) == 2, f"expected one warning per line that is not JSON-RPC (2), got {len(warnings)}")
        obs.check(step is not None and step.status == "ok" and step.result == "ok", "the call did not answer ok")
        obs.check(result.answer == "The notes server answered ok.", "the model did not answer")
        return
    if case == "mcp/tool-error":
        run.server.script_for(tag, tool_call_text("fail", {"reason": "disk quota exceeded"}), "The note failed.")
        result = await run.turn(question)
        step = run.tool(result, "fail")
        obs.message = step.error if step is not None and step.error else "(no tool error)"
        check_message(obs, AGENT[case].want, obs.message, int(step is not None and step.status == "error"))
        obs.check(run.box.problems() == [], "the server is reported down after an error result")
        return
    raise AssertionError(f"no scenario for {case}")


async def _approval_case(case: str, run: AgentRun, obs: Observation, tag: str) -> None:
    from graph.runner import StaleApproval

    question = question_for(case, "agent")
    note = run.notes / "notes" / "draft.txt"
    run.server.script_for(tag, tool_call_text("write_note", {"title": "draft", "text": "见面吧"}))
    paused = await run.turn(question)
    obs.check(paused.pending is not None and paused.answer == "", "the ask call did not pause the turn")
    if case == "approval/unknown-call-id":
        again = await run.turn(None, resume={"decisions": {"call-that-does-not-exist": {"type": "approve"}}})
        error = again.pending.error if again.pending is not None else None
        obs.message = error or "(not asked again)"
        check_message(obs, AGENT[case].want, obs.message, int(error is not None))
        ids = [c.call_id for c in paused.pending.calls] if paused.pending else []
        obs.check(bool(ids) and all(i in (error or "") for i in ids), "the line does not name the pending call ids")
        obs.check(not note.exists(), "the call ran on an unknown id")
        run.server.script_for(tag, "Saved the draft.")
        done = await run.turn(None, resume={"decisions": [{"type": "approve"}]})
        step = run.tool(done, "write_note")
        obs.check(
            step is not None and step.decision == "approved" and note.exists(),
            "a right decision after the unknown id did not run the call",
        )
        return
    run.server.script_for(tag_for(case, "agent-new"), "Hello! The draft was not saved.")
    moved = await run.turn(f"Never mind, just say hello ({tag_for(case, 'agent-new')})")
    obs.check(moved.pending is None and moved.answer.startswith("Hello"), "the new question was not answered")
    try:
        await run.turn(None, resume={"decisions": [{"type": "approve"}]})
        obs.message = "(the late approval was accepted)"
        check_message(obs, AGENT[case].want, "", 0)
    except StaleApproval as exc:
        obs.message = str(exc)
        check_message(obs, AGENT[case].want, obs.message, 1)
    obs.check(not note.exists(), "the late approval ran the call")
    state = await run.graph.aget_state({"configurable": {"thread_id": run.thread}})
    decisions = [s.get("decision") for s in state.values.get("steps", []) if s["kind"] == "tool"]
    obs.check(decisions == ["superseded"], f"the waiting call is not recorded as superseded: {decisions}")


@pytest.mark.parametrize("case", _params(AGENT))
async def test_agent(case: str, servers: Servers, matrix: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import io
    import logging

    from graph.checkpoint import open_checkpointer
    from graph.graph import build_graph
    from graph.obs.logs import setup_logging
    from tests.mcp.helpers import server_pids, write_note
    from tools.toolbox import Toolbox

    spec = AGENT[case]
    want = spec.want
    begin(matrix, case, "agent", want)
    notes = tmp_path / "notes"
    write_note(notes, "n", "kept")
    marker = f"fault-{case.replace('/', '-')}"
    mcp = {"notes": _notes_server(marker, notes)}
    if spec.broken is not None:
        mcp["broken"] = _notes_server(f"{marker}-broken", tmp_path / "broken", *spec.broken)
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": mcp}), encoding="utf-8")
    env = {
        "OPENAI_API_BASE": servers.main.base_url,
        "OPENAI_API_KEY": SECRET,
        "AGENT_CHECKPOINT_DB": str(tmp_path / "threads.sqlite"),
        "AGENT_MCP_CONFIG": str(tmp_path / "mcp.json"),
        "AGENT_LOG_LEVEL": "INFO",
        **spec.env,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("tools.mcp.LOG_DIR", tmp_path / "mcp-logs")
    get_settings.cache_clear()
    settings = get_settings()
    logs = io.StringIO()
    handler = setup_logging(settings, stream=logs)
    box = Toolbox.from_settings(settings)
    tag = tag_for(case, "agent")
    obs = Observation()
    shown: list[str] = []
    started = time.perf_counter()
    try:
        async with open_checkpointer(settings) as saver:
            graph = build_graph(settings=settings, toolbox=box, checkpointer=saver)
            run = AgentRun(graph, box, notes, servers.main, tag, shown, logs)
            if case.startswith("mcp/"):
                await _mcp_case(case, run, obs, tag)
            else:
                await _approval_case(case, run, obs, tag)
            obs.duration_s = time.perf_counter() - started
            check_requests(obs, want, servers.main, tag)
            pid = server_pids(marker)
            # The agent keeps working: the notes server (restarted after a crash) and a built-in tool, next turn.
            follow = tag_for(case, "agent-follow")
            servers.main.script_for(
                follow,
                tool_call_text("read_note", {"title": "n"}) + "\n" + tool_call_text("calculate", {"expression": "6*7"}),
                "The note says kept; 6*7 = 42.",
            )
            after = await run.turn(f"{FOLLOW_UP} ({follow})")
            steps = [(s.name, s.status) for s in after.steps if s.kind == "tool"]
            obs.check(
                steps == [("read_note", "ok"), ("calculate", "ok")] and "42" in after.answer,
                f"the next turn did not work with the other tools: {steps} {after.answer!r}",
            )
            restarted = server_pids(marker)
            if case.startswith("mcp/") and "start" not in case:
                obs.check(restarted == pid and len(pid) == 1, "the server process changed, it should have stayed up")
            asked_ = await run.questions()
            obs.check(
                question_for(case, "agent") in asked_ and any(follow in q for q in asked_),
                "a question is missing from the thread (a lost turn)",
            )
        await box.aclose()
        obs.check(server_pids(marker) == [], "a server process is left after aclose()")
    finally:
        await box.aclose()
        logging.getLogger().removeHandler(handler)
    logged = logs.getvalue()
    check_shows(obs, want, "\n".join([*shown, logged]))
    common_checks(obs, *shown, logged)
    matrix.verdict(obs)


# ------------------------------------------------------------------ the fake server's fault modes, on the wire


def test_fake_server_fault_modes_on_the_wire(servers: Servers) -> None:
    """The modes the matrix relies on behave as described in graph/demo/chat.py (not a matrix row)."""
    import httpx

    main = servers.main
    headers = {"Authorization": f"Bearer {SECRET}"}

    def body(tag: str, stream: bool) -> dict[str, Any]:
        return {"model": MODEL, "messages": [{"role": "user", "content": f"hi {tag}"}], "stream": stream}

    main.script_for("wirea", Reply(status=503, headers={"Retry-After": "1"}))
    main.script_for("wireb", Reply(text=WORDS, drop_after_tokens=3))
    main.script_for("wirec", Reply(text=WORDS, stall_after_tokens=2))
    main.script_for("wired", Reply(text=WORDS, drop_after_tokens=3))
    with httpx.Client(base_url=main.url, headers=headers, timeout=5) as http:
        refused = http.post("/v1/chat/completions", json=body("wirea", False))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "ServiceUnavailableError"
        events: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError):
            with http.stream("POST", "/v1/chat/completions", json=body("wireb", True)) as response:
                events.extend(line for line in response.iter_lines() if line.startswith("data: "))
        assert len(events) == 4 and "[DONE]" not in "".join(events)  # the role chunk and 3 tokens, no end
        events.clear()
        with pytest.raises(httpx.ReadTimeout):
            with http.stream(
                "POST", "/v1/chat/completions", json=body("wirec", True), timeout=httpx.Timeout(5, read=0.5)
            ) as response:
                events.extend(line for line in response.iter_lines() if line.startswith("data: "))
        assert len(events) == 3
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v1/chat/completions", json=body("wired", False))
        garbage = http.get("/open-meteo/v1/search", params={"name": "fault-garbage"})
        assert garbage.status_code == 200 and not garbage.text.startswith("{")
        assert http.get("/open-meteo/v1/search", params={"name": "fault-500"}).status_code == 500
        huge = http.get("/open-meteo/v1/search", params={"name": "fault-huge"}).json()
        assert len(huge["results"][0]["name"]) > HUGE
        with pytest.raises(httpx.ReadTimeout):
            http.get("/open-meteo/v1/search", params={"name": "fault-hang"}, timeout=httpx.Timeout(5, read=0.3))
        assert http.get("/open-meteo/v1/search", params={"name": "Paris"}).json()["results"][0]["name"] == "Paris"


def test_checkpoint_file_failures_are_explained() -> None:
    """graph/errors.py words a full disk and a damaged checkpoint file (not a matrix row)."""
    import errno

    from graph.errors import EXIT_FAILURE, EXIT_USAGE, explain

    full = explain(sqlite3.OperationalError("database or disk is full"), base_url=CLOSED_URL, model=MODEL)
    assert full.exit_code == EXIT_FAILURE and "AGENT_CHECKPOINT_DB" in str(full) and "Free some space" in str(full)
    efbig = explain(OSError(errno.EFBIG, "File too large"), base_url=CLOSED_URL, model=MODEL)
    assert "disk is probably full" in str(efbig)
    damaged = explain(sqlite3.DatabaseError("file is not a database"), base_url=CLOSED_URL, model=MODEL)
    assert damaged.exit_code == EXIT_USAGE and "not a SQLite database" in str(damaged)
    assert "Move it aside" in str(damaged)
