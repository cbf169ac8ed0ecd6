"""Load the graph the way LangGraph Studio does (`langgraph dev`) and run a thread through the SDK."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

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


@pytest.fixture
def studio(vllm, tmp_path):
    port = free_port()
    log = tmp_path / "langgraph-dev.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANGGRAPH_CLI_NO_ANALYTICS": "1",
           "LANGSMITH_TRACING": "false", "AGENT_MODEL": "Qwen/Qwen2.5-7B-Instruct"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "langgraph_cli", "dev", "--host", "127.0.0.1", "--port", str(port),
             "--no-browser", "--no-reload"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ok(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_langgraph_dev_runs_a_thread_through_the_sdk(studio, vllm):
    from langgraph_sdk import get_client

    client = get_client(url=studio)
    (assistant,) = await client.assistants.search(graph_id="agent")
    assert assistant["name"] == "Work Agent"
    thread = await client.threads.create()
    state = await client.runs.wait(
        thread["thread_id"], "agent",
        input={"messages": [{"role": "user", "content": "What time is it in Tokyo?"}]},
    )
    tools = [s for s in state["steps"] if s["kind"] == "tool"]
    assert [t["name"] for t in tools] == ["get_current_time"] and tools[0]["status"] == "ok"
    assert state["messages"][-1]["type"] == "ai" and "Tokyo" in state["messages"][-1]["content"]
    again = await client.runs.wait(
        thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "查询北京的天气"}]},
    )
    users = [m["content"] for m in again["messages"] if m["type"] == "human"]
    assert users == ["What time is it in Tokyo?", "查询北京的天气"]
    weather = [s for s in again["steps"] if s["kind"] == "tool" and s["name"] == "get_city_weather"]
    assert len(weather) == 1 and weather[0]["status"] == "ok", weather
    assert "北京" in again["messages"][-1]["content"]
    assert len(vllm.requests) == 4
