"""The agent's real interfaces (CLI run, doctor, batch, the UI chat) against real vLLM 0.33 and the scripted server."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import report
from tests.conftest import run_cli

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

MODEL = "Qwen/Qwen2.5-7B-Instruct"
KEY = "conformance-test-key"
WRONG_KEY = "sk-wrong-conformance-key-9d1e"
# The flag sets of tests/conformance/test_vllm_app.py where they match, so one session shares their servers.
FLAGS = {
    "tools": ("--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--served-model-name", MODEL),
    "plain": ("--api-key", KEY, "--max-model-len", "2048"),  # no tool flags, a key, a short context
    "reasoning": ("--reasoning-parser", "qwen3", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"),
    "short": (
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--served-model-name",
        MODEL,
        "--max-model-len",
        "2048",
    ),
}
# The same "servers" on the scripted side (graph.demo DemoConfig fields).
CONFIGS: dict[str, dict[str, Any]] = {
    "tools": {},
    "plain": {
        "api_key": KEY,
        "enable_auto_tool_choice": False,
        "max_model_len": 2048,
        "served_model_names": ["/root/.cache/work-agent-conformance/qwen2.5"],
    },  # served by its path
    "short": {"max_model_len": 2048},
    "reasoning": {"reasoning_parser": "qwen3"},
}
SERVERS = ("real", "scripted")
TIME_Q = "What time is it in Tokyo?"
PARALLEL_Q = "What time is it in Tokyo, and what's the weather there?"
CHINESE_Q = "查询北京的天气"
CLI_TIMEOUT = 180.0


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def no_traceback(proc: Any) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-2000:]


def error_lines(proc: Any) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("Error:")]


def cli(*args: str, **env: str) -> Any:
    return run_cli(*args, timeout=CLI_TIMEOUT, env=env or None)


# --- the two servers behind one interface --------------------------------------------------------


@dataclass
class Target:
    """One server the agent talks to (real vLLM on the scripted core, or the project's scripted server)."""

    kind: str
    base_url: str
    real: Any = None  # tests.conformance.harness.RealVllm
    demo: Any = None  # graph.demo.server.DemoServer

    def script(self, text: str, *, error_after_tokens: int | None = None) -> None:
        """The next reply's raw model text (optionally failing after N tokens)."""
        if self.real is not None:
            from tests.conformance.harness import Reply as RealReply

            self.real.script(RealReply(text=text, error_after_tokens=error_after_tokens))
        else:
            from graph.demo.server import Reply

            self.demo.script(Reply(text=text, error_after_tokens=error_after_tokens))

    def conversations(self) -> list[list[dict[str, Any]]]:
        """The messages of every chat request the server received, in order (as the server read them)."""
        if self.real is not None:
            from tests.conformance.vllm_app.chatml import body_from_prompt

            return [body_from_prompt(r["prompt"])["messages"] for r in self.real.stats()["requests"]]
        return [list(r["messages"]) for r in self.demo.requests]

    def served(self) -> list[str]:
        import httpx

        headers = {"Authorization": f"Bearer {KEY}"}
        return [card["id"] for card in httpx.get(f"{self.base_url}/models", headers=headers).json()["data"]]


def user_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


@pytest.fixture(params=SERVERS)
def serve(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, demo_server: Any) -> Callable[[str], Target]:
    """Factory: `serve("tools" | "plain" | "short")` points the agent (env) at that server, real or scripted.

    The weather tool always uses the scripted server's Open-Meteo stand-in (the session's demo server).
    """

    def start(setup: str = "tools") -> Target:
        from configs.settings import get_settings
        from graph import model
        from graph.demo.server import DemoConfig

        if request.param == "real":
            server = request.getfixturevalue("real_vllm")(*FLAGS[setup])
            target = Target("real", server.base_url, real=server)
        else:
            demo = request.getfixturevalue("vllm")
            demo.config = DemoConfig(**CONFIGS[setup])
            target = Target("scripted", demo.base_url, demo=demo)
        monkeypatch.setenv("OPENAI_API_BASE", target.base_url)
        for name, value in demo_server.weather_env().items():
            monkeypatch.setenv(name, value)
        if setup == "plain":
            monkeypatch.setenv("OPENAI_API_KEY", KEY)
        get_settings.cache_clear()
        model._RESOLVED.clear()
        return target

    return start


# --- results, per scenario and server, for docs/conformance.md -----------------------------------


@dataclass
class Outcome:
    """What a test says about its scenario; `passed` is called last, so a failed assertion leaves it unset."""

    scenario: str
    server: str
    note: str = ""
    ok: bool = False

    def passed(self, note: str = "") -> None:
        self.ok, self.note = True, note


RESULTS: dict[str, dict[str, str]] = {}
NOTES: dict[str, dict[str, str]] = {}


def _port_free(note: str) -> str:
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", note)


@pytest.fixture(scope="module", autouse=True)
def _write_results() -> Iterator[None]:
    """Record each scenario's result per server; a server that did not run it this session keeps the old cell."""
    yield
    for scenario, by_server in RESULTS.items():
        notes = {s: _port_free(n) for s, n in NOTES.get(scenario, {}).items() if n}
        note: str | None = "; ".join(f"{s}: {n}" for s, n in notes.items())
        if len(set(notes.values())) == 1 and len(notes) == len(SERVERS):
            note = next(iter(notes.values()))
        if len(by_server) < len(SERVERS):
            note = None
        report.record("agent", scenario, real=by_server.get("real"), scripted=by_server.get("scripted"), note=note)


@pytest.fixture
def outcome(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Outcome]]:
    made: list[Outcome] = []
    failed_before = request.session.testsfailed

    def make(scenario: str) -> Outcome:
        made.append(Outcome(scenario, request.node.callspec.params["serve"]))
        return made[-1]

    yield make
    for result in made:  # the call phase has been reported: a failure already counts in testsfailed
        status = "ok" if result.ok else "FAIL" if request.session.testsfailed > failed_before else "skipped"
        RESULTS.setdefault(result.scenario, {})[result.server] = status
        NOTES.setdefault(result.scenario, {})[result.server] = (
            result.note if result.ok else ("failed: see the pytest output" if status == "FAIL" else "")
        )


# --- run ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stream", "no-stream"])
def test_run_answers_and_shows_the_tool_step(serve, outcome, mode):
    result = outcome(f"run ({mode}): English time question")
    target = serve("tools")
    proc = cli("run", TIME_Q, *(["--no-stream"] if mode == "no-stream" else []))
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert '→ get_current_time {"timezone": "Asia/Tokyo"}' in proc.stderr
    assert "✓ get_current_time" in proc.stderr
    assert "Tokyo" in proc.stdout and "<tool_call>" not in proc.stdout
    assert user_texts(target.conversations()[-1]) == [TIME_Q]
    result.passed()


def test_run_keeps_a_thinking_models_reasoning_apart_and_never_sends_it_back(serve, outcome):
    from graph.demo.server import tool_call_text

    result = outcome("run --json: Qwen3 thinking (--reasoning-parser qwen3), then a tool call")
    target = serve("reasoning")
    target.script(
        "<think>\nThe user wants the time: call the clock.\n</think>\n\n"
        + tool_call_text("get_current_time", {"timezone": "Asia/Tokyo"})
    )
    target.script("<think>\nThe clock answered.\n</think>\n\nIt is evening in Tokyo.")
    proc = cli("run", TIME_Q, "--json")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    out = json.loads(proc.stdout)
    assert out["answer"] == "It is evening in Tokyo."
    plan = out["steps"][0]
    assert plan["reasoning"].strip() == "The user wants the time: call the clock." and plan["reasoning_tokens"] > 0
    assert [s["name"] for s in out["steps"] if s["kind"] == "tool"] == ["get_current_time"]
    assert "call the clock" not in json.dumps(target.conversations()[-1])  # never sent back
    result.passed()


def test_run_parallel_calls_in_one_round(serve, outcome):
    result = outcome("run: two tool calls in one round (time + weather)")
    serve("tools")
    proc = cli("run", PARALLEL_Q, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [s["kind"] for s in out["steps"]] == ["model", "tool", "tool", "model"]
    assert out["steps"][0]["tool_calls"] == ["get_current_time", "get_city_weather"]
    tools = {s["name"]: s for s in out["steps"] if s["kind"] == "tool"}
    assert tools["get_current_time"]["arguments"] == {"timezone": "Asia/Tokyo"}
    assert tools["get_city_weather"]["arguments"] == {"city": "Tokyo"}
    assert all(s["status"] == "ok" for s in tools.values()), tools
    assert "demo data" in tools["get_city_weather"]["result"]  # the stand-in answered, not Open-Meteo
    assert "Tokyo" in out["answer"]
    result.passed()


def test_run_chinese_weather_question(serve, outcome):
    result = outcome("run: 查询北京的天气 (Chinese answer with the weather)")
    serve("tools")
    proc = cli("run", CHINESE_Q, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    [tool] = [s for s in out["steps"] if s["kind"] == "tool"]
    assert (tool["name"], tool["arguments"], tool["status"]) == ("get_city_weather", {"city": "北京"}, "ok")
    assert has_chinese(out["answer"]) and "北京" in out["answer"] and "°C" in out["answer"]
    result.passed()


def test_run_continues_a_thread(serve, outcome):
    result = outcome("run --thread ID twice: the second request carries the first turn")
    target = serve("tools")
    thread = f"conf-{uuid.uuid4().hex[:8]}"
    first = cli("run", "What time is it in Paris?", "--thread", thread)
    assert first.returncode == 0, first.stderr
    second = cli("run", "And the weather there?", "--thread", thread, "--json")
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert out["thread_id"] == thread
    last = target.conversations()[-1]
    assert user_texts(last) == ["What time is it in Paris?", "And the weather there?"]
    roles = [m["role"] for m in last]
    assert "tool" in roles[: len(roles) - roles[::-1].index("user") - 1]  # turn 1's tool result came along
    assert "Paris" in out["answer"]
    result.passed()


# --- doctor -------------------------------------------------------------------------------------


def doctor_checks(proc: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_doctor_healthy(serve, outcome):
    result = outcome("doctor: healthy server (exit 0)")
    serve("tools")
    proc = cli("doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = doctor_checks(proc)
    assert [checks[n]["status"] for n in ("endpoint", "model served", "chat", "tool calling", "streaming")] == [
        "ok"
    ] * 5, checks
    assert checks["tool calling"]["detail"].startswith("get_current_time(")
    result.passed(f"tool calling: {checks['tool calling']['detail']}")


def test_doctor_without_tool_flags_names_them(serve, outcome):
    result = outcome("doctor: server without tool flags (names --enable-auto-tool-choice --tool-call-parser)")
    serve("plain")
    proc = cli("doctor", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    check = doctor_checks(proc)["tool calling"]
    assert check["status"] == "fail"
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in check["fix"]
    result.passed(check["detail"])


def test_wrong_key_is_the_401_line(serve, outcome):
    result = outcome("doctor and run: wrong API key (the 401 line, exit 3)")
    serve("plain")
    doctor = cli("doctor", OPENAI_API_KEY=WRONG_KEY)
    assert doctor.returncode == 3, doctor.stdout + doctor.stderr
    assert "401" in doctor.stdout and "OPENAI_API_KEY" in doctor.stdout
    run = cli("run", TIME_Q, OPENAI_API_KEY=WRONG_KEY)
    assert run.returncode == 3, run.stderr
    no_traceback(run)
    [line] = error_lines(run)
    assert "refused the API key (401 Unauthorized)" in line
    for proc in (doctor, run):
        assert WRONG_KEY not in proc.stdout + proc.stderr and KEY not in proc.stdout + proc.stderr
    result.passed(line)


@pytest.mark.parametrize("setup", ["tools", "plain"])
def test_unknown_model_lists_the_served_names(serve, outcome, setup):
    named = "--served-model-name" if setup == "tools" else "the model folder's path (no --served-model-name)"
    result = outcome(f"doctor and run: AGENT_MODEL not served, served as {named} (the 404 line, exit 3)")
    target = serve(setup)
    served = target.served()
    doctor = cli("doctor", "--json", AGENT_MODEL="gpt-4")
    assert doctor.returncode == 3, doctor.stdout + doctor.stderr
    check = doctor_checks(doctor)["model served"]
    assert check["detail"] == "gpt-4 is not served" and served[0] in check["fix"]
    run = cli("run", TIME_Q, AGENT_MODEL="gpt-4")
    assert run.returncode == 3, run.stderr
    no_traceback(run)
    [line] = error_lines(run)
    assert "The model 'gpt-4' is not served" in line and f"it serves: {', '.join(served)}." in line
    assert KEY not in run.stdout + run.stderr
    result.passed(line.replace(served[0], "NAME"))


def test_too_long_prompt_is_the_context_window_line(serve, outcome):
    result = outcome("run: prompt longer than --max-model-len 2048 (the context-window line, exit 3)")
    serve("short")
    proc = cli("run", "Summarise this: " + "word " * 2100)
    assert proc.returncode == 3, proc.stderr
    no_traceback(proc)
    [line] = error_lines(proc)
    assert "no longer fits the model's context window (max 2048 tokens)" in line
    result.passed(line)


# --- faults in the reply ------------------------------------------------------------------------


def test_cut_tool_call_is_not_run(serve, outcome):
    result = outcome("run: AGENT_MAX_TOKENS=12 cuts the tool call (says so, runs no tool)")
    target = serve("tools")
    proc = cli("run", TIME_Q, "--json", AGENT_MAX_TOKENS="12")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [s["kind"] for s in out["steps"]] == ["model"]  # no tool ran, no second model call
    assert out["steps"][0]["finish_reason"] == "length" and out["stopped"] == "length"
    assert "cut at the token limit" in out["answer"] and "AGENT_MAX_TOKENS" in out["answer"]
    assert len(target.conversations()) == 1
    result.passed(out["answer"].splitlines()[-1])


def test_engine_error_mid_stream_is_one_line(serve, outcome):
    result = outcome("run: the engine fails mid-stream (one 'model server failed' line, exit 1)")
    target = serve("tools")
    target.script("Partial answer that breaks here and never ends.", error_after_tokens=3)
    proc = cli("run", "Say something long")
    assert proc.returncode == 1, proc.stderr
    no_traceback(proc)
    [line] = error_lines(proc)
    assert "The model server failed while answering" in line
    result.passed(line)


# --- batch --------------------------------------------------------------------------------------


BATCH = [
    {"id": "tokyo", "question": TIME_Q},
    {"id": "bj-weather", "question": CHINESE_Q},
    {"id": "calc", "question": "计算 (3+5)*12"},
    {"id": "paris-weather", "question": "What's the weather in Paris?"},
    {"id": "bj-time", "question": "北京现在几点？"},
]


def test_small_batch_all_ok(serve, outcome, tmp_path: Path):
    result = outcome("batch: 5 questions (en + zh), JSONL in, rows out, all ok")
    serve("tools")
    questions = tmp_path / "问题.jsonl"
    questions.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in BATCH), encoding="utf-8")
    proc = cli("batch", str(questions), "--concurrency", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [
        json.loads(line) for line in (tmp_path / "问题.jsonl.answers.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert sorted(r["id"] for r in rows) == sorted(q["id"] for q in BATCH)
    assert [r["status"] for r in rows] == ["ok"] * 5, [(r["id"], r["error"]) for r in rows]
    by_id = {r["id"]: r for r in rows}
    assert "96" in by_id["calc"]["answer"] and has_chinese(by_id["bj-weather"]["answer"])
    assert all(r["tool_errors"] == 0 and r["answer"] for r in rows)
    result.passed()


# --- the web UI's chat function -----------------------------------------------------------------


class _Request:
    username = None


def _chat(messages: list[Any]) -> list[tuple[str, str, str]]:
    """(role, title, content) of each chat message."""
    out = []
    for m in messages:
        role, meta, content = (
            (m.get("role"), m.get("metadata"), m.get("content"))
            if isinstance(m, dict)
            else (m.role, m.metadata, m.content)
        )
        out.append((str(role), str((meta or {}).get("title") or ""), str(content)))
    return out


async def test_ui_chat_function_answers_with_a_trace(serve, outcome):
    result = outcome("UI: Handlers.run, one question (answer and trace)")
    serve("tools")
    from configs.settings import load_settings
    from tools import TOOLS
    from ui.backend import Backend, Session
    from ui.handlers import Handlers

    backend = Backend(load_settings())
    session = Session()
    try:
        outputs = [
            out
            async for out in Handlers(backend).run(
                PARALLEL_Q, session, "owner", None, None, 0.2, 1024, 8, [t.name for t in TOOLS], _Request()
            )
        ]
    finally:
        await backend.close()
    chat = _chat(session.display())
    assert not [c for _, t, c in chat if t.startswith("💥")], chat
    answer = [c for role, title, c in chat if role == "assistant" and not title][-1]
    assert "Tokyo" in answer and "<tool_call>" not in answer
    # the trace download: the one output that is a .json file (the approval panel's outputs come after it)
    download = next(o for o in outputs[-1] if isinstance(o, dict) and str(o.get("value", "")).endswith(".json"))
    trace = json.loads(Path(download["value"]).read_text(encoding="utf-8"))
    tools = [(s["name"], s["status"]) for s in trace["steps"] if s["kind"] == "tool"]
    assert sorted(tools) == [("get_city_weather", "ok"), ("get_current_time", "ok")]
    result.passed()
