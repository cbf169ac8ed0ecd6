"""The request and stream shapes that let OpenAI-compatible servers other than vLLM work (issue #15)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from configs.settings import get_settings
from graph.checkpoint import open_checkpointer
from graph.context import Context
from graph.demo.server import Reply, tool_call_text
from graph.events import TurnEnded
from graph.graph import build_graph
from graph.model import make_chat_model
from graph.runner import stream_turn
from tools import TOOLS

TOKYO = tool_call_text("get_current_time", {"timezone": "Asia/Tokyo"})


async def ask(question: str, *, thread: str = "w", tools=TOOLS, **ctx: Any):
    settings = get_settings()
    async with open_checkpointer(settings) as saver:
        graph = build_graph(settings=settings, tools=tools, checkpointer=saver)
        async for event in stream_turn(graph, question, thread_id=thread, context=Context(**ctx)):
            if isinstance(event, TurnEnded):
                return event.result
    raise AssertionError("the turn never ended")


def tool_steps(result) -> list:
    return [s for s in result.steps if s.kind == "tool"]


def assistant_messages(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for body in requests for m in body["messages"] if m["role"] == "assistant"]


def sse_chunks(text: str) -> list[dict[str, Any]]:
    lines = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def streamed_tool_entries(vllm, reply: Reply) -> list[dict[str, Any]]:
    """Every `tool_calls` entry the demo server streams for `reply`, in order."""
    vllm.script(reply)
    schema = {"type": "object", "properties": {"timezone": {"type": "string"}}}
    body = {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "messages": [{"role": "user", "content": "time?"}],
        "tools": [{"type": "function", "function": {"name": "get_current_time", "parameters": schema}}],
        "stream": True,
    }
    resp = httpx.post(f"{vllm.base_url}/chat/completions", json=body, timeout=10)
    resp.raise_for_status()
    chunks = sse_chunks(resp.text)
    return [e for c in chunks for choice in c["choices"] for e in choice["delta"].get("tool_calls") or []]


# 1. tool_choice "auto" goes out whenever tools do (llama.cpp's server reads a missing one as "none").


@pytest.mark.parametrize("stream", [True, False])
async def test_every_request_with_tools_says_tool_choice_auto_and_none_without(vllm, stream):
    calls = [tool_call_text("calculate", {"expression": f"{i}+1"}) for i in range(2)]
    vllm.script(*calls, "Best answer: 2 and 3.")
    result = await ask("keep calculating", max_steps=2, stream=stream)
    assert [s.result for s in tool_steps(result)] == ["1", "2"]
    with_tools = [body for body in vllm.requests if body.get("tools")]
    without = [body for body in vllm.requests if not body.get("tools")]
    assert len(with_tools) == 2 and len(without) == 1  # the step budget's last answer goes without tools
    assert [body["tool_choice"] for body in with_tools] == ["auto", "auto"]
    assert "tool_choice" not in without[0]  # vLLM 400s on a tool_choice without tools


@tool
def auto() -> str:
    """Switch the lights to automatic; takes no arguments."""
    return "lights on auto"


async def test_a_tool_named_auto_does_not_become_a_forced_call(vllm):
    # bind_tools(tool_choice="auto") would send {"type": "function", "function": {"name": "auto"}} here.
    vllm.script("Nothing to switch.")
    result = await ask("hello", tools=[auto])
    assert result.answer == "Nothing to switch." and not tool_steps(result)
    assert vllm.requests[0]["tool_choice"] == "auto"


# 3. An assistant turn with tool calls goes out with content "", never null (llama.cpp's server 500s on null).


@pytest.mark.parametrize("stream", [True, False])
async def test_assistant_tool_call_turns_are_sent_with_empty_string_content(vllm, stream):
    vllm.script(TOKYO, "It is morning in Tokyo.", tool_call_text("get_city_weather", {"city": "北京"}), "北京晴。")
    first = await ask("What time is it in Tokyo?", stream=stream)
    second = await ask("北京天气怎么样？", stream=stream)
    assert [s.status for s in tool_steps(first) + tool_steps(second)] == ["ok", "ok"]
    assert second.answer == "北京晴。"
    # the second round of the first turn, and the last request (both turns' history)
    for body in (vllm.requests[1], vllm.requests[-1]):
        calling = [m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
        assert calling and all(m["content"] == "" for m in calling)
    assert len([m for m in vllm.requests[-1]["messages"] if m.get("tool_calls")]) == 2
    assert all(isinstance(m["content"], str) for m in assistant_messages(vllm.requests))


async def test_text_before_a_tool_call_is_sent_back_as_it_was(vllm):
    vllm.script("Let me check.\n" + TOKYO, "It is morning in Tokyo.")
    result = await ask("What time is it in Tokyo?")
    assert tool_steps(result)[0].status == "ok"
    (calling,) = [m for m in vllm.requests[1]["messages"] if m["role"] == "assistant"]
    assert calling["tool_calls"] and "Let me check." in calling["content"]


# 4. max_tokens goes out beside max_completion_tokens (llama.cpp's server ignores the latter).


@pytest.mark.parametrize("stream", [True, False])
async def test_both_token_limits_go_out_with_the_run_s_value(vllm, stream):
    result = await ask("What time is it in Tokyo?", max_tokens=77, stream=stream)
    assert tool_steps(result)[0].status == "ok"
    assert len(vllm.requests) == 2
    assert [(b["max_tokens"], b["max_completion_tokens"]) for b in vllm.requests] == [(77, 77), (77, 77)]


async def test_the_setting_is_the_default_limit_for_both(vllm, monkeypatch):
    monkeypatch.setenv("AGENT_MAX_TOKENS", "300")
    get_settings.cache_clear()
    vllm.script("Hello.")
    await ask("hi")
    assert (vllm.requests[0]["max_tokens"], vllm.requests[0]["max_completion_tokens"]) == (300, 300)


def test_with_both_limits_vllm_honours_max_completion_tokens(vllm):
    # vLLM 0.33: `max_completion_tokens if not None else max_tokens` (chat_completion/serving.py, build_tok_params)
    vllm.script("one two three four five six seven eight nine ten")
    body = {"messages": [{"role": "user", "content": "count"}], "max_tokens": 50, "max_completion_tokens": 3}
    resp = httpx.post(f"{vllm.base_url}/chat/completions", json=body, timeout=10)
    assert resp.status_code == 200
    reply = resp.json()
    assert reply["choices"][0]["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 3


def test_openai_s_own_api_gets_max_completion_tokens_only(monkeypatch):
    # api.openai.com answers 400 "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not
    # supported", so a hosted OpenAI fallback must not get both.
    monkeypatch.setenv("OPENAI_API_BASE", "https://api.openai.com/v1,http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    get_settings.cache_clear()
    chain = make_chat_model(get_settings(), "gpt-4.1-mini", max_tokens=64)
    hosted, local = chain.runnable, chain.fallbacks[0]  # type: ignore[attr-defined]
    hosted_body = hosted._get_request_payload([HumanMessage("hi")])
    local_body = local._get_request_payload([HumanMessage("hi")])
    assert hosted_body["max_completion_tokens"] == 64 and "max_tokens" not in hosted_body["extra_body"]
    assert local_body["max_completion_tokens"] == 64 and local_body["extra_body"]["max_tokens"] == 64


# 6. Tool-call deltas that repeat id and name (llama.cpp's server) give one call per index.


def test_demo_server_repeats_the_header_only_when_asked(vllm):
    vllm_style = streamed_tool_entries(vllm, Reply(text=TOKYO))
    assert "id" in vllm_style[0] and all("id" not in e and "name" not in e["function"] for e in vllm_style[1:])
    repeated = streamed_tool_entries(vllm, Reply(text=TOKYO, repeat_tool_header=True))
    assert len(repeated) == len(vllm_style) > 2
    assert {(e["id"], e["type"], e["function"]["name"]) for e in repeated} == {
        (repeated[0]["id"], "function", "get_current_time")
    }
    args = "".join(e["function"].get("arguments", "") for e in repeated)
    assert json.loads(args) == {"timezone": "Asia/Tokyo"}


@pytest.mark.parametrize("chunking", ["fine", "coarse"])
async def test_repeated_tool_call_headers_give_one_call_with_the_first_name(vllm, chunking):
    vllm.script(Reply(text=TOKYO, chunking=chunking, repeat_tool_header=True), "It is morning in Tokyo.")
    result = await ask("What time is it in Tokyo?")
    (step,) = tool_steps(result)
    assert step.name == "get_current_time" and step.arguments == {"timezone": "Asia/Tokyo"}
    assert step.status == "ok" and "Asia/Tokyo" in step.result
    (calling,) = [m for m in vllm.requests[1]["messages"] if m.get("tool_calls")]
    (sent,) = calling["tool_calls"]
    assert sent["function"]["name"] == "get_current_time" and sent["id"].startswith("chatcmpl-tool-")
    assert sent["id"].count("chatcmpl-tool-") == 1  # the first id, not the ids joined


async def test_repeated_headers_of_parallel_calls_stay_apart(vllm):
    both = TOKYO + "\n" + tool_call_text("get_city_weather", {"city": "北京"})
    vllm.script(Reply(text=both, repeat_tool_header=True), "东京早上，北京晴。")
    result = await ask("东京几点？北京天气？")
    steps = tool_steps(result)
    assert sorted((s.name, json.dumps(s.arguments, ensure_ascii=False)) for s in steps) == [
        ("get_city_weather", '{"city": "北京"}'),
        ("get_current_time", '{"timezone": "Asia/Tokyo"}'),
    ]
    assert all(s.status == "ok" for s in steps) and len({s.call_id for s in steps}) == 2
    assert result.answer == "东京早上，北京晴。"
