"""Smoke tests of the harness: the real vLLM server on the scripted core answers as vLLM 0.33 does."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conformance.harness import ROOT, Reply, pinned_version
from tests.conformance.vllm_app.chatml import body_from_prompt

MODEL = "Qwen/Qwen2.5-7B-Instruct"
KEY = "conformance-test-key"
# The agent's production flags; most tests share this one server.
TOOLS_FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--served-model-name", MODEL)
# No tool flags, a key and a short context: the error cases.
PLAIN_FLAGS = ("--api-key", KEY, "--max-model-len", "2048")
REASONING_FLAGS = ("--reasoning-parser", "qwen3", "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_city_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _client(server: Any, key: str = "EMPTY") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=60)


def _merge_tool_deltas(chunks: list[Any]) -> dict[int, dict[str, str]]:
    """Streamed tool-call deltas merged by index (argument deltas carry no id)."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
    return calls


def test_models_list_names_the_served_model_with_the_model_folder_as_root(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    card = _client(server).models.list().data[0].model_dump()
    assert card["id"] == MODEL
    assert card["owned_by"] == "vllm" and card["max_model_len"] == 32768
    folder = Path(card["root"])
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["vocab_size"] == 152064
    assert httpx.get(f"{server.url}/version").json() == {"version": pinned_version()}


def test_plain_chat_completion_returns_the_scripted_text(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    server.script("Hello from the scripted core. 你好！")
    response = _client(server).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}])
    choice = response.choices[0]
    assert choice.message.content == "Hello from the scripted core. 你好！"
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    [seen] = server.stats()["requests"]
    assert seen["prompt"].endswith("<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\n")
    assert seen["output_token_ids"][-1] == 151645  # <|im_end|> ended it
    assert response.usage.completion_tokens == len(seen["output_token_ids"])
    assert response.usage.prompt_tokens == seen["prompt_tokens"]


def test_the_control_api_refuses_a_bad_script_in_one_line(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    response = httpx.post(f"{server.url}/_script", json={"replies": [{"txt": "typo"}]})
    assert response.status_code == 400
    assert response.json() == {
        "error": (
            'POST /_script wants {"replies": [{"text": "..."}, ...]}: unknown reply fields [\'txt\']: '
            "use text, token_ids, error_after_tokens, stall_after_tokens, delay"
        )
    }
    assert server.stats()["scripted_left"] == 0


def test_plain_chat_completion_streams_token_by_token(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    server.script("One two three four.")
    stream = _client(server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three four."
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # more than one delta
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    [seen] = server.stats()["requests"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(seen["output_token_ids"])


def test_hermes_tool_call_streams_name_and_arguments_and_the_core_reads_results_back(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    client = _client(server)
    question = [{"role": "user", "content": "What's the weather in Tokyo?"}]
    chunks = list(client.chat.completions.create(model=MODEL, messages=question, tools=[WEATHER], stream=True))
    calls = _merge_tool_deltas(chunks)
    assert [c["name"] for c in calls.values()] == ["get_city_weather"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Tokyo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    call_id = next(d.id for c in chunks for d in (c.choices[0].delta.tool_calls or []) if d.id)
    turn = [
        *question,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_city_weather", "arguments": calls[0]["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": '{"city": "Tokyo", "temperature_c": 18}'},
    ]
    answer = client.chat.completions.create(model=MODEL, messages=turn, tools=[WEATHER])
    assert answer.choices[0].finish_reason == "stop"
    assert "temperature_c: 18" in answer.choices[0].message.content
    # The core saw the conversation as vLLM rendered it, and reads it back whole.
    body = body_from_prompt(server.stats()["requests"][-1]["prompt"])
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["tools"] == [WEATHER]
    assert body["messages"][2]["tool_calls"][0]["function"]["name"] == "get_city_weather"
    assert json.loads(body["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {"city": "Tokyo"}


def test_max_tokens_cut_gives_finish_reason_length(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    server.script("This answer is much longer than three tokens, so it is cut.", "Again much longer than three.")
    response = _client(server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Talk"}], max_tokens=3
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3
    assert response.choices[0].message.content == "This answer is"
    streamed = list(
        _client(server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Talk"}], max_completion_tokens=3, stream=True
        )
    )
    assert [c.choices[0].finish_reason for c in streamed if c.choices[0].finish_reason] == ["length"]
    assert [r["max_tokens"] for r in server.stats()["requests"]] == [3, 3]


def test_prompt_over_max_model_len_is_vllms_400_before_any_generation(real_vllm):
    server = real_vllm(*PLAIN_FLAGS)
    with pytest.raises(openai.BadRequestError) as caught:
        _client(server, KEY).chat.completions.create(model="", messages=[{"role": "user", "content": "word " * 2100}])
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["type"] == "BadRequestError" and error["param"] == "input_tokens"
    assert error["message"].startswith("This model's maximum context length is 2048 tokens. However, your prompt")
    assert error["message"].endswith(")") and "(parameter=input_tokens, value=" in error["message"]
    assert server.stats()["requests"] == []


def test_api_key_guards_v1_with_vllms_401_body(real_vllm):
    server = real_vllm(*PLAIN_FLAGS)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = httpx.get(f"{server.base_url}/models", headers=headers)
        assert (response.status_code, response.json()) == (401, {"error": "Unauthorized"})
    assert httpx.get(f"{server.url}/health").status_code == 200  # outside /v1: open
    card = _client(server, KEY).models.list().data[0]
    assert card.id == card.root  # no --served-model-name: the name is the --model value


def test_auto_tool_choice_without_tool_flags_is_vllms_400(real_vllm):
    server = real_vllm(*PLAIN_FLAGS)
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER],
            "tool_choice": "auto",
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }


def _sse(response: httpx.Response) -> Iterator[str]:
    """The `data:` payloads of a server-sent event stream, as they arrive."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line.removeprefix("data: ")


def test_scripted_engine_error_mid_stream_is_vllms_error_event_then_done(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    server.script(
        Reply(text="Partial answer that breaks here and never ends.", error_after_tokens=3),
        Reply(text="Broken too.", error_after_tokens=1),
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Go"}], "stream": True}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=60) as response:
        events = list(_sse(response))
    assert response.status_code == 200
    assert events[-2:] == [
        '{"error":{"message":"Internal server error","type":"InternalServerError","param":null,"code":500}}',
        "[DONE]",
    ]
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text == "Partial answer that"
    failed = httpx.post(f"{server.base_url}/chat/completions", json={**body, "stream": False}, timeout=60)
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "InternalServerError"
    assert [r["finish_reason"] for r in server.stats()["requests"]] == ["error", "error"]


def test_client_disconnect_mid_stream_reaches_the_engine_as_an_abort(real_vllm):
    server = real_vllm(*TOOLS_FLAGS)
    server.script(Reply(text="Two tokens then the model hangs forever", stall_after_tokens=2))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hang"}], "stream": True}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=60) as response:
        for event in _sse(response):
            if json.loads(event)["choices"][0]["delta"].get("content"):
                break  # close the connection mid-stream
    [request] = server.stats()["requests"]
    stats = server.wait_stats(lambda s: any(a["request_id"] == request["request_id"] for a in s["aborts"]))
    [abort] = [a for a in stats["aborts"] if a["request_id"] == request["request_id"]]
    assert abort["running"] is True and abort["tokens_emitted"] == 2
    assert stats["running"] == 0


def test_qwen3_variant_with_the_reasoning_parser_splits_reasoning_from_content(real_vllm):
    server = real_vllm(*REASONING_FLAGS)
    server.script("<think>\nThe user greets me.\n</think>\n\nHello!")
    response = _client(server).chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}])
    message = response.choices[0].message.model_dump()
    assert message["content"] == "\n\nHello!"  # vLLM's qwen3 parser keeps the newlines after </think>
    assert message["reasoning"].strip() == "The user greets me."
    assert response.usage.completion_tokens_details.reasoning_tokens > 0
    [seen] = server.stats()["requests"]
    assert seen["output_token_ids"][0] == 151667 and 151668 in seen["output_token_ids"]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _ending(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the user sees at the end: argparse's usage block and error, else the exception's last line."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("W1", "(APIServer", "INFO"))]
    usage = max((i for i, line in enumerate(lines) if line.startswith("usage:")), default=None)
    return lines[usage:] if usage is not None else lines[-1:]


@pytest.mark.parametrize(
    "flags",
    [("--bogus-flag",), ("--enable-auto-tool-choice",)],
    ids=["unknown-flag", "auto-tool-choice-without-parser"],
)
def test_bad_flags_fail_exactly_like_vllm_serve(vllm_venv, flags):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    harness = [str(vllm_venv), "-m", "tests.conformance.vllm_app", "--port", "9", *flags]
    real = [str(vllm_venv.parent / "vllm"), "serve", MODEL, "--port", "9", *flags]
    with ThreadPoolExecutor(2) as pool:
        ours, theirs = pool.map(lambda c: _run(c, env), [harness, real])
    assert ours.returncode == theirs.returncode != 0
    assert _ending(ours) == _ending(theirs) and _ending(ours)
