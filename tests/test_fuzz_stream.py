"""Property-based tests (hypothesis, issue #7) of the stream merger: vLLM's SSE bytes, cut at random offsets,
through the real OpenAI SDK SSE decoder and langchain-openai's ChatOpenAI into graph.nodes.stream_model,
which sums the AIMessageChunks (tool-call deltas merge by `index`, as vLLM 0.33 streams them).

The streams are built with the fake vLLM server's own helpers (ChunkWriter, HermesStreamParser,
stream_chunks, sse), so they are byte for byte what it sends: role chunk first, `chatcmpl-tool-<16 hex>`
ids, a finish chunk, the usage chunk, `data: [DONE]`. They reach the client through httpx.MockTransport
as a `text/event-stream` body split at hypothesis-chosen byte offsets: inside multi-byte UTF-8 characters,
inside `data:` lines, between the two newlines that end an event. Each property runs 1,000 examples.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from itertools import accumulate

import httpx
import openai
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from graph.demo.hermes import (
    TOOL_CALL_START,
    HermesStreamParser,
    new_tool_call_id,
    stream_chunks,
    tokenize,
    tool_call_text,
)
from graph.demo.protocol import DONE_EVENT, ENGINE_ERROR, ChunkWriter, error_body, sse
from graph.nodes import repair_calls, stream_model
from tools import TOOLS

pytestmark = pytest.mark.slow

# No example database: it would write a .hypothesis/ folder into the repository. A failure still prints
# its minimal example.
# No explain phase: tracing every line of langchain and the SDK makes a failure take minutes to report.
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

MODEL = "Qwen/Qwen2.5-7B-Instruct"
PROMPT_TOKENS = 42

# --- the fake vLLM stream ----------------------------------------------------------------------------------


class Wire:
    """One generated stream: its SSE events and what a correct client must make of them."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.ids: list[str] = []  # tool-call ids in the order the parser made them
        self.content = ""  # the content deltas joined
        self.completion_tokens = 0

    @property
    def body(self) -> bytes:
        return "".join(self.events).encode("utf-8")


def vllm_stream(text: str, chunking: str = "fine", *, error_after: int | None = None) -> Wire:
    """The SSE events the fake vLLM (graph/demo/chat.py `_events`) sends for raw model `text` with the
    hermes parser on and `stream_options.include_usage`; with `error_after`, the mid-stream error event
    it sends after that many tokens instead of the finish."""
    wire = Wire()

    def make_id() -> str:
        wire.ids.append(new_tool_call_id())
        return wire.ids[-1]

    writer = ChunkWriter(f"chatcmpl-{new_tool_call_id()[-16:]}", 1_760_000_000, MODEL)
    parser = HermesStreamParser(make_id)
    wire.events.append(writer.role())
    for i, piece in enumerate(stream_chunks(text, chunking)):  # type: ignore[arg-type]
        if error_after is not None and i >= error_after:
            break
        writer.completion_tokens += len(tokenize(piece))
        if delta := parser.feed(piece):
            wire.content += delta.get("content") or ""
            wire.events.append(writer.delta(delta))
    if error_after is not None:
        wire.events += [sse(error_body(ENGINE_ERROR, 500)), DONE_EVENT]
        return wire
    wire.completion_tokens = writer.completion_tokens + 1  # the EOS token
    writer.completion_tokens = wire.completion_tokens
    wire.events.append(writer.finish("tool_calls" if parser.tools_streamed else "stop", None, with_fingerprint=False))
    wire.events.append(writer.usage_chunk(PROMPT_TOKENS, wire.completion_tokens))
    wire.events.append(DONE_EVENT)
    return wire


# --- the client: ChatOpenAI as graph/model.py builds it, on a MockTransport --------------------------------
# One event loop, client and model for the whole module: building them per example would cost more than
# streaming (a loop's executor thread, the ChatOpenAI validation). Examples run one at a time, so the
# handler serves the body of the current one.


class _Client:
    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.requests = 0
        self.runner = asyncio.Runner()
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))
        self.model = ChatOpenAI(
            model=MODEL,
            base_url="http://fake/v1",
            api_key="EMPTY",
            streaming=True,
            stream_usage=True,
            max_retries=0,
            http_async_client=self.http,
        )

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        payload = json.loads(request.content)
        assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=self._body(self.pieces))

    @staticmethod
    async def _body(pieces: list[bytes]) -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def close(self) -> None:
        self.runner.run(self.http.aclose())
        self.runner.close()


_CLIENT: _Client | None = None


@pytest.fixture(scope="module", autouse=True)
def _client() -> Iterator[None]:
    global _CLIENT
    _CLIENT = _Client()
    yield
    _CLIENT.close()
    _CLIENT = None


def run_stream(pieces: list[bytes]) -> tuple[AIMessage, list[str]]:
    """Stream `pieces` as the response body through stream_model; the merged message and the tokens it
    wrote for display."""
    assert _CLIENT is not None
    client, tokens = _CLIENT, []
    client.pieces, sent = pieces, client.requests
    ai, _ = client.runner.run(
        stream_model(
            client.model, [HumanMessage("hi")], stream=True, node="plan", writer=lambda event: tokens.append(event.text)
        )
    )
    assert client.requests == sent + 1  # one request, no retry
    return ai, tokens


# --- strategies --------------------------------------------------------------------------------------------

chars = st.characters(codec="utf-8")
# Prose with what a stream must carry intact: CJK, emoji (4-byte UTF-8, ZWJ sequences), combining marks,
# line and paragraph separators, CR/LF, quotes and backslashes that JSON escapes, "<" that the parser
# holds back while it could still become "<tool_call>", a Qwen3-Coder opener that it streams as content.
PIECES = [
    "你好，",
    "天气",
    "🙂",
    "👨‍👩‍👧",
    "é",
    "e\u0301",
    "\u2028",
    "\u2029",
    "\x85",
    "\r\n",
    "\n\n",
    "\r",
    '"',
    "\\",
    "<",
    "<tool",
    "</tool_call>",
    "<function=f>",
    "data: x",
    ":",
    " ",
    "\t",
    "\x00",
    "\ufeff",
    "€",
]
# Sizes stay small: every token is one SSE event, and each event costs the SDK and langchain ~0.5 ms.
prose = (
    st.lists(st.sampled_from(PIECES) | st.text(chars, max_size=6), max_size=4)
    .map("".join)
    .filter(lambda t: TOOL_CALL_START not in t)
)

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
tool_names = st.sampled_from([t.name for t in TOOLS]) | st.text(NAME_CHARS, min_size=1, max_size=16)
json_keys = st.sampled_from(["city", "expression", "tz", "城市", "a b", "", "🙂"]) | st.text(chars, max_size=4)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(chars, max_size=6)
)
json_values = json_scalars | st.lists(json_scalars, max_size=2) | st.dictionaries(json_keys, json_scalars, max_size=2)
arguments = st.dictionaries(json_keys, json_values, max_size=2)


def _streamable(name: str, args: dict) -> bool:
    # A "</tool_call>" inside a JSON string ends the block early (vLLM's regex too), and the hermes
    # parser takes the name from `"name": "..."` with a [^"]+ regex: names stay plain.
    return "</tool_call>" not in json.dumps(args, ensure_ascii=False)


calls = st.tuples(tool_names, arguments).filter(lambda c: _streamable(*c))


class Pieces(list):
    """The body cut into pieces; shown as its cut offsets when hypothesis reports a failing example."""

    def __repr__(self) -> str:
        if len(self) > 1 and all(len(p) == 1 for p in self):
            return f"Pieces(one byte each, {len(self)})"
        return f"Pieces(cut at {list(accumulate(map(len, self[:-1])))})"


# Offsets before a UTF-8 continuation byte, inside "data:" (and just after it), between "\n" and "\n".
_TRICKY = re.compile(
    rb"(?=[\x80-\xbf])|(?<=d)(?=ata:)|(?<=da)(?=ta:)|(?<=dat)(?=a:)|(?<=data)(?=:)|(?<=data:)"
    rb"|(?<=\n)(?=\n)"
)


@st.composite
def cuts(draw: st.DrawFn, body: bytes) -> Pieces:
    """`body` cut at random offsets, favouring the interesting ones: inside a multi-byte UTF-8 character,
    inside `data:`, between the two newlines that end an event. Sometimes one byte per piece."""
    if draw(st.integers(0, 19)) == 19:  # 19, not 0: a failing example shrinks towards fewer cuts
        return Pieces(body[i : i + 1] for i in range(len(body)))
    tricky = [m.start() for m in _TRICKY.finditer(body)]
    offsets = st.integers(0, len(body)) | (st.sampled_from(tricky) if tricky else st.nothing())
    points = sorted(draw(st.lists(offsets, max_size=30)))
    return Pieces(body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True))


# --- properties --------------------------------------------------------------------------------------------


def assert_calls(ai: AIMessage, expected: list[tuple[str, dict]], ids: list[str]) -> None:
    assert [(c["name"], c["args"]) for c in ai.tool_calls] == expected
    assert [c["id"] for c in ai.tool_calls] == ids
    assert ai.invalid_tool_calls == []


@FUZZ
@given(prose, st.lists(calls, max_size=2), st.sampled_from(["fine", "coarse"]), st.data())
def test_text_and_tool_calls_survive_any_chunking(
    before: str, expected: list[tuple[str, dict]], chunking: str, data: st.DataObject
) -> None:
    text = before + "\n".join(tool_call_text(name, args) for name, args in expected)
    wire = vllm_stream(text, chunking)
    assert len(wire.ids) == len(expected)  # the fake server did its part
    if expected:
        assert wire.content == before
    else:
        # vLLM holds back an end that could still become "<tool_call>", and never sends it.
        assert text.startswith(wire.content) and TOOL_CALL_START.startswith(text[len(wire.content) :] or "<")
    ai, tokens = run_stream(data.draw(cuts(wire.body)))
    assert_calls(ai, expected, wire.ids)
    assert all(i.startswith("chatcmpl-tool-") and len(i) == 30 for i in wire.ids)
    assert ai.content == wire.content  # every character, whatever byte it was cut at
    # Shown while streaming: the same text up to a Qwen3-Coder call the hermes parser streams as content.
    assert "".join(tokens) == wire.content.split("<function=")[0]
    assert ai.response_metadata["finish_reason"] == ("tool_calls" if expected else "stop")
    usage = ai.usage_metadata or {}
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (
        PROMPT_TOKENS,
        wire.completion_tokens,
        PROMPT_TOKENS + wire.completion_tokens,
    )


@st.composite
def interleaved(draw: st.DrawFn) -> tuple[list[dict], list[tuple[str, dict]], list[str]]:
    """Tool-call deltas of 1-3 parallel calls, interleaved by index (each call's own deltas stay in
    order: the id and name first, then argument fragments), grouped at random into chunk deltas."""
    expected = draw(st.lists(calls, min_size=1, max_size=3))
    ids = [new_tool_call_id() for _ in expected]
    queues: list[list[dict]] = []
    for index, ((name, args), call_id) in enumerate(zip(expected, ids, strict=True)):
        raw = json.dumps(args, ensure_ascii=False)
        cuts_at = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
        parts = [raw[a:b] for a, b in zip([0, *cuts_at], [*cuts_at, len(raw)], strict=True)]
        head = {"id": call_id, "type": "function", "index": index, "function": {"name": name}}
        queues.append([head] + [{"index": index, "function": {"arguments": p}} for p in parts if p])
    order: list[dict] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        order.append(queue.pop(0))
    deltas: list[dict] = []
    while order:
        take = draw(st.integers(1, len(order)))
        deltas.append({"tool_calls": order[:take]})
        order = order[take:]
    return deltas, expected, ids


@FUZZ
@given(interleaved(), st.data())
def test_parallel_calls_with_interleaved_indices_merge(
    case: tuple[list[dict], list, list[str]], data: st.DataObject
) -> None:
    deltas, expected, ids = case
    writer = ChunkWriter("chatcmpl-0123456789abcdef", 1_760_000_000, MODEL)
    events = [
        writer.role(),
        *(writer.delta(d) for d in deltas),
        writer.finish("tool_calls", None, with_fingerprint=False),
        writer.usage_chunk(PROMPT_TOKENS, 9),
        DONE_EVENT,
    ]
    ai, tokens = run_stream(data.draw(cuts("".join(events).encode())))
    # Each call is whole, whatever the interleaving. They come in the order their first delta arrived, not
    # by index; vLLM streams calls one after the other, so for it the two orders are the same.
    assert {c["id"]: (c["name"], c["args"]) for c in ai.tool_calls} == dict(zip(ids, expected, strict=True))
    assert len(ai.tool_calls) == len(expected) and ai.invalid_tool_calls == []
    assert ai.content == "" and tokens == []


@FUZZ
@given(prose, st.lists(calls, max_size=2), st.integers(0, 15), st.data())
def test_error_event_mid_stream_raises_a_clean_api_error(
    before: str, expected: list, after: int, data: st.DataObject
) -> None:
    text = before + "\n".join(tool_call_text(name, args) for name, args in expected)
    wire = vllm_stream(text, "fine", error_after=after)
    try:
        run_stream(data.draw(cuts(wire.body)))
    except openai.APIError as exc:
        assert type(exc) is openai.APIError  # the SDK's stream error, not a status or connection error
        assert exc.message == ENGINE_ERROR
        assert exc.body == error_body(ENGINE_ERROR, 500)["error"]
    else:
        raise AssertionError("the error event was swallowed")


# Everything a broken or hostile server could send: random bytes, real events whole or cut short, comments
# and other SSE fields, error events, [DONE] in odd places, and (flagged, because langchain-openai reads it
# with errors of its own) JSON that may not be shaped like a chat.completion.chunk: real events with a byte
# changed ("delta" may become "delte"), random JSON.
FOREIGN_KEYS = [
    "choices",
    "delta",
    "tool_calls",
    "index",
    "function",
    "name",
    "arguments",
    "id",
    "usage",
    "content",
    "error",
    "message",
]
foreign_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FOREIGN_KEYS), inner, max_size=3),
    max_leaves=10,
)


def _flip(event: str, at: int, byte: int) -> bytes:
    raw = bytearray(event.encode())
    raw[at % len(raw)] = byte
    return bytes(raw)


@st.composite
def garbage_bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(body, whether it holds a data event whose JSON may not be shaped like a chunk)."""
    expected = draw(st.lists(calls, max_size=2))
    text = draw(prose) + "\n".join(tool_call_text(name, args) for name, args in expected)
    real = vllm_stream(text, draw(st.sampled_from(["fine", "coarse"]))).events
    lines = st.one_of(
        st.binary(max_size=40).map(lambda b: (b, False)),
        st.sampled_from(real).map(lambda e: (e.encode(), False)),
        st.tuples(st.sampled_from(real), st.integers(0, 10_000)).map(
            lambda t: (t[0][: t[1] % len(t[0])].encode(), False)
        ),
        st.tuples(st.sampled_from(real), st.integers(0, 10_000), st.integers(0, 255)).map(lambda t: (_flip(*t), True)),
        st.sampled_from(
            [
                b"data: [DONE]\n\n",
                b": keep-alive\n\n",
                b"event: error\n",
                b"id: 7\n",
                b"retry: x\n",
                b"\n",
                b"\r\n",
                b"data:\n\n",
                b'data: {"error": {}}\n\n',
                b"data: {}\n\n",
                sse(error_body(ENGINE_ERROR, 500)).encode(),
            ]
        ).map(lambda b: (b, False)),
        foreign_json.map(lambda v: (f"data: {json.dumps(v)}\n\n".encode(), True)),
    )
    drawn = draw(st.lists(lines, max_size=10))
    return b"".join(b for b, _ in drawn), any(foreign for _, foreign in drawn)


NAME_FIELD = re.compile(rb'"name" ?: ?("(?:[^"\\]|\\.)*")')


def names_sent(body: bytes) -> set[str]:
    """Every string the body holds as a "name" field."""
    names = set()
    for raw in NAME_FIELD.findall(body):
        try:
            names.add(json.loads(raw.decode()))
        except ValueError:  # bytes that are not UTF-8 or not a JSON string: no name
            pass
    return {n for n in names if isinstance(n, str) and n}


# What a garbage body may raise: the SDK's own errors (openai.APIError for an error event) and ValueError:
# bad UTF-8 in a line, a data line that is not JSON, or no chunk at all ("No generations found in stream").
EXPECTED_ERRORS: tuple[type[Exception], ...] = (openai.APIError, ValueError)
# langchain-openai reads a data event's JSON as a chunk without checking its shape: `data: null` or
# `data: true` gives AttributeError (chunk.model_dump()), "choices" that is an object KeyError, a choice
# that is a number TypeError, "usage" that is a list AttributeError.
SHAPE_ERRORS: tuple[type[Exception], ...] = (AttributeError, KeyError, TypeError, IndexError)


# The SDK builds chunks from such JSON without validation; pydantic warns when they are dumped again.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@FUZZ
@given(garbage_bodies(), st.data())
def test_garbage_never_yields_a_call_that_was_not_sent(case: tuple[bytes, bool], data: st.DataObject) -> None:
    body, foreign = case
    try:
        ai, _ = run_stream(data.draw(cuts(body)))
    except EXPECTED_ERRORS + (SHAPE_ERRORS if foreign else ()):
        return
    names = names_sent(body)
    # A call's name is the name deltas of its index joined (langchain concatenates them), so it is made of
    # names the body sent; no name field, no call, valid or not.
    made_of_sent = re.compile("(?:" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + ")+")
    for call in [*ai.tool_calls, *ai.invalid_tool_calls]:
        if not call["name"]:
            # Argument deltas whose id/name delta never came. repair_calls drops such an invalid call; a valid
            # one it keeps: see test_nameless_call_is_not_executed.
            continue
        assert names and call["name"] is not None and made_of_sent.fullmatch(call["name"]), (call, names)
        assert call["id"] is None or call["id"].encode() in body


def test_nameless_call_is_not_executed() -> None:
    # Found by test_garbage_never_yields_a_call_that_was_not_sent: an index-only arguments delta whose id/name
    # delta never arrived (a faulty server or proxy) is merged by langchain into a call named "" with no id.
    writer = ChunkWriter("chatcmpl-0123456789abcdef", 1_760_000_000, MODEL)
    orphan = {"index": 0, "function": {"arguments": "{}"}}
    events = [
        writer.role(),
        writer.delta({"content": None, "tool_calls": [orphan]}),
        writer.finish("tool_calls", None, with_fingerprint=False),
        DONE_EVENT,
    ]
    ai, _ = run_stream(["".join(events).encode()])
    fixed, _ = repair_calls(ai)
    assert all(c["name"] and isinstance(c["id"], str) for c in fixed.tool_calls), fixed.tool_calls
