"""Side by side (issue #13): identical requests and scripted model texts to vLLM 0.33's real server and to
the scripted server (graph/demo), their normalised answers compared; every scenario is a row of
docs/conformance.md.

Non-streaming bodies are compared field by field once ids, timestamps and the system fingerprint are
normalised. Streams are compared event by event after merging token-split differences: per choice, the
sequence of what changes (role, content, reasoning, a tool call's name, its arguments, the finish reason,
consecutive repeats merged), the final content / reasoning / tool calls / finish reason, the key layout of
each kind of chunk, and what follows the choices (usage chunk, error event, [DONE]). Token counts (`usage`)
and the number of events may differ: the scripted tokenizer splits text like Qwen's BPE but not exactly.
Any other difference fails the scenario.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from graph.demo.hermes import tool_call_text
from graph.demo.server import DemoConfig, DemoServer, Reply
from tests.conformance.report import record

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

SECTION = "Side by side: the same requests to real vLLM 0.33 and to the scripted server"
MODEL = "Qwen/Qwen2.5-7B-Instruct"
KEY = "conformance-test-key"  # a test-only key, the one tests/conformance/test_vllm_app.py starts its server with
# The flag sets of tests/conformance/test_vllm_app.py, so the session starts each real server once.
FLAGS = {
    "tools": ("--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--served-model-name", MODEL),
    "plain": ("--api-key", KEY, "--max-model-len", "2048"),
    "reasoning": ("--reasoning-parser", "qwen3", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"),
}
TOLERATED = frozenset({"usage", "split"})  # token counts, and how the text is cut into events

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_current_time",
        "description": "Current time in a timezone",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
}
TOOLS = [WEATHER, TIME]
PARIS = tool_call_text("get_weather", {"city": "Paris"})
BEIJING = tool_call_text("get_weather", {"city": "北京"})
BOTH = PARIS + "\n" + tool_call_text("get_current_time", {"timezone": "Europe/Paris"})
MISSING_BRACE = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>'
CHINESE = "你好！今天北京天气晴朗，气温二十度。"
LONG = {"messages": [{"role": "user", "content": "word " * 3000}]}  # over the plain server's 2048 tokens
THOUGHT = "<think>\nThe user greets me.\n</think>\n\nHello!"
NAMED = {"type": "function", "function": {"name": "get_weather"}}

_IDS = [
    (re.compile(r"chatcmpl-tool-[0-9a-f]{16}"), "<tool-id>"),
    (re.compile(r"chatcmpl-[0-9a-f]{16}"), "<id>"),
    (re.compile(r"modelperm-[0-9a-f]{16}"), "<perm-id>"),
    (re.compile(r"^vllm-0\.33\.0-[0-9a-f]{8}$"), "<fp>"),
]


def chat(question: str = "Weather in Paris?", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], "tools": TOOLS, **extra}


def plain(question: str = "Say hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], **extra}


@dataclass(frozen=True)
class Case:
    """One scenario: the same request (and scripted model text) for both servers."""

    name: str
    server: str = "tools"
    body: dict[str, Any] | None = None  # the JSON body (None: no body)
    script: tuple[str | dict[str, Any], ...] = ()
    method: str = "POST"
    path: str = "/v1/chat/completions"
    key: str | None = None  # the Bearer key sent (the plain server wants KEY)
    tolerated: frozenset[str] = TOLERATED
    copies: int = 1  # real vLLM takes one scripted reply per choice (n); the scripted server reuses one


CASES = [
    Case("plain answer (en)", body=plain(), script=("Hello! How can I help you today?",)),
    Case(
        "plain answer (en), streamed",
        body=plain(stream=True, stream_options={"include_usage": True}),
        script=("Hello! How can I help you today?",),
    ),
    Case("plain answer (zh)", body=plain("你好"), script=(CHINESE,)),
    Case("plain answer (zh), streamed", body=plain("你好", stream=True), script=(CHINESE,)),
    Case("one hermes tool call", body=chat(), script=(PARIS,)),
    Case("one hermes tool call, streamed", body=chat(stream=True), script=(PARIS,)),
    Case("one tool call, Chinese arguments, streamed", body=chat("北京天气", stream=True), script=(BEIJING,)),
    Case("content before the call, streamed", body=chat(stream=True), script=("Let me check.\n" + PARIS,)),
    Case("two parallel calls", body=chat(), script=(BOTH,)),
    Case(
        "two parallel calls, streamed", body=chat(stream=True, stream_options={"include_usage": True}), script=(BOTH,)
    ),
    Case("parallel_tool_calls false", body=chat(parallel_tool_calls=False), script=(PARIS,)),
    Case("call cut by max_tokens", body=chat(max_tokens=12), script=(PARIS,)),
    Case("call cut by max_tokens, streamed", body=chat(max_tokens=12, stream=True), script=(PARIS,)),
    Case("tool_choice none", body=chat(tool_choice="none"), script=(PARIS,)),
    Case("tool_choice none, streamed", body=chat(tool_choice="none", stream=True), script=(PARIS,)),
    Case("tool_choice null", body=chat(tool_choice=None), script=("Let me see.\n" + PARIS,)),
    Case("tool_choice null, streamed", body=chat(tool_choice=None, stream=True), script=("Let me see.\n" + PARIS,)),
    Case("tool_choice required, obedient text", body=chat(tool_choice="required"), script=(PARIS,)),
    Case("tool_choice required, streamed", body=chat(tool_choice="required", stream=True), script=(PARIS,)),
    Case("tool_choice named", body=chat(tool_choice=NAMED), script=(PARIS,)),
    Case("tool_choice named, streamed", body=chat(tool_choice=NAMED, stream=True), script=(PARIS,)),
    Case("broken <tool_call> block (missing brace)", body=chat(), script=(MISSING_BRACE,)),
    Case("broken <tool_call> block, streamed", body=chat(stream=True), script=(MISSING_BRACE,)),
    Case(
        "broken block, streamed with stream_interval 2",
        body=chat(stream=True, stream_interval=2),
        script=(MISSING_BRACE,),
    ),
    Case(
        "arguments before name, streamed",
        body=chat(stream=True),
        script=('<tool_call>\n{"arguments": {"city": "Paris"}, "name": "get_weather"}\n</tool_call>',),
    ),
    Case(
        "keys after the arguments, streamed",
        body=chat(stream=True),
        script=('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}, "id": 1}\n</tool_call>',),
    ),
    Case("n=2", body=plain(n=2), script=("Hello there!",), copies=2),
    Case("n=2, streamed", body=plain(n=2, stream=True), script=("Hello there!",), copies=2),
    Case("stream_interval 3", body=plain(stream=True, stream_interval=3), script=("Hello there my good friend",)),
    Case("max_tokens as a string", body=plain(max_tokens="10"), script=("Hi",)),
    Case("temperature -1", body=plain(temperature=-1)),
    Case("n=0", body=plain(n=0)),
    Case("max_tokens 1.5", body=plain(max_tokens=1.5)),
    Case("tools: []", body=chat(tools=[])),
    Case("server without tool flags (the 400)", server="plain", key=KEY, body=chat()),
    Case("server without tool flags, tool_choice required", server="plain", key=KEY, body=chat(tool_choice="required")),
    Case("wrong API key (401)", server="plain", key="wrong", body=plain()),
    Case("wrong API key on /v1/models", server="plain", key="wrong", method="GET", path="/v1/models"),
    Case("unknown model (404)", body=plain(model="gpt-4")),
    Case("too-long prompt (400)", server="plain", key=KEY, body=LONG),
    Case("too-long prompt, streamed (400)", server="plain", key=KEY, body={**LONG, "stream": True}),
    Case(
        "mid-stream engine error",
        body=plain(stream=True),
        script=({"text": "Hello there my friend", "error_after_tokens": 2},),
    ),
    Case(
        "engine error, not streamed (500)",
        body=plain(),
        script=({"text": "Hello there my friend", "error_after_tokens": 2},),
    ),
    Case("reasoning (qwen3)", server="reasoning", body=plain(), script=(THOUGHT,)),
    Case(
        "reasoning (qwen3), streamed",
        server="reasoning",
        body=plain(stream=True, stream_options={"include_usage": True}),
        script=(THOUGHT,),
    ),
    Case(
        "reasoning then a tool call, streamed",
        server="reasoning",
        body=chat(stream=True),
        script=("<think>\nI need the weather.\n</think>\n\n" + PARIS,),
    ),
    Case(
        "reasoning with thinking off",
        server="reasoning",
        body=plain(chat_template_kwargs={"enable_thinking": False}),
        script=("Hello!",),
    ),
    Case("/v1/models", method="GET", path="/v1/models"),
    Case("/health", method="GET", path="/health"),
    Case("/version", method="GET", path="/version"),
    Case("/load", method="GET", path="/load"),
    Case(
        "/tokenize a chat",
        path="/tokenize",
        body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        tolerated=frozenset({"token ids"}),
    ),
    Case(
        "/tokenize a prompt",
        path="/tokenize",
        body={"model": MODEL, "prompt": "Hello world"},
        tolerated=frozenset({"token ids"}),
    ),
    Case("unknown path (404)", method="GET", path="/nope"),
    Case("wrong method (405)", method="GET", path="/v1/chat/completions"),
]


# --- the scripted servers, configured like the real ones --------------------------------------------------------


@pytest.fixture(scope="module")
def scripted_pool() -> Iterator[dict[str, DemoServer]]:
    servers: dict[str, DemoServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


def _scripted(pool: dict[str, DemoServer], kind: str, real: Any) -> DemoServer:
    """The scripted server for `kind`, serving the real one's names, `root` and context length."""
    if kind not in pool:
        headers = {"Authorization": f"Bearer {KEY}"}
        cards = httpx.get(f"{real.base_url}/models", headers=headers, timeout=30).json()["data"]
        config = DemoConfig(
            served_model_names=[c["id"] for c in cards], model=cards[0]["root"], max_model_len=cards[0]["max_model_len"]
        )
        if kind == "plain":
            config.api_key, config.enable_auto_tool_choice, config.tool_call_parser = KEY, False, None
        if kind == "reasoning":
            config.reasoning_parser = "qwen3"
        pool[kind] = DemoServer(config).start()
    server = pool[kind]
    server.reset()
    return server


def _send(base: str, case: Case, body: dict[str, Any] | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {case.key}"} if case.key else {}
    with httpx.Client(base_url=base, timeout=120) as client:
        if body is None:
            return client.request(case.method, case.path, headers=headers)
        return client.request(case.method, case.path, json=body, headers=headers)


def _with_model(case: Case, name: str) -> dict[str, Any] | None:
    """The body, with `model` set to what the server serves when the scenario did not pick one."""
    if case.body is None or case.server == "tools" or case.body.get("model") not in (MODEL, None):
        return case.body
    return {**case.body, "model": name}


# --- normalising and comparing ------------------------------------------------------------------------------------


def normalise(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if key == "created" and isinstance(value, int):
        return "<time>"
    if isinstance(value, str):
        for pattern, placeholder in _IDS:
            value = pattern.sub(placeholder, value)
    return value


def _paths(real: Any, scripted: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Where two JSON values differ: (path, real, scripted), also for a differing key order."""
    if isinstance(real, dict) and isinstance(scripted, dict):
        if list(real) != list(scripted) and set(real) == set(scripted):
            return [(f"{path}(key order)", list(real), list(scripted))]
        found = []
        for k in dict.fromkeys([*real, *scripted]):
            found += _paths(real.get(k, "<absent>"), scripted.get(k, "<absent>"), f"{path}.{k}" if path else k)
        return found
    if isinstance(real, list) and isinstance(scripted, list) and len(real) == len(scripted):
        return [d for i, (a, b) in enumerate(zip(real, scripted, strict=True)) for d in _paths(a, b, f"{path}[{i}]")]
    return [] if real == scripted else [(path, real, scripted)]


def _kind(path: str, case: Case) -> str:
    if path.startswith("usage") or ".usage" in path:
        return "usage"
    if case.path == "/tokenize" and re.match(r"(tokens|count|token_strs)\b", path):
        return "token ids"
    return "field"


@dataclass
class Stream:
    """What a stream says once token splits are merged."""

    events: list[Any]
    changes: dict[int, list[str]] = field(default_factory=dict)  # per choice, consecutive repeats merged
    final: dict[int, dict[str, Any]] = field(default_factory=dict)
    layouts: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = field(default_factory=set)
    tail: list[str] = field(default_factory=list)  # usage chunk, error event, [DONE]
    usage: Any = None


def _layout_kind(choice: dict[str, Any]) -> str:
    if choice.get("finish_reason"):
        return "finish"
    return "role" if "role" in choice["delta"] else "delta"


def read_stream(text: str) -> Stream:
    frames = [f for f in text.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames), text[:300]
    events = [f[6:] if f == "data: [DONE]" else json.loads(f[6:]) for f in frames]
    stream = Stream(normalise(events))
    for event in stream.events:
        if event == "[DONE]" or "error" in event:
            stream.tail.append("[DONE]" if event == "[DONE]" else json.dumps(event, sort_keys=True))
            continue
        if not event["choices"]:
            stream.usage = event["usage"]
            stream.tail.append("usage chunk")
            stream.layouts.add(("usage", tuple(event), ()))
            continue
        for choice in event["choices"]:
            stream.layouts.add((_layout_kind(choice), tuple(event), tuple(choice)))
            state = stream.final.setdefault(
                choice["index"], {"content": "", "reasoning": "", "calls": {}, "finish": None}
            )
            changes = stream.changes.setdefault(choice["index"], [])
            delta = choice["delta"]
            seen: list[str] = []
            if "role" in delta:
                seen.append(f"role {delta['role']}")
            for part in ("reasoning", "content"):
                if delta.get(part):
                    state[part] += delta[part]
                    seen.append(part)
            for call in delta.get("tool_calls", []):
                entry = state["calls"].setdefault(call["index"], {"name": None, "arguments": "", "ids": 0})
                function = call.get("function", {})
                if "id" in call:
                    entry["ids"] += 1
                    entry["name"] = function.get("name")
                    seen.append(f"call {call['index']} {function.get('name')} ({call.get('type')})")
                if "arguments" in function:
                    entry["arguments"] += function["arguments"]
                    seen.append(f"arguments {call['index']}")
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]
                seen.append(f"finish {choice['finish_reason']}")
            for item in seen:
                if not changes or changes[-1] != item:
                    changes.append(item)
    return stream


def compare(case: Case, real: httpx.Response, scripted: httpx.Response) -> list[tuple[str, str]]:
    """The differences, each (kind, what): kind "usage", "split", "token ids", or anything else (not tolerated)."""
    found: list[tuple[str, str]] = []
    if real.status_code != scripted.status_code:
        found.append(("status", f"HTTP {real.status_code} vs {scripted.status_code}"))
    for header in ("content-type", "allow"):
        a, b = real.headers.get(header, ""), scripted.headers.get(header, "")
        if a.split(";")[0] != b.split(";")[0]:
            found.append(("header", f"{header}: {a!r} vs {b!r}"))
    if real.headers.get("content-type", "").startswith("text/event-stream"):
        return found + _compare_streams(read_stream(real.text), read_stream(scripted.text))
    if not real.content and not scripted.content:
        return found
    try:
        a, b = normalise(real.json()), normalise(scripted.json())
    except ValueError:
        same = real.text == scripted.text
        return found + ([] if same else [("body", f"{real.text[:80]!r} vs {scripted.text[:80]!r}")])
    return found + [(_kind(path, case), f"{path}: {x!r} vs {y!r}") for path, x, y in _paths(a, b)]


def _compare_streams(real: Stream, scripted: Stream) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if real.changes != scripted.changes:
        found.append(("changes", f"{real.changes} vs {scripted.changes}"))
    if real.final != scripted.final:
        found.append(("final", f"{real.final} vs {scripted.final}"))
    if real.layouts != scripted.layouts:
        found.append(("layout", f"{sorted(real.layouts ^ scripted.layouts)}"))
    if real.tail != scripted.tail:
        found.append(("tail", f"{real.tail} vs {scripted.tail}"))
    if not found and real.events != scripted.events:
        found.append(
            ("split", f"same deltas merged; {len(real.events)} vs {len(scripted.events)} events (token split)")
        )
    found += [("usage", f"usage.{path}: {x!r} vs {y!r}") for path, x, y in _paths(real.usage, scripted.usage)]
    return found


def summary(response: httpx.Response) -> str:
    """One table cell: what the server answered."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        stream = read_stream(response.text)
        states = [
            f"{s['finish']}"
            + (f", content {s['content'][:24]!r}" if s["content"] else "")
            + (f", reasoning {s['reasoning'][:16]!r}" if s["reasoning"] else "")
            + "".join(f", {c['name']}({c['arguments'][:28]})" for c in s["calls"].values())
            for s in stream.final.values()
        ]
        errors = [t for t in stream.tail if t.startswith("{")]
        return f"{response.status_code} stream, {len(stream.events)} events: " + "; ".join(states + errors)
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:60]!r}"
    if isinstance(body, dict) and body.get("object") == "chat.completion":
        parts = []
        for choice in body["choices"]:
            message = choice["message"]
            text = choice["finish_reason"]
            if message.get("reasoning"):
                text += f", reasoning {message['reasoning'][:16]!r}"
            text += f", content {message['content'][:24]!r}" if message["content"] is not None else ", content null"
            text += "".join(
                f", {c['function']['name']}({c['function']['arguments'][:28]})" for c in message.get("tool_calls", [])
            )
            parts.append(text)
        return f"{response.status_code}: " + "; ".join(parts)
    return f"{response.status_code} {json.dumps(body, ensure_ascii=False)[:90]}"


WHY = {
    "usage": "token counts: the scripted tokenizer approximates Qwen's BPE",
    "split": "the same text cut into other events",
    "token ids": "stand-in ids (Qwen's own only for the special tokens)",
}


def verdict(differences: list[tuple[str, str]]) -> str:
    """`identical`, or `differs:` with each kind's reason and its first items."""
    if not differences:
        return "identical"
    kinds: dict[str, list[str]] = {}
    for kind, what in differences:
        kinds.setdefault(kind, []).append(what)
    parts = []
    for kind, items in kinds.items():
        shown = "; ".join(items[:3]) + (f"; and {len(items) - 3} more" if len(items) > 3 else "")
        parts.append(f"{WHY.get(kind, kind)} ({shown})")
    return "differs: " + " / ".join(parts)


# --- the scenarios --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_side_by_side(case: Case, real_vllm: Callable[..., Any], scripted_pool: dict[str, DemoServer]) -> None:
    real = real_vllm(*FLAGS[case.server])
    scripted = _scripted(scripted_pool, case.server, real)
    if case.script:
        real.script(*[r for r in case.script for _ in range(case.copies)])
        scripted.script(*[Reply(**r) if isinstance(r, dict) else r for r in case.script])
    name = scripted.config.served_model_names[0]
    real_response = _send(real.url, case, _with_model(case, name))
    scripted_response = _send(scripted.url, case, _with_model(case, name))
    differences = compare(case, real_response, scripted_response)
    record(SECTION, case.name, summary(real_response), summary(scripted_response), verdict(differences))
    unexpected = [d for d in differences if d[0] not in case.tolerated]
    assert not unexpected, f"{case.name}: {verdict(unexpected)}"


def _families(text: str) -> dict[str, set[tuple[str, ...]]]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        f.name: {tuple(sorted(s.labels)) for s in f.samples}
        for f in text_string_to_metric_families(text)
        if f.name.startswith("vllm:") and not f.name.endswith("_created")
    }


def test_side_by_side_metrics(real_vllm: Callable[..., Any], scripted_pool: dict[str, DemoServer]) -> None:
    """/metrics: every series the scripted server exports is one real vLLM exports, with the same labels."""
    real = real_vllm(*FLAGS["tools"])
    scripted = _scripted(scripted_pool, "tools", real)
    for server in (real, scripted):  # one request each, so the series have samples
        server.script("Hello!")
        httpx.post(f"{server.url}/v1/chat/completions", json=plain(), timeout=60).raise_for_status()
    real_response, scripted_response = httpx.get(f"{real.url}/metrics"), httpx.get(f"{scripted.url}/metrics")
    ours, theirs = _families(scripted_response.text), _families(real_response.text)
    missing = {name: labels for name, labels in ours.items() if name not in theirs or not labels <= theirs[name]}
    model = [s for s in scripted_response.text.splitlines() if s.startswith("vllm:prompt_tokens_total")]
    note = (
        (
            "identical names and labels for the scripted server's series; real vLLM also exports "
            f"{len(theirs) - len(ours)} more (KV cache, prefix cache, spec decode, per-phase timings, ...) that "
            "a scripted engine cannot know"
        )
        if not missing
        else f"differs: not in real vLLM: {sorted(missing)}"
    )
    record(
        SECTION,
        "/metrics",
        f"{real_response.status_code}, {len(theirs)} vllm: families",
        f"{scripted_response.status_code}, {len(ours)} vllm: families ({', '.join(sorted(ours))})",
        note,
    )
    assert real_response.headers["content-type"] == scripted_response.headers["content-type"]
    assert not missing and model and f'model_name="{MODEL}"' in model[0]
