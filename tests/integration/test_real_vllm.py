"""Against a real vLLM server: run only when VLLM_BASE_URL is set (e.g. http://localhost:8000/v1)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_cli

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not os.environ.get("VLLM_BASE_URL"), reason="set VLLM_BASE_URL to test a real vLLM"),
]


@pytest.fixture
def real_vllm(monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", os.environ["VLLM_BASE_URL"])
    monkeypatch.setenv("OPENAI_API_KEY", os.environ.get("VLLM_API_KEY", "EMPTY"))
    if os.environ.get("VLLM_MODEL"):
        monkeypatch.setenv("AGENT_MODEL", os.environ["VLLM_MODEL"])


def test_doctor_passes(real_vllm):
    proc = run_cli("doctor", "--json", timeout=300)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report


@pytest.mark.parametrize("question", ["What time is it in Tokyo?", "现在东京几点？"])
def test_time_question_round_trip(real_vllm, question):
    proc = run_cli("run", question, "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    tools = [s for s in out["steps"] if s["kind"] == "tool"]
    assert any(s["name"] == "get_current_time" and s["status"] == "ok" for s in tools)
    assert out["answer"] and "<tool_call>" not in out["answer"]


def test_parallel_calls_and_multi_turn(real_vllm):
    first = json.loads(run_cli("run", "What is 17*23, and what time is it in UTC?", "--json", timeout=300).stdout)
    names = {s["name"] for s in first["steps"] if s["kind"] == "tool"}
    assert {"calculate", "get_current_time"} <= names
    second = run_cli("run", "Add 1 to that product.", "--json", "--thread", first["thread_id"], timeout=300)
    assert "392" in json.loads(second.stdout)["answer"]
