"""Load the graph the way LangGraph Studio does (`langgraph dev`) and run a thread through the SDK."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graph.demo.server import tool_call_text
from graph.errors import UNREACHABLE
from tests.conftest import ROOT, run_cli
from tests.mcp.helpers import notes_spec

UNREACHABLE_BASE = "http://127.0.0.1:9/v1"

pytestmark = pytest.mark.skipif(shutil.which("langgraph") is None, reason="langgraph-cli[inmem] not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, proc: subprocess.Popen, log: Path, deadline_s: float = 90) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling the server's readiness endpoint
    pytest.fail(f"langgraph dev did not become ready:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    """Run a server command, its output in `log`; stop it (SIGTERM, which it must pass on) at the end."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def langgraph_dev(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`langgraph dev` from the repository root, as a user starts Studio's server; yields its URL."""
    port = free_port()
    log = tmp_path / "langgraph-dev.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        **env,
    }
    command = [
        sys.executable,
        "-m",
        "langgraph_cli",
        "dev",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        "--no-reload",
    ]
    with serving(command, env, ROOT, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ok(url, proc, log)
        yield url


@pytest.fixture
def studio(vllm, tmp_path):
    yield from langgraph_dev({"AGENT_MODEL": "Qwen/Qwen2.5-7B-Instruct"}, tmp_path)


@pytest.fixture
def studio_with_mcp(vllm, tmp_path):
    """Studio's server whose settings name an mcp.json with the notes MCP server (write_note: ask)."""
    notes = tmp_path / "notes"
    config = {"mcpServers": {"studio-notes": notes_spec("studio-notes", notes)}}
    (tmp_path / "mcp.json").write_text(json.dumps(config), encoding="utf-8")
    env = {"AGENT_MODEL": "Qwen/Qwen2.5-7B-Instruct", "AGENT_MCP_CONFIG": str(tmp_path / "mcp.json")}
    for url in langgraph_dev(env, tmp_path):
        yield url, notes


@pytest.fixture
def studio_unreachable(tmp_path):
    """Studio's server with no model server behind it (the conftest's OPENAI_API_BASE, port 9)."""
    yield from langgraph_dev({"OPENAI_API_BASE": UNREACHABLE_BASE}, tmp_path)


async def test_langgraph_dev_runs_a_thread_through_the_sdk(studio, vllm):
    from langgraph_sdk import get_client

    client = get_client(url=studio)
    (assistant,) = await client.assistants.search(graph_id="agent")
    assert assistant["name"] == "Work Agent"
    thread = await client.threads.create()
    state = await client.runs.wait(
        thread["thread_id"],
        "agent",
        input={"messages": [{"role": "user", "content": "What time is it in Tokyo?"}]},
    )
    tools = [s for s in state["steps"] if s["kind"] == "tool"]
    assert [t["name"] for t in tools] == ["get_current_time"] and tools[0]["status"] == "ok"
    assert state["messages"][-1]["type"] == "ai" and "Tokyo" in state["messages"][-1]["content"]
    again = await client.runs.wait(
        thread["thread_id"],
        "agent",
        input={"messages": [{"role": "user", "content": "查询北京的天气"}]},
    )
    users = [m["content"] for m in again["messages"] if m["type"] == "human"]
    assert users == ["What time is it in Tokyo?", "查询北京的天气"]
    weather = [s for s in again["steps"] if s["kind"] == "tool" and s["name"] == "get_city_weather"]
    assert len(weather) == 1 and weather[0]["status"] == "ok", weather
    assert "北京" in again["messages"][-1]["content"]
    assert len(vllm.requests) == 4


async def test_an_ask_tool_interrupts_the_run_and_a_resume_command_finishes_it(studio_with_mcp, vllm):
    from langgraph_sdk import get_client

    url, notes = studio_with_mcp
    client = get_client(url=url)
    thread = await client.threads.create()
    call = tool_call_text("write_note", {"title": "plan", "text": "周五发布"})
    vllm.script(call, "Saved the note 'plan'.")
    question = {"messages": [{"role": "user", "content": "Save a note called plan: 周五发布"}]}
    await client.runs.wait(thread["thread_id"], "agent", input=question)

    paused = await client.threads.get(thread["thread_id"])
    assert paused["status"] == "interrupted"
    [interrupt] = [i for pending in paused["interrupts"].values() for i in pending]
    [action] = interrupt["value"]["action_requests"]  # LangChain's HITLRequest, as Studio shows it
    assert (action["name"], action["args"], action["server"]) == (
        "write_note",
        {"title": "plan", "text": "周五发布"},
        "studio-notes",
    )
    assert interrupt["value"]["review_configs"] == [
        {"action_name": "write_note", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    assert not (notes / "notes" / "plan.txt").exists()  # nothing ran while it waits

    state = await client.runs.wait(
        thread["thread_id"], "agent", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    assert (notes / "notes" / "plan.txt").read_text(encoding="utf-8") == "周五发布"
    [step] = [s for s in state["steps"] if s["kind"] == "tool"]
    assert (step["name"], step["server"], step["decision"], step["status"]) == (
        "write_note",
        "studio-notes",
        "approved",
        "ok",
    )
    assert state["messages"][-1]["content"] == "Saved the note 'plan'."
    done = await client.threads.get(thread["thread_id"])
    assert done["status"] == "idle" and not any(done["interrupts"].values())


async def test_a_run_against_an_unreachable_endpoint_ends_with_the_cli_line(studio_unreachable):
    from langgraph_sdk import get_client

    line = UNREACHABLE.format(base_url=UNREACHABLE_BASE)
    client = get_client(url=studio_unreachable)
    thread = await client.threads.create()
    question = {"messages": [{"role": "user", "content": "What time is it in Tokyo?"}]}
    result = await client.runs.wait(thread["thread_id"], "agent", input=question, raise_error=False)
    assert result == {"__error__": {"error": "AgentError", "message": line}}
    errors = [
        part.data
        async for part in client.runs.stream(thread["thread_id"], "agent", input=question)
        if part.event == "error"
    ]
    assert errors == [{"error": "AgentError", "message": line}]  # what Studio's run view shows
    cli = run_cli("run", "What time is it in Tokyo?", env={"OPENAI_API_BASE": UNREACHABLE_BASE})
    assert (cli.returncode, cli.stderr.strip()) == (3, f"Error: {line}")  # the same line as the CLI


@pytest.fixture
def studio_demo(tmp_path):
    """`work-agent studio --demo` in a directory whose .env points somewhere else: the demo must win."""
    (tmp_path / ".env").write_text(
        f"OPENAI_API_BASE={UNREACHABLE_BASE}\nAGENT_MODEL=not-served\nAGENT_ENDPOINTS=[]\n"
        "WEATHER_FORECAST_URL=http://127.0.0.1:9/v1/forecast\n",
        encoding="utf-8",
    )
    port = free_port()
    log = tmp_path / "studio.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANGSMITH_TRACING": "false", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "graph.cli", "studio", "--demo", "--port", str(port), "--no-reload"]
    with serving(command, env, tmp_path, log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ok(url, proc, log)
        yield url, proc, log


async def test_studio_demo_answers_offline_with_demo_weather(studio_demo):
    from langgraph_sdk import get_client

    url, proc, log = studio_demo
    client = get_client(url=url)
    thread = await client.threads.create()
    state = await client.runs.wait(
        thread["thread_id"],
        "agent",
        input={"messages": [{"role": "user", "content": "查询北京的天气"}]},
    )
    [weather] = [s for s in state["steps"] if s["kind"] == "tool"]
    assert (weather["name"], weather["status"], weather["arguments"]) == ("get_city_weather", "ok", {"city": "北京"})
    assert weather["result"].startswith("[demo data (演示数据)") and "°C" in weather["result"]
    answer = state["messages"][-1]["content"]
    assert "北京" in answer and "demo data" in answer and "°C" in answer
    deadline = time.monotonic() + 10
    while "Studio page" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the log for the line printed right after the server answered /ok
    text = log.read_text()
    assert f"Local API (works offline):      {url}" in text
    assert f"https://smith.langchain.com/studio/?baseUrl={url}" in text and "needs internet" in text
    assert "Restart this command" in text
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    with pytest.raises(httpx.HTTPError):  # langgraph dev went with it
        httpx.get(f"{url}/ok", timeout=2)
