"""The harness's own logic without a server: the venv check, redaction, and reading ChatML prompts back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conformance import harness
from tests.conformance.vllm_app.chatml import body_from_prompt

QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOL = {
    "type": "function",
    "function": {"name": "get_current_time", "description": "Time", "parameters": {"type": "object", "properties": {}}},
}
TOOLS_BLOCK = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\n<tools>\n" + json.dumps(TOOL) + "\n</tools>\n\nFor each "
    "function call, return a json object with function name and arguments within <tool_call></tool_call> XML "
    'tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


@pytest.fixture(autouse=True)
def fresh_check():
    harness.check_installed.cache_clear()
    yield
    harness.check_installed.cache_clear()


def test_a_missing_vllm_venv_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.delenv(harness.PYTHON_VAR, raising=False)
    monkeypatch.setattr(harness, "DEFAULT_PYTHON", tmp_path / "missing" / "python")
    with pytest.raises(harness.Unavailable) as caught:
        harness.check_installed()
    assert str(caught.value) == (
        "needs vLLM 0.33 in .venv-vllm: python3 -m venv .venv-vllm && "
        ".venv-vllm/bin/pip install -r tests/conformance/requirements.txt"
    )


def test_another_vllm_than_the_pin_asks_for_a_reinstall(monkeypatch, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 0.32.1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(harness.PYTHON_VAR, str(fake))
    with pytest.raises(harness.Unavailable) as caught:
        harness.check_installed()
    assert str(caught.value) == (
        f"{fake} has vLLM 0.32.1 but tests/conformance/requirements.txt pins {harness.pinned_version()}: "
        f"{fake} -m pip install -r tests/conformance/requirements.txt"
    )


def test_a_python_without_vllm_counts_as_missing(monkeypatch):
    import sys

    monkeypatch.setenv(harness.PYTHON_VAR, sys.executable)  # the main venv: no vLLM, by design
    with pytest.raises(harness.Unavailable, match="needs vLLM 0.33 at WORK_AGENT_VLLM_PYTHON="):
        harness.check_installed()


def test_the_pin_is_read_from_requirements_txt():
    text = Path(harness.REQUIREMENTS).read_text()
    assert f"vllm=={harness.pinned_version()}\n" in text


def test_api_keys_are_redacted_from_commands_and_logs():
    assert harness.redact("python -m x --port 1 --api-key s3cret --max-model-len 2048") == (
        "python -m x --port 1 --api-key *** --max-model-len 2048"
    )
    assert harness.redact("--api_key=s3cret") == "--api_key=***"


def test_a_rendered_conversation_reads_back_with_tools_calls_and_results_in_order():
    prompt = (
        f"<|im_start|>system\n{QWEN25_SYSTEM}{TOOLS_BLOCK}"
        "<|im_start|>user\nTime in Tokyo and Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_current_time", "arguments": '
        '{"timezone": "Asia/Tokyo"}}\n</tool_call>\n<tool_call>\n{"name": "get_current_time", '
        '"arguments": {"timezone": "Europe/Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\n09:00\n</tool_response>\n<tool_response>\n02:00\n</tool_response>"
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    body = body_from_prompt(prompt)
    assert body["tools"] == [TOOL]
    system, user, assistant, first, second = body["messages"]
    assert system == {"role": "system", "content": QWEN25_SYSTEM}
    assert user == {"role": "user", "content": "Time in Tokyo and Paris?"}
    assert assistant["content"] is None
    assert [(c["id"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]] == [
        ("call_0", {"timezone": "Asia/Tokyo"}),
        ("call_1", {"timezone": "Europe/Paris"}),
    ]
    assert (first["tool_call_id"], first["content"]) == ("call_0", "09:00")
    assert (second["tool_call_id"], second["content"]) == ("call_1", "02:00")


def test_qwen3_thinking_and_the_generation_prompt_are_dropped():
    prompt = (
        "<|im_start|>user\n北京天气怎么样？<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\n"
        "晴。<|im_end|>\n<|im_start|>user\n谢谢<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert body_from_prompt(prompt) == {
        "messages": [
            {"role": "user", "content": "北京天气怎么样？"},
            {"role": "assistant", "content": "晴。"},
            {"role": "user", "content": "谢谢"},
        ]
    }
