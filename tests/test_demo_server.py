"""Check the fake vLLM server's wire format over real HTTP against docs/vllm-wire.md."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from graph.demo.hermes import HermesStreamParser, tokenize
from graph.demo.server import DemoConfig, DemoServer, Reply, qwen3_coder_call_text, tool_call_text

MODEL = "Qwen/Qwen2.5-7B-Instruct"
CHAT_ID = re.compile(r"^chatcmpl-[0-9a-f]{16}$")
TOOL_ID = re.compile(r"^chatcmpl-tool-[0-9a-f]{16}$")
FINGERPRINT = re.compile(r"^vllm-0\.33\.0-[0-9a-f]{8}$")
PARIS = tool_call_text("get_weather", {"city": "Paris"})


def _tool(name: str, prop: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": name.replace("_", " "),
            "parameters": {"type": "object", "properties": {prop: {"type": "string"}}, "required": [prop]},
        },
    }


TOOLS = [
    _tool("get_current_time", "timezone"),
    _tool("get_city_weather", "city"),
    _tool("calculate", "expression"),
    _tool("get_weather", "city"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(server: DemoServer) -> Iterator[None]:
    server.reset()
    server.config = DemoConfig()
    yield
    server.reset()


@pytest.fixture(scope="module")
def client(server: DemoServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def chat(client: httpx.Client, question: str = "Weather in Paris?", **extra: Any) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": question}], "tools": TOOLS, **extra}
    return client.post("/v1/chat/completions", json=body)


def stream(client: httpx.Client, question: str = "Weather in Paris?", **extra: Any) -> list[Any]:
    """The stream's events, after checking the framing: only `data: <json>\\n\\n`, then [DONE]."""
    response = chat(client, question, stream=True, **extra)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    raw = response.text.split("\n\n")
    assert raw[-1] == "" and all(event.startswith("data: ") for event in raw[:-1])
    return [json.loads(e[6:]) for e in raw[:-2]] + ["[DONE]"]


def tool_deltas(events: list[Any]) -> list[list[dict[str, Any]]]:
    return [
        c["choices"][0]["delta"]["tool_calls"]
        for c in events[1:-1]
        if c.get("choices") and "tool_calls" in c["choices"][0]["delta"]
    ]


# ---------------------------------------------------------------- non-streaming


def test_non_streaming_tool_call_has_vllm_key_set(client: httpx.Client, server: DemoServer) -> None:
    server.script(PARIS)
    body = chat(client).json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "service_tier",
        "system_fingerprint",
        "usage",
        "prompt_logprobs",
        "prompt_token_ids",
        "prompt_text",
        "kv_transfer_params",
        "ec_transfer_params",
        "metrics",
    ]
    assert CHAT_ID.match(body["id"]) and body["object"] == "chat.completion" and body["model"] == MODEL
    assert FINGERPRINT.match(body["system_fingerprint"])
    choice = body["choices"][0]
    assert choice == {
        **choice,
        "index": 0,
        "logprobs": None,
        "finish_reason": "tool_calls",
        "stop_reason": None,
        "token_ids": None,
        "routed_experts": None,
        "weight_versions": None,
    }
    message = choice["message"]
    assert list(message) == [
        "role",
        "content",
        "refusal",
        "annotations",
        "audio",
        "function_call",
        "tool_calls",
        "reasoning",
    ]
    assert message["content"] is None
    [call] = message["tool_calls"]
    assert TOOL_ID.match(call["id"])
    assert call == {
        "id": call["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    usage = body["usage"]
    assert usage["completion_tokens"] == 20  # the doc's 19 Qwen tokens plus EOS
    assert usage["total_tokens"] == usage["prompt_tokens"] + 20
    assert usage["prompt_tokens_details"] is None and usage["completion_tokens_details"] is None


def test_content_prefix_kept_and_blank_prefix_is_null(client: httpx.Client, server: DemoServer) -> None:
    server.script("Let me check.\n" + PARIS, "\n\n" + PARIS)
    assert chat(client).json()["choices"][0]["message"]["content"] == "Let me check.\n"
    assert chat(client).json()["choices"][0]["message"]["content"] is None


def test_required_and_named_give_empty_string_content(client: httpx.Client, server: DemoServer) -> None:
    server.script(PARIS, PARIS)
    required = chat(client, tool_choice="required").json()["choices"][0]
    assert required["message"]["content"] == "" and required["finish_reason"] == "tool_calls"
    named = chat(client, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = named.json()["choices"][0]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "stop"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_plain_text_has_no_tool_calls_key(client: httpx.Client, server: DemoServer) -> None:
    server.script("Hello!")
    message = chat(client).json()["choices"][0]["message"]
    assert message["content"] == "Hello!" and "tool_calls" not in message


def test_hermes_bad_json_is_raw_content_but_streams_as_call(client: httpx.Client, server: DemoServer) -> None:
    broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>'
    server.script(broken, broken)
    choice = chat(client).json()["choices"][0]
    assert choice["message"]["content"] == broken and choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    events = stream(client)
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    args = "".join(d["function"].get("arguments", "") for ds in tool_deltas(events) for d in ds)
    assert json.loads(args) == {"city": "Paris"}


def test_parallel_tool_calls_false_keeps_first_call(client: httpx.Client, server: DemoServer) -> None:
    both = PARIS + "\n" + tool_call_text("get_weather", {"city": "Rome"})
    server.script(both, both)
    assert len(chat(client).json()["choices"][0]["message"]["tool_calls"]) == 2
    calls = chat(client, parallel_tool_calls=False).json()["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"city": "Paris"}']


def test_max_tokens_cuts_generation_with_length(client: httpx.Client, server: DemoServer) -> None:
    server.script("one two three four five six seven")
    body = chat(client, max_tokens=3).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "one two three"
    assert body["usage"]["completion_tokens"] == 3


def test_x_request_id_becomes_the_id_and_requests_are_recorded(client: httpx.Client, server: DemoServer) -> None:
    server.script("ok")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json=body, headers={"X-Request-Id": "abc123"})
    assert response.json()["id"] == "chatcmpl-abc123"
    assert server.requests == [body]


# ---------------------------------------------------------------- streaming


def test_stream_tool_call_chunks_match_vllm(client: httpx.Client, server: DemoServer) -> None:
    server.script(PARIS)
    events = stream(client)
    assert events[-1] == "[DONE]"
    ids = {e["id"] for e in events[:-1]}
    assert len(ids) == 1 and CHAT_ID.match(ids.pop())
    assert all(e["object"] == "chat.completion.chunk" and e["model"] == MODEL for e in events[:-1])
    head = {k: events[0][k] for k in ("id", "object", "created", "model")}
    assert events[0] == {
        **head,
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        ],
        "prompt_token_ids": None,
        "prompt_text": None,
    }
    name_chunk = events[1]
    call_id = name_chunk["choices"][0]["delta"]["tool_calls"][0]["id"]
    assert TOOL_ID.match(call_id)
    assert name_chunk == {
        **head,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "content": None,
                    "tool_calls": [
                        {"id": call_id, "type": "function", "index": 0, "function": {"name": "get_weather"}}
                    ],
                },
                "logprobs": None,
                "finish_reason": None,
                "token_ids": None,
            }
        ],
        "kv_transfer_params": None,
    }
    arg_deltas = tool_deltas(events)[1:]
    assert all(d == [{"index": 0, "function": {"arguments": d[0]["function"]["arguments"]}}] for d in arg_deltas)
    pieces = [d[0]["function"]["arguments"] for d in arg_deltas]
    assert pieces == ['{"', "city", '":', ' "', "Paris", '"}']
    assert json.loads("".join(pieces)) == {"city": "Paris"}
    assert all(e["choices"][0]["delta"]["content"] is None for e in events[1:-2])
    finish = events[-2]
    assert finish == {
        **head,
        "choices": [
            {
                "index": 0,
                "delta": {},
                "logprobs": None,
                "finish_reason": "tool_calls",
                "stop_reason": None,
                "token_ids": None,
                "weight_versions": None,
            }
        ],
        "kv_transfer_params": None,
        "system_fingerprint": finish["system_fingerprint"],
    }
    assert FINGERPRINT.match(finish["system_fingerprint"])


def test_stream_usage_chunk_only_with_include_usage(client: httpx.Client, server: DemoServer) -> None:
    server.script("Hi there", "Hi there")
    assert not [e for e in stream(client)[:-1] if "usage" in e]
    events = stream(client, stream_options={"include_usage": True})
    usage_chunk, finish = events[-2], events[-3]
    assert usage_chunk["choices"] == [] and "system_fingerprint" not in finish
    assert list(usage_chunk) == ["id", "object", "created", "model", "choices", "usage", "system_fingerprint"]
    assert usage_chunk["usage"]["completion_tokens"] == 3  # "Hi", " there", EOS
    assert set(usage_chunk["usage"]) == {"prompt_tokens", "total_tokens", "completion_tokens"}
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-3])
    assert text == "Hi there" and finish["choices"][0]["finish_reason"] == "stop"


def test_stream_coarse_chunk_has_two_entries_with_one_index(client: httpx.Client, server: DemoServer) -> None:
    server.script(Reply(text=PARIS, chunking="coarse"))
    [entries] = tool_deltas(stream(client))
    assert [e["index"] for e in entries] == [0, 0]
    assert entries[0]["function"] == {"name": "get_weather"} and "arguments" not in entries[0]["function"]
    assert entries[1] == {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}


def test_stream_parallel_calls_get_indices_0_and_1(client: httpx.Client, server: DemoServer) -> None:
    server.script(PARIS + "\n" + tool_call_text("get_weather", {"city": "Rome"}))
    events = stream(client)
    names = [d for ds in tool_deltas(events) for d in ds if "id" in d]
    assert [(d["index"], d["function"]["name"]) for d in names] == [(0, "get_weather"), (1, "get_weather")]
    assert names[0]["id"] != names[1]["id"]
    args = {0: "", 1: ""}
    for ds in tool_deltas(events):
        for d in ds:
            args[d["index"]] += d["function"].get("arguments", "")
    assert [json.loads(a)["city"] for a in args.values()] == ["Paris", "Rome"]
    assert not [e for e in events[1:-1] if e["choices"][0]["delta"].get("content")]


def test_stream_content_before_call(client: httpx.Client, server: DemoServer) -> None:
    server.script("Let me check.\n" + PARIS)
    events = stream(client)
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[1:-1])
    assert content == "Let me check.\n"


def test_stream_mid_stream_error_then_done(client: httpx.Client, server: DemoServer) -> None:
    server.script(Reply(text="Hello there my friend", error_after_tokens=2))
    events = stream(client)
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["Hello", " there"]
    # generate/base/serving.py _raise_if_error: finish_reason "error" is GenerationError("Internal server error").
    assert events[3] == {
        "error": {"message": "Internal server error", "type": "InternalServerError", "param": None, "code": 500}
    }
    assert events[4:] == ["[DONE]"]


def test_hermes_stream_parser_holds_back_partial_tag() -> None:
    parser = HermesStreamParser()
    assert parser.feed("Hi <") == {"content": "Hi "}
    assert parser.feed("tool_call>") is None
    assert tokenize('{"city": "Paris"}') == ['{"', "city", '":', ' "', "Paris", '"}']


# ---------------------------------------------------------------- errors and auth


def _error(message: str, type_: str = "BadRequestError", param: str | None = None, code: int = 400) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def test_tool_parser_errors_without_auto_tool_choice(client: httpx.Client, server: DemoServer) -> None:
    server.config.enable_auto_tool_choice = False
    auto = chat(client)
    assert auto.status_code == 400 and auto.json() == _error(
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    )
    assert chat(client, tool_choice="required").json() == _error(
        'tool_choice="required" requires --tool-call-parser to be set'
    )
    named = chat(client, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert named.json() == _error('tool_choice=function "get_weather" requires --tool-call-parser to be set')
    server.script("<tool_call>\nraw\n</tool_call>")
    none = chat(client, tool_choice="none").json()["choices"][0]
    assert none["message"]["content"] == "<tool_call>\nraw\n</tool_call>" and none["finish_reason"] == "stop"


def test_unknown_model_404_lists_aliases(client: httpx.Client, server: DemoServer) -> None:
    server.config.served_model_names = ["qwen", "qwen-alt"]
    response = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": []})
    assert response.status_code == 404 and response.json() == _error(
        "The model `gpt-4` does not exist. Valid aliases: qwen, qwen-alt.", "NotFoundError", "model", 404
    )


@pytest.mark.parametrize(
    ("extra", "message", "param"),
    [
        (
            {"tools": []},
            "`tools` must not be an empty array. Either provide at least one tool or omit "
            "the field entirely. (parameter=tools)",
            "tools",
        ),
        (
            {"tools": None, "tool_choice": "auto"},
            "When using `tool_choice`, `tools` must be set. (parameter=tool_choice)",
            "tool_choice",
        ),
        (
            {"stream_options": {"include_usage": True}},
            "Stream options can only be defined when `stream=True`. (parameter=stream_options)",
            "stream_options",
        ),
        (
            {"tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "The tool specified in `tool_choice` does not match any of the specified `tools` (parameter=tool_choice)",
            "tool_choice",
        ),
        (
            {"max_tokens": 40000},
            "max_tokens=40000 cannot be greater than max_model_len=32768. Please "
            "request fewer output tokens. (parameter=max_tokens, value=40000)",
            "max_tokens",
        ),
        (
            {"max_completion_tokens": 40000},
            "max_completion_tokens=40000 cannot be greater than "
            "max_model_len=32768. Please request fewer output tokens. (parameter=max_completion_tokens, "
            "value=40000)",
            "max_completion_tokens",
        ),
    ],
)
def test_validation_errors(client: httpx.Client, extra: dict[str, Any], message: str, param: str) -> None:
    response = chat(client, **extra)
    assert response.status_code == 400 and response.json() == _error(message, param=param)


def test_context_length_error(client: httpx.Client, server: DemoServer) -> None:
    server.config.max_model_len = 64
    for extra in ({}, {"stream": True}):  # a 400 before any stream starts
        response = chat(client, "long question " * 100, **extra)
        # renderers/params.py _token_len_check: tokenized with max_length=65, so "at least 65".
        assert response.status_code == 400 and response.json() == _error(
            "This model's maximum context length is 64 tokens. However, your prompt contains at least 65 input "
            "tokens, which exceeds this limit even without any output tokens. Please reduce the length of the "
            "input prompt. (parameter=input_tokens, value=65)",
            param="input_tokens",
        )


def test_body_errors(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    bad = client.post("/v1/chat/completions", content=b'{"messages": [}', headers=headers)
    assert bad.status_code == 400 and bad.json() == _error(
        "1 validation error:\n  {'type': 'json_invalid', 'loc': 'body.14', 'msg': 'JSON decode error', "
        "'input': '<dict of 0 items>', 'ctx': {'error': 'Expecting value'}}",
        "Bad Request",
        "body.14",
    )
    missing = client.post("/v1/chat/completions", json={"model": MODEL})
    assert missing.status_code == 400 and missing.json() == _error(
        "1 validation error:\n  {'type': 'missing', 'loc': 'body.messages', 'msg': 'Field required', "
        "'input': '<dict of 1 items>'}",
        "Bad Request",
        "body.messages",
    )
    text = client.post("/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"})
    assert text.json() == _error(
        "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed", "Bad Request"
    )


def test_api_key_guards_only_v1(client: httpx.Client, server: DemoServer) -> None:
    server.config.api_key = "sekrit"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekrit"}):
        response = client.get("/v1/models", headers=headers)
        assert response.status_code == 401 and response.json() == {"error": "Unauthorized"}
    assert client.get("/v1/models", headers={"Authorization": "bearer sekrit"}).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/version").status_code == 200
    assert client.get("/open-meteo/v1/search", params={"name": "Tokyo"}).status_code == 200


def test_health_version_models(client: httpx.Client, server: DemoServer) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.content == b""
    assert client.get("/version").json() == {"version": "0.33.0"}
    server.config.served_model_names = ["qwen", MODEL]
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["qwen", MODEL]
    card = models["data"][0]
    assert list(card) == ["id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"]
    assert card["owned_by"] == "vllm" and card["parent"] is None and card["max_model_len"] == 32768
    assert re.match(r"^modelperm-[0-9a-f]{16}$", card["permission"][0]["id"])
    assert card["root"] == "qwen"  # no --model: the first served name
    server.config.model = "/models/qwen2.5-7b"
    assert client.get("/v1/models").json()["data"][1]["root"] == "/models/qwen2.5-7b"  # models/serving.py


def test_openai_sdk_parses_stream_and_raises(server: DemoServer) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", max_retries=0)
    server.script(Reply(text=PARIS, chunking="coarse"), Reply(text="Hello there", error_after_tokens=1))
    chunks = list(
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=TOOLS, stream=True)
    )
    calls = [c for ch in chunks if ch.choices for c in ch.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather" and calls[1].function.arguments == '{"city": "Paris"}'
    with pytest.raises(openai.APIError, match="Internal server error"):
        list(sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True))
    server.config.api_key = "sekrit"
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()


# ---------------------------------------------------------------- the default brain


def _calls(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    message = response.json()["choices"][0]["message"]
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]


def test_brain_calls_time_and_weather_in_parallel(client: httpx.Client) -> None:
    english = chat(client, "What time is it in Tokyo, and what's the weather there?")
    assert _calls(english) == [
        ("get_current_time", {"timezone": "Asia/Tokyo"}),
        ("get_city_weather", {"city": "Tokyo"}),
    ]
    chinese = chat(client, "北京现在几点，天气怎么样？")
    assert _calls(chinese) == [
        ("get_current_time", {"timezone": "Asia/Shanghai"}),
        ("get_city_weather", {"city": "北京"}),
    ]
    assert _calls(chat(client, "what is 2+3*4")) == [("calculate", {"expression": "2+3*4"})]


@pytest.mark.parametrize(
    ("question", "expression", "value"),
    [
        ("What is sqrt(2) * 10?", "sqrt(2) * 10", "14.142135623731"),
        ("calculate log(100, 10) + round(2.567, 1)", "log(100, 10) + round(2.567, 1)", "4.6"),
        ("What is 2 * pi?", "2 * pi", "6.28318530717959"),
        ("sin(pi/2) + cos(0) - abs(-3)", "sin(pi/2) + cos(0) - abs(-3)", "-1"),
        ("What is 2^10 * 3?", "2**10 * 3", "3072"),
        ("What is (17 * 23) ^ 2?", "(17 * 23) ** 2", "152881"),
        ("计算 (3+5)*12", "(3+5)*12", "96"),
        ("计算 （３＋５）×１２", "(3+5)*12", "96"),  # full-width digits, brackets and ×
        ("１２÷４等于多少？", "12/4", "3"),
        ("2的10次方是多少？", "2**10", "1024"),
        ("16的平方根加上3的平方", "sqrt(16)+3**2", "13"),
        ("3乘以4减2", "3*4-2", "10"),
        ("3+4, then 5*6", "3+4", "7"),  # the first expression, not both glued together
    ],
)
def test_brain_sends_the_whole_expression(client: httpx.Client, question: str, expression: str, value: str) -> None:
    from tools.calculator import calculate

    assert _calls(chat(client, question)) == [("calculate", {"expression": expression})]
    assert calculate.invoke({"expression": expression}) == value


@pytest.mark.parametrize(
    "question",
    [
        "Is Qwen2.5-7B a good model?",
        "What happened on 2024-01-05?",
        "北京现在几点？",
        "What's the e-mail?",
        "Tell me about sqrt(2",
    ],
)
def test_brain_sees_no_arithmetic_where_there_is_none(client: httpx.Client, question: str) -> None:
    response = chat(client, question).json()["choices"][0]["message"]
    assert not [c for c in response.get("tool_calls", []) if c["function"]["name"] == "calculate"]


def test_brain_knows_exactly_the_calculators_functions_and_constants() -> None:
    from graph.demo.arith import CONSTANTS, FUNCTIONS
    from tools.calculator import FUNCTIONS as TOOL_FUNCTIONS
    from tools.calculator import NAMES

    assert (FUNCTIONS, CONSTANTS) == (set(TOOL_FUNCTIONS), set(NAMES))


def test_brain_answers_in_chinese_from_tool_results(client: httpx.Client) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_city_weather", "arguments": "{}"}}
    result = '{"city": "北京", "temperature_c": 22.4}'
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "北京天气怎么样？"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": result},
    ]
    body = {"model": MODEL, "messages": messages, "tools": TOOLS}
    answer = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert answer["finish_reason"] == "stop" and re.search(r"[\u4e00-\u9fff]", answer["message"]["content"])
    assert "22.4" in answer["message"]["content"] and "北京" in answer["message"]["content"]
    messages[-1]["content"] = "Error: weather service unreachable"
    failed = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    assert "Error: weather service unreachable" in failed and "出错" in failed


def test_brain_plain_reply_and_tool_choice_none(client: httpx.Client) -> None:
    hello = chat(client, "你好").json()["choices"][0]["message"]
    assert "tool_calls" not in hello and re.search(r"[\u4e00-\u9fff]", hello["content"])
    none = chat(client, "What time is it in Paris?", tool_choice="none").json()["choices"][0]
    assert "tool_calls" not in none["message"] and "<tool_call>" not in none["message"]["content"]


def test_qwen3_coder_output_fails_hermes(client: httpx.Client, server: DemoServer) -> None:
    server.config.model_family = "qwen3_coder"
    raw = qwen3_coder_call_text("get_city_weather", {"city": "Tokyo"})
    choice = chat(client, "Weather in Tokyo?").json()["choices"][0]
    assert choice["message"]["content"] == raw and choice["finish_reason"] == "stop"
    events = stream(client, "Weather in Tokyo?")
    assert not tool_deltas(events) and events[-2]["choices"][0]["finish_reason"] == "stop"
    # tool_choice="required" runs under a grammar that forces the hermes envelope.
    assert _calls(chat(client, "Weather in Tokyo?", tool_choice="required")) == [
        ("get_city_weather", {"city": "Tokyo"})
    ]


# ---------------------------------------------------------------- open-meteo stand-in, disconnects


def test_open_meteo_stand_in(client: httpx.Client) -> None:
    tokyo = client.get("/open-meteo/v1/search", params={"name": "Tokyo", "count": 1, "language": "en"})
    [hit] = tokyo.json()["results"]
    assert (hit["name"], hit["timezone"], hit["country"]) == ("Tokyo", "Asia/Tokyo", "Japan")
    beijing = client.get("/open-meteo/v1/search", params={"name": "北京", "count": 1, "language": "zh"})
    assert beijing.json()["results"][0]["name"] == "北京"
    assert "results" not in client.get("/open-meteo/v1/search", params={"name": "Atlantis"}).json()
    current = "temperature_2m,relative_humidity_2m,apparent_temperature,weather_code,wind_speed_10m"
    params = {"latitude": hit["latitude"], "longitude": hit["longitude"], "current": current}
    forecast = client.get("/open-meteo/v1/forecast", params=params).json()
    assert {"latitude", "longitude", "timezone", "current_units", "current"} <= set(forecast)
    assert set(forecast["current"]) == {"time", "interval", *current.split(",")}
    assert forecast["current_units"]["temperature_2m"] == "°C"
    again = client.get("/open-meteo/v1/forecast", params={**params, "temperature_unit": "fahrenheit"})
    assert again.json()["current_units"]["temperature_2m"] == "°F"
    celsius = forecast["current"]["temperature_2m"]
    assert again.json()["current"]["temperature_2m"] == round(celsius * 9 / 5 + 32, 1)


def test_client_disconnect_during_hang_is_counted(client: httpx.Client, server: DemoServer) -> None:
    server.script(Reply(hang=True))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        first = next(response.iter_lines())
        assert json.loads(first[6:])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deadline = time.monotonic() + 5
    while server.disconnects < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.disconnects == 1


def test_script_for_answers_by_question_whatever_the_arrival_order(client: httpx.Client, server: DemoServer) -> None:
    server.script("from the shared queue")
    server.script_for("boom", Reply(status=500), "second try")
    assert chat(client, "hi, boom?").status_code == 500
    assert chat(client, "hello").json()["choices"][0]["message"]["content"] == "from the shared queue"
    assert chat(client, "boom again").json()["choices"][0]["message"]["content"] == "second try"
    assert "Paris" in chat(client, "boom: weather in Paris?").text  # its queue is empty: the usual brain


def test_drop_closes_the_connection_mid_reply(client: httpx.Client, server: DemoServer) -> None:
    server.script(Reply(drop=True), Reply(drop=True))
    with pytest.raises(httpx.RemoteProtocolError):
        stream(client)
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client).read()
    assert chat(client).status_code == 200  # the server itself is fine


# ---------------------------------------------------------------- what real vLLM 0.33 does (issue #13)
# Each test pins a behaviour seen when the real server ran side by side (tests/conformance/); the comments
# name the vLLM 0.33 source that decides it (paths relative to the installed `vllm/` package).


def _arguments(events: list[Any], index: int = 0) -> str:
    return "".join(d["function"].get("arguments", "") for ds in tool_deltas(events) for d in ds if d["index"] == index)


def test_stream_call_cut_by_max_tokens_finishes_length(client: httpx.Client, server: DemoServer) -> None:
    # serve/utils/tool_calls_utils.py resolve_finish_reason: "tool_calls" only for an engine "stop".
    server.script(PARIS, PARIS)
    events = stream(client, max_tokens=10)
    assert [d["function"]["name"] for ds in tool_deltas(events) for d in ds if "id" in d] == ["get_weather"]
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    body = chat(client, max_tokens=10).json()["choices"][0]
    assert body["finish_reason"] == "length" and "tool_calls" not in body["message"]


def test_explicit_null_tool_choice_drops_the_calls(client: httpx.Client, server: DemoServer) -> None:
    # entrypoints/openai/chat_completion/message_assembly.py keeps_tool_calls: only "auto" (the default when
    # tool_choice is omitted), "required" or a named tool keep them; null is parsed like "auto", then dropped.
    server.script(PARIS, "Let me see.\n" + PARIS, PARIS, "Let me see.\n" + PARIS)
    plain = chat(client, tool_choice=None).json()["choices"][0]
    assert plain["message"]["content"] is None and "tool_calls" not in plain["message"]
    assert plain["finish_reason"] == "stop"
    prefix = chat(client, tool_choice=None).json()["choices"][0]
    assert prefix["message"]["content"] == "Let me see.\n" and prefix["finish_reason"] == "stop"
    events = stream(client, tool_choice=None)
    assert len(events) == 3 and events[1]["choices"][0] == {
        **events[1]["choices"][0],
        "delta": {},
        "finish_reason": "stop",
    }
    events = stream(client, tool_choice=None)
    assert not tool_deltas(events) and events[-2]["choices"][0]["finish_reason"] == "stop"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-1]) == "Let me see.\n"


def test_explicit_null_tool_choice_needs_no_tool_parser(client: httpx.Client, server: DemoServer) -> None:
    # renderers/online_renderer.py render_chat: only tool_choice values other than None and "none" need it.
    server.config.enable_auto_tool_choice = False
    server.script(PARIS)
    response = chat(client, tool_choice=None)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == PARIS


@pytest.mark.parametrize(
    ("text", "streamed", "parsed"),
    [
        # tool_parsers/hermes_tool_parser.py _extract_tool_args: everything after "arguments": up to the block's
        # last "}" streams as the arguments; the non-streaming json.loads reads the real arguments.
        (
            '<tool_call>\n{"arguments": {"city": "Paris"}, "name": "get_weather"}\n</tool_call>',
            '{"city": "Paris"}, "name": "get_weather"',
            '{"city": "Paris"}',
        ),
        (
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}, "id": 1}\n</tool_call>',
            '{"city": "Paris"}, "id": 1',
            '{"city": "Paris"}',
        ),
        (
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>',
            '{"city": "Paris"}',
            None,
        ),
    ],
)
def test_stream_arguments_of_unusual_envelopes(
    client: httpx.Client, server: DemoServer, text: str, streamed: str, parsed: str | None
) -> None:
    server.script(text, text)
    events = stream(client)
    assert _arguments(events) == streamed and events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    message = chat(client).json()["choices"][0]["message"]
    if parsed is None:  # invalid JSON: the whole text is the content
        assert message["content"] == text and "tool_calls" not in message
    else:
        assert [c["function"]["arguments"] for c in message["tool_calls"]] == [parsed]


def test_arguments_before_name_arrive_with_the_name(client: httpx.Client, server: DemoServer) -> None:
    # hermes_tool_parser.py extract_tool_calls_streaming: no name yet, nothing streams; then both at once.
    server.script('<tool_call>\n{"arguments": {"city": "Paris"}, "name": "get_weather"}\n</tool_call>')
    [deltas] = tool_deltas(stream(client))
    assert [d["function"] for d in deltas] == [
        {"name": "get_weather"},
        {"arguments": '{"city": "Paris"}, "name": "get_weather"'},
    ]


def test_missing_outer_brace_loses_a_brace_when_the_tail_is_merged(client: httpx.Client, server: DemoServer) -> None:
    # hermes_tool_parser.py: once "</tool_call>" arrives the block counts as complete and its last "}" is
    # stripped; when that tag comes in the same delta as the arguments' "}", the "}" is never sent.
    broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>'
    server.script(broken, broken)
    assert _arguments(stream(client)) == '{"city": "Paris"}'
    assert _arguments(stream(client, stream_interval=2)) == '{"city": "Paris"'


def test_stream_interval_sends_the_first_token_then_n_per_chunk(client: httpx.Client, server: DemoServer) -> None:
    # v1/engine/output_processor.py: the first token alone, then every stream_interval tokens, the rest
    # (here " friend" with the EOS) on the finish chunk.
    server.script("Hello there my good friend")
    events = stream(client, stream_interval=3, stream_options={"include_usage": True})
    assert [e["choices"][0]["delta"].get("content") for e in events[1:-2]] == ["Hello", " there my good", " friend"]
    assert events[-3]["choices"][0]["finish_reason"] == "stop" and events[-2]["usage"]["completion_tokens"] == 6
    response = chat(client, stream_interval=0)
    assert response.status_code == 400 and response.json() == _error(
        "1 validation error:\n  {'type': 'greater_than_equal', 'loc': 'body.stream_interval', 'msg': 'Input should "
        "be greater than or equal to 1', 'input': '0', 'ctx': {'ge': 1}}",
        "Bad Request",
        "body.stream_interval",
    )


def test_unknown_paths_and_wrong_methods_are_starlette_errors(client: httpx.Client, server: DemoServer) -> None:
    # vLLM's HTTPException handler is registered for fastapi.HTTPException; the router raises Starlette's,
    # so FastAPI's default {"detail": ...} answers (serve/exception_handling/register.py).
    for path in ("/nope", "/v1/nope", "/detokenize"):
        response = client.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    wrong = client.get("/v1/chat/completions")
    assert (wrong.status_code, wrong.json(), wrong.headers["allow"]) == (405, {"detail": "Method Not Allowed"}, "POST")
    assert client.post("/health").headers["allow"] == "GET"
    server.config.api_key = "sekrit"  # under /v1 the key is checked first
    assert client.get("/v1/nope").json() == {"error": "Unauthorized"}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_tokens_and_requests_with_vllm_names(client: httpx.Client, server: DemoServer) -> None:
    # v1/metrics/loggers.py PrometheusStatLogger: names, the model_name/engine labels, request_success reasons.
    server.config.served_model_names = ["qwen", MODEL]
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    labels = (("engine", "0"), ("model_name", "qwen"))
    before = _samples(response.text)
    assert before[("vllm:num_requests_running", labels)] == 0
    assert (
        before[("vllm:request_success_total", (("engine", "0"), ("finished_reason", "stop"), ("model_name", "qwen")))]
        == 0
    )
    server.script("Hello there", Reply(text="one two three", finish="length"))
    first = chat(client).json()["usage"]
    second = stream(client, stream_options={"include_usage": True})[-2]["usage"]
    after = _samples(client.get("/metrics").text)

    def grew(name: str, extra: tuple[tuple[str, str], ...] = ()) -> float:
        key = (name, tuple(sorted(labels + extra)))
        return after[key] - before.get(key, 0)

    assert grew("vllm:prompt_tokens_total") == first["prompt_tokens"] + second["prompt_tokens"]
    assert grew("vllm:generation_tokens_total") == first["completion_tokens"] + second["completion_tokens"]
    assert grew("vllm:request_success_total", (("finished_reason", "stop"),)) == 1
    assert grew("vllm:request_success_total", (("finished_reason", "length"),)) == 1
    assert grew("vllm:e2e_request_latency_seconds_count") == 2
    assert after[("vllm:num_requests_running", labels)] == 0


def test_load_counts_the_requests_being_served(client: httpx.Client, server: DemoServer) -> None:
    # serve/instrumentator/basic.py GET /load: {"server_load": N}.
    assert client.get("/load").json() == {"server_load": 0}
    server.config.token_delay = 0.02
    server.script("one two three four five six seven eight nine ten")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert "one" in next(line for line in lines if '"content":"one"' in line)  # generating now
        assert client.get("/load").json() == {"server_load": 1}
        assert "data: [DONE]" in list(lines)
    assert client.get("/load").json() == {"server_load": 0}


def test_tokenize_counts_like_the_chat_usage(client: httpx.Client, server: DemoServer) -> None:
    # serve/tokenize/api_router.py POST /tokenize: {"count", "max_model_len", "tokens", "token_strs"}.
    hello = client.post("/tokenize", json={"prompt": "Hello world", "return_token_strs": True}).json()
    assert hello["count"] == 2 and len(hello["tokens"]) == 2 and hello["token_strs"] == ["Hello", " world"]
    assert hello["max_model_len"] == 32768
    messages = [{"role": "user", "content": "hi"}]
    tokenized = client.post("/tokenize", json={"model": MODEL, "messages": messages}).json()
    assert tokenized["tokens"][0] == 151644 and tokenized["token_strs"] is None  # <|im_start|>: Qwen's id
    server.script("ok")
    usage = client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages}).json()["usage"]
    assert tokenized["count"] == usage["prompt_tokens"] == 30  # what Qwen2.5's template and tokenizer give
    unknown = client.post("/tokenize", json={"model": "gpt-4", "prompt": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "NotFoundError"


@pytest.mark.parametrize(
    ("extra", "message", "param"),
    [
        # sampling_params.py SamplingParams._verify_args (VLLMValidationError: " (parameter=..., value=...)")
        (
            {"temperature": -1},
            "temperature must be non-negative, got -1.0. (parameter=temperature, value=-1.0)",
            "temperature",
        ),
        (
            {"temperature": 3},
            "temperature must be in [0, 2], got 3.0. (parameter=temperature, value=3.0)",
            "temperature",
        ),
        ({"top_p": 0}, "top_p must be in (0, 1], got 0.0. (parameter=top_p, value=0.0)", "top_p"),
        ({"n": 0}, "n must be at least 1, got 0.", None),
        ({"max_tokens": 0}, "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)", "max_tokens"),
    ],
)
def test_sampling_errors(client: httpx.Client, extra: dict[str, Any], message: str, param: str | None) -> None:
    response = chat(client, **extra)
    assert response.status_code == 400 and response.json() == _error(message, param=param)


@pytest.mark.parametrize(
    ("value", "kind", "msg"),
    [
        ("ab", "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
        (1.5, "int_from_float", "Input should be a valid integer, got a number with a fractional part"),
    ],
)
def test_typed_fields_are_pydantic_errors(client: httpx.Client, value: Any, kind: str, msg: str) -> None:
    # serve/exception_handling/handlers/validation.py: inputs shown as text, loc joined with dots.
    response = chat(client, max_tokens=value)
    assert response.status_code == 400 and response.json() == _error(
        f"1 validation error:\n  {{'type': '{kind}', 'loc': 'body.max_tokens', 'msg': '{msg}', 'input': '{value}'}}",
        "Bad Request",
        "body.max_tokens",
    )


def test_string_max_tokens_is_coerced(client: httpx.Client, server: DemoServer) -> None:
    # pydantic's lax mode turns "3" into 3 (chat_completion/protocol.py max_tokens: int | None).
    server.script("one two three four five")
    body = chat(client, max_tokens="3").json()["choices"][0]
    assert body["message"]["content"] == "one two three" and body["finish_reason"] == "length"


def test_prompt_filling_the_context_leaves_no_tokens(client: httpx.Client, server: DemoServer) -> None:
    # serve/utils/api_utils.py get_max_tokens clamps to what is left: 0, then SamplingParams refuses it.
    prompt = client.post("/tokenize", json={"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS})
    server.config.max_model_len = prompt.json()["count"]
    response = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
    )
    assert response.json() == _error(
        "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)", param="max_tokens"
    )


def test_n_choices(client: httpx.Client, server: DemoServer) -> None:
    # chat_completion/serving.py: one parsed choice per n, usage summed over them.
    server.script(PARIS, PARIS)
    one = chat(client).json()
    server.script(PARIS)
    body = chat(client, n=2).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    ids = [c["message"]["tool_calls"][0]["id"] for c in body["choices"]]
    assert len(set(ids)) == 2 and all(c["finish_reason"] == "tool_calls" for c in body["choices"])
    assert body["usage"]["completion_tokens"] == 2 * one["usage"]["completion_tokens"]
    server.script(PARIS)
    events = stream(client, n=2)
    assert [e["choices"][0]["index"] for e in events[:2]] == [0, 1]  # a role chunk per choice first
    for index in (0, 1):
        choice = [c["choices"][0]["delta"] for c in events[2:-1] if c["choices"][0]["index"] == index]
        arguments = "".join(d["function"].get("arguments", "") for c in choice for d in c.get("tool_calls", []))
        assert arguments == '{"city": "Paris"}'

    finishes = [
        (e["choices"][0]["index"], e["choices"][0]["finish_reason"])
        for e in events[:-1]
        if e["choices"][0]["finish_reason"]
    ]
    assert finishes == [(0, "tool_calls"), (1, "tool_calls")]


THOUGHT = "<think>\nThe user greets me.\n</think>\n\nHello!"


def test_reasoning_goes_to_reasoning_never_reasoning_content(client: httpx.Client, server: DemoServer) -> None:
    # parser/qwen3.py (--reasoning-parser qwen3): the text before </think> is `reasoning`, in the message and
    # in deltas; chat_completion/serving.py adds usage.completion_tokens_details.reasoning_tokens.
    server.config = DemoConfig(reasoning_parser="qwen3")
    server.script(THOUGHT, THOUGHT)
    body = chat(client, "hi", tools=None).json()
    message = body["choices"][0]["message"]
    assert (message["reasoning"], message["content"]) == ("\nThe user greets me.\n", "\n\nHello!")
    assert "reasoning_content" not in message
    thought_tokens = len(tokenize("\nThe user greets me.\n"))
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": thought_tokens}
    events = stream(client, "hi", tools=None, stream_options={"include_usage": True})
    deltas = [e["choices"][0]["delta"] for e in events[1:-2]]
    assert "".join(d.get("reasoning") or "" for d in deltas) == "\nThe user greets me.\n"
    assert "".join(d.get("content") or "" for d in deltas) == "\n\nHello!"
    assert not [d for d in deltas if "reasoning_content" in d or ("reasoning" in d and "content" in d)]
    assert events[-2]["usage"]["completion_tokens_details"] == {"reasoning_tokens": thought_tokens}


def test_reasoning_with_a_tool_call_and_without_thinking(client: httpx.Client, server: DemoServer) -> None:
    server.config = DemoConfig(reasoning_parser="qwen3")
    thought_then_call = "<think>\nI need the weather.\n</think>\n\n" + PARIS
    server.script(thought_then_call, "<think>\nI need the weather.\n" + PARIS, "Hello!", THOUGHT)
    for _ in range(2):  # <tool_call> also ends the reasoning (parser/qwen3.py REASONING -> TOOL_PREAMBLE)
        message = chat(client).json()["choices"][0]["message"]
        assert message["reasoning"] == "\nI need the weather.\n" and message["content"] is None
        assert message["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    off = chat(client, "hi", tools=None, chat_template_kwargs={"enable_thinking": False}).json()
    assert off["choices"][0]["message"]["reasoning"] is None and off["choices"][0]["message"]["content"] == "Hello!"
    assert off["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}
    hidden = chat(client, "hi", tools=None, include_reasoning=False).json()["choices"][0]["message"]
    assert hidden["reasoning"] is None and hidden["content"] == "\n\nHello!"


def test_no_reasoning_parser_leaves_think_tags_in_content(client: httpx.Client, server: DemoServer) -> None:
    server.script(THOUGHT)
    body = chat(client, "hi", tools=None).json()
    assert body["choices"][0]["message"]["content"] == THOUGHT and body["choices"][0]["message"]["reasoning"] is None
    assert body["usage"]["completion_tokens_details"] is None
