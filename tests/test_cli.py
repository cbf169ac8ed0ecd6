"""The real CLI as a subprocess against the demo server: answers, JSON, threads, and every error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from graph.demo.server import Reply, tool_call_text
from tests.conftest import ROOT, run_cli


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_run_english_streams_answer_and_shows_tool_steps(vllm):
    proc = run_cli("run", "What time is it in Tokyo, and what's the weather there?")
    assert proc.returncode == 0, proc.stderr
    assert "→ get_current_time" in proc.stderr and "→ get_city_weather" in proc.stderr
    assert "✓ get_current_time" in proc.stderr and "✓ get_city_weather" in proc.stderr
    assert "Tokyo" in proc.stdout
    assert "<tool_call>" not in proc.stdout
    assert "Using model Qwen/Qwen2.5-7B-Instruct" in proc.stderr  # AGENT_MODEL unset: says which it took


def test_run_chinese_question(vllm):
    proc = run_cli("run", "查询北京的天气")
    assert proc.returncode == 0, proc.stderr
    assert "get_city_weather" in proc.stderr and "北京" in proc.stderr
    assert any("\u4e00" <= ch <= "\u9fff" for ch in proc.stdout)


def test_run_json_output_and_thread_continuation(vllm):
    first = run_cli("run", "What time is it in Paris?", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert set(out) >= {"answer", "thread_id", "steps", "usage", "latency_ms"}
    assert [s["kind"] for s in out["steps"]] == ["model", "tool", "model"]
    assert out["steps"][1]["arguments"] == {"timezone": "Europe/Paris"} and out["steps"][1]["duration_ms"] >= 0
    assert out["usage"]["total_tokens"] > 0 and out["latency_ms"] > 0
    second = run_cli("run", "And the weather there?", "--json", "--thread", out["thread_id"], "--no-stream")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["thread_id"] == out["thread_id"]
    users = [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["What time is it in Paris?", "And the weather there?"]
    assert "stream_options" not in vllm.requests[-1]  # --no-stream sends a plain request


def test_list_tools_text_and_json():
    proc = run_cli("list-tools", "--json")
    assert proc.returncode == 0
    tools = {t["name"]: t for t in json.loads(proc.stdout)["tools"]}
    assert set(tools) == {"get_current_time", "get_city_weather", "calculate"}
    assert "timezone" in tools["get_current_time"]["parameters"]["properties"]
    text = run_cli("list-tools")
    assert "get_city_weather" in text.stdout and "city" in text.stdout


def test_repl_multi_turn_and_commands(vllm):
    proc = run_cli("repl", input="What time is it in Tokyo?\n/tools\nAnd the weather there?\n/new\nhi\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert "get_current_time" in proc.stdout  # /tools
    assert "New conversation" in proc.stderr
    users = [m["content"] for m in vllm.requests[-2]["messages"] if m["role"] == "user"]
    assert users == ["What time is it in Tokyo?", "And the weather there?"]
    assert [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "user"] == ["hi"]


def test_demo_flag_needs_no_server(monkeypatch):
    proc = run_cli("run", "--demo", "北京现在几点？")
    assert proc.returncode == 0, proc.stderr
    assert "demo model (scripted, no GPU)" in proc.stderr and "get_current_time" in proc.stderr


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("unreachable", "Cannot reach the model server at http://127.0.0.1:9/v1"),
        ("bad_key", "refused the API key (401 Unauthorized)"),
        ("unknown_model", "The model 'gpt-4' is not served"),
        ("no_parser", "--enable-auto-tool-choice --tool-call-parser hermes"),
        ("too_long", "no longer fits the model's context window (max 64 tokens)"),
        ("max_tokens", "AGENT_MAX_TOKENS=1024 is more than the server's whole context window (max_model_len=64)"),
    ],
)
def test_endpoint_errors_give_one_line_and_exit_3(vllm, monkeypatch, setup, expected):
    args = ["run", "What time is it in Tokyo?"]
    if setup == "unreachable":
        monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    elif setup == "bad_key":
        vllm.config.api_key = "s3cret-server-key"
        monkeypatch.setenv("OPENAI_API_KEY", "wrong-key-123")
    elif setup == "unknown_model":
        args += ["--model", "gpt-4"]
    elif setup == "no_parser":
        vllm.config.enable_auto_tool_choice = False
    elif setup == "max_tokens":
        vllm.config.max_model_len = 64
    elif setup == "too_long":
        vllm.config.max_model_len = 64
        monkeypatch.setenv("AGENT_MAX_TOKENS", "16")
    proc = run_cli(*args)
    assert proc.returncode == 3, proc.stderr
    no_traceback(proc)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and expected in lines[0]
    if setup == "unknown_model":
        assert "it serves: Qwen/Qwen2.5-7B-Instruct" in lines[0]
    assert "wrong-key-123" not in proc.stderr + proc.stdout
    assert "s3cret" not in proc.stderr + proc.stdout


def test_mid_stream_failure_exits_1_with_one_line(vllm):
    vllm.script(Reply(text="partial answer that breaks", error_after_tokens=2))
    proc = run_cli("run", "hello")
    assert proc.returncode == 1
    no_traceback(proc)
    assert "model server failed while answering" in proc.stderr


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"AGENT_MAX_STEPS": "-3"}, [], "Invalid setting AGENT_MAX_STEPS=-3"),
        ({"OPENAI_API_BASE": "localhost:8000"}, [], "Invalid setting OPENAI_API_BASE=localhost:8000"),
        ({}, ["--max-steps", "0"], "--max-steps must be at least 1"),
        ({}, ["--base-url", "not a url"], "Invalid setting OPENAI_API_BASE=not a url"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(env, args, expected):
    proc = run_cli("run", "hi", *args, env=env)
    assert proc.returncode == 2
    no_traceback(proc)
    assert expected in proc.stderr


def test_bad_env_file_line_is_reported(isolated_env):
    (isolated_env / ".env").write_text("AGENT_TEMPERATURE=hot\n")
    proc = run_cli("run", "hi")
    assert proc.returncode == 2 and "AGENT_TEMPERATURE=hot" in proc.stderr


def test_usage_error_exits_2():
    proc = run_cli("run")
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


def test_cli_does_not_import_ui_or_heavy_modules_for_help():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "doctor" in proc.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, graph.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('gradio', 'langchain_openai', 'langgraph', 'openai', 'ui')))",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_doctor_ok(vllm):
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("endpoint", "model served", "chat", "tool calling", "streaming"):
        assert name in proc.stdout
    assert "time to first token" in proc.stdout and "tok/s" in proc.stdout


def test_doctor_without_tool_parser_names_the_flags(vllm):
    vllm.config.enable_auto_tool_choice = False
    proc = run_cli("doctor", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    check = next(c for c in report["checks"] if c["name"] == "tool calling")
    assert check["status"] == "fail"
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in check["fix"]


def test_doctor_names_the_parser_for_a_mismatched_model(vllm):
    vllm.config.served_model_names = ["Qwen/Qwen3-Coder-30B-A3B-Instruct"]
    vllm.config.model_family = "qwen3_coder"
    proc = run_cli("doctor", "--json")
    assert proc.returncode == 1
    check = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "tool calling")
    assert check["status"] == "fail" and "--tool-call-parser qwen3_coder" in check["fix"]


def test_doctor_unreachable_and_unauthorized_exit_3(vllm, monkeypatch):
    vllm.config.api_key = "k"
    proc = run_cli("doctor")
    assert proc.returncode == 3 and "401" in proc.stdout
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    proc = run_cli("doctor")
    assert proc.returncode == 3 and "cannot connect" in proc.stdout
    no_traceback(proc)


def test_unknown_model_names_what_is_served_in_doctor(vllm):
    proc = run_cli("doctor", "--model", "gpt-4")
    assert proc.returncode == 3 and "Qwen/Qwen2.5-7B-Instruct" in proc.stdout


def test_text_tool_calls_recovered_through_the_cli(vllm):
    broken = tool_call_text("get_current_time", {"timezone": "Asia/Tokyo"}).replace('"}}', '"}')
    vllm.script(broken, "It is 9pm in Tokyo.")
    proc = run_cli("run", "time in Tokyo?", "--no-stream", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == "It is 9pm in Tokyo."
    assert out["steps"][1]["recovered"] is True and out["steps"][1]["status"] == "ok"


def test_concurrent_processes_share_one_checkpoint_file(vllm):
    # The UI, the CLI and a batch may write the same SQLite file at once (WAL + busy timeout).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "graph.cli", "run", q, "--json", "--thread", f"c{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, q in enumerate(["What time is it in Tokyo?", "查询北京的天气", "calculate 2^10", "time in Paris?"])
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outputs]
    assert all("locked" not in err for _, err in outputs)
    follow = run_cli("run", "And in London?", "--json", "--thread", "c0")
    assert follow.returncode == 0
    users = [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["What time is it in Tokyo?", "And in London?"]


# ----------------------------------------------------------------- whole tool descriptions, wrapped (#11)

WRAP_COLUMNS = 60


def tool_texts() -> list[str]:
    """Every tool's description and every parameter's description, as the model sees them."""
    from tools import TOOLS

    texts = []
    for t in TOOLS:
        texts.append(t.description)
        texts += [
            p["description"]
            for p in t.tool_call_schema.model_json_schema()["properties"].values()
            if p.get("description")
        ]
    return texts


def assert_whole_and_wrapped(out: str, width: int) -> None:
    from rich.cells import cell_len

    squeezed = "".join(out.split())  # the wrapping only moves whitespace
    for text in tool_texts():
        assert "".join(text.split()) in squeezed, f"cut or missing: {text!r}"
    too_wide = [line for line in out.splitlines() if cell_len(line) > width]
    assert not too_wide, too_wide


def test_list_tools_shows_every_whole_description_wrapped_to_the_terminal():
    proc = run_cli("list-tools", env={"COLUMNS": str(WRAP_COLUMNS)})
    assert proc.returncode == 0, proc.stderr
    assert_whole_and_wrapped(proc.stdout, WRAP_COLUMNS)
    lines = proc.stdout.splitlines()
    # Parameters sit under their tool, indented deeper than its description.
    timezone = next(i for i, line in enumerate(lines) if line.strip().startswith("timezone: string"))
    assert lines[timezone].startswith("    ") and lines[timezone + 1].startswith("      IANA timezone")
    assert lines.index("get_current_time") < timezone < lines.index("get_city_weather")


def test_list_tools_wraps_chinese_by_its_width():
    from rich.cells import cell_len

    from graph.cli.info import wrapped

    text = "查询一个城市当前的天气：温度、体感温度、湿度和风速。" * 3 + " Works in English too."
    lines = wrapped(text, 6, 40)
    assert len(lines) > 3 and all(line.startswith(" " * 6) and cell_len(line) <= 40 for line in lines)
    assert "".join("".join(lines).split()) == "".join(text.split())


def test_repl_tools_shows_every_whole_description(vllm):
    proc = run_cli("repl", input="/tools\n/exit\n", env={"COLUMNS": str(WRAP_COLUMNS)})
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert_whole_and_wrapped(proc.stdout.replace("you> ", ""), WRAP_COLUMNS)
