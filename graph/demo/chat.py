"""Serve the fake vLLM HTTP API: scripted replies, recorded requests, vLLM-exact wire format."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from graph.demo import openmeteo
from graph.demo.hermes import (
    TOOL_CALL_END, Extraction, HermesStreamParser, extract_tool_calls, new_tool_call_id,
    random_hex16, stream_chunks, tokenize,
)
from graph.demo.model import default_reply, text_of
from graph.demo.protocol import (
    DONE_EVENT, ENGINE_ERROR, VLLM_VERSION, ApiError, ChunkWriter, check_model, check_tool_parser,
    completion_body, count_prompt_tokens, error_body, generation_budget, named_tool, parse_body, sse,
    validate_request,
)

SUPPORTED_PARSERS = (None, "hermes", "qwen3_json")  # qwen3_json is vLLM's alias of hermes
WEATHER_FAULTS = ("fault-garbage", "fault-hang", "fault-huge", "fault-500")
"""City names the Open-Meteo stand-in answers badly (so a tool fails in a CLI or batch subprocess too):
a 200 that is not JSON, no answer until the client gives up, a 10 MB place name, a 500."""
HUGE_NAME_CHARS = 10 * 1024 * 1024
_GUARDED_PREFIXES = ("/v1", "/v2", "/inference", "/cohere")


@dataclass
class DemoConfig:
    """How the fake server was "started": the vLLM flags that change its behaviour."""

    served_model_names: list[str] = field(default_factory=lambda: ["Qwen/Qwen2.5-7B-Instruct"])
    api_key: str | None = None
    enable_auto_tool_choice: bool = True  # False = started without --enable-auto-tool-choice
    tool_call_parser: str | None = "hermes"
    model_family: str = "qwen2.5"  # "qwen3_coder": the default brain writes <function=...> calls
    max_model_len: int = 32768
    token_delay: float = 0.0  # seconds between streamed tokens (demo mode uses ~0.02)
    first_token_delay: float = 0.0  # seconds before the first token (simulated prefill, for benchmarks)

    @property
    def parser_loaded(self) -> bool:
        # vLLM only loads the parser when --enable-auto-tool-choice is also set.
        return self.enable_auto_tool_choice and self.tool_call_parser is not None


@dataclass
class Reply:
    """One scripted model output for one chat request."""

    text: str = ""  # RAW model text (goes through the hermes simulation)
    chunking: Literal["fine", "coarse"] = "fine"  # "coarse": one line per chunk (stream-interval)
    finish: Literal["stop", "length"] = "stop"
    error_after_tokens: int | None = None  # streaming: mid-stream error event after N tokens
    status: int | None = None  # return this HTTP error instead (with `body`)
    body: dict[str, Any] | None = None
    hang: bool = False  # stream the role chunk then never finish (until the client disconnects)
    drop: bool = False  # send the response headers, then close the connection (a server dying mid-reply)
    headers: dict[str, str] | None = None  # extra response headers of a `status` reply (e.g. Retry-After)
    drop_after_tokens: int | None = None  # send N tokens (non-streaming: part of the body), then close
    stall_after_tokens: int | None = None  # stream N tokens, then send nothing more (like `hang`)


@dataclass
class _Generation:
    """One request's generated text after the length budget, and how to parse it."""

    id: str
    model: str
    text: str
    finish: str
    prompt_tokens: int
    completion_tokens: int
    parse: bool
    tool_choice: Any
    parallel: bool


class EventStream(Response):
    """SSE response that notices a client disconnect even while the generator is idle."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str], on_disconnect: Callable[[], None]) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers()  # no body attribute, so no Content-Length
        self._events = events
        self._on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        finished = False

        async def pump() -> None:
            nonlocal finished
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for event in self._events:
                if event == DROP_CONNECTION:
                    return  # like a crashed server: no final chunk, uvicorn closes the connection
                await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        pumping, listening = asyncio.ensure_future(pump()), asyncio.ensure_future(listen())
        try:
            await asyncio.wait({pumping, listening}, return_when=asyncio.FIRST_COMPLETED)
            if not pumping.done() and finished:
                await asyncio.wait({pumping})  # the "disconnect" is uvicorn seeing the end
        finally:  # also on our own cancellation (server shutdown): never leave tasks behind
            listening.cancel()
            if not pumping.done():
                pumping.cancel()
                await asyncio.gather(pumping, return_exceptions=True)
        error = None if pumping.cancelled() else pumping.exception()
        if pumping.cancelled() or isinstance(error, OSError):  # OSError: ClientDisconnected
            self._on_disconnect()
        elif error is not None:
            raise error


class DroppedResponse(Response):
    """Send the headers (and `partial`), then return mid-body: uvicorn closes the connection mid-reply."""

    def __init__(self, media_type: str, partial: bytes = b"") -> None:
        self.status_code = 200
        self.background = None
        self.media_type = media_type
        self.partial = partial
        self.init_headers()  # no Content-Length: chunked, so the client sees a truncated body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.partial, "more_body": True})


DROP_CONNECTION = "\x00drop-connection\x00"
"""Sentinel event: EventStream returns without ending the response, so the connection is closed mid-stream."""


class _ApiKeyAuth:
    """vLLM's auth middleware: Bearer key (scheme case-insensitive) on /v1, /v2, ... only."""

    def __init__(self, app: ASGIApp, get_key: Callable[[], str | None]) -> None:
        self._app = app
        self._get_key = get_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._get_key()
        if (scope["type"] != "http" or not key or scope["method"] == "OPTIONS"
                or not scope["path"].startswith(_GUARDED_PREFIXES)):
            await self._app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        given, wanted = hashlib.sha256(token.encode()).digest(), hashlib.sha256(key.encode()).digest()
        if scheme.lower() == "bearer" and hmac.compare_digest(given, wanted):
            await self._app(scope, receive, send)
            return
        await JSONResponse({"error": "Unauthorized"}, status_code=401)(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    body = error_body(str(exc.detail), exc.status_code, phrase)
    return JSONResponse(body, status_code=exc.status_code)


async def _health(request: Request) -> Response:
    return Response(status_code=200)


async def _version(request: Request) -> Response:
    return JSONResponse({"version": VLLM_VERSION})


class FakeVllm:
    """The fake vLLM engine and routes; thread-safe so tests can script it from another thread."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self.requests: list[dict[str, Any]] = []
        self.models_listed = 0  # GET /v1/models requests that passed the API key check
        self.disconnects = 0
        self.timings: list[dict[str, float]] = []
        """Per generated reply: arrival, first token and end (time.time()), and completion tokens."""
        self.stopping = threading.Event()
        self._queue: deque[Reply] = deque()
        self._by_question: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/health", _health, methods=["GET"]),
            Route("/ping", _health, methods=["GET", "POST"]),
            Route("/version", _version, methods=["GET"]),
            Route("/demo/stats", self._stats, methods=["GET"]),
            Route("/open-meteo/v1/search", self._geocode, methods=["GET"]),
            Mount("/open-meteo", routes=openmeteo.ROUTES),
        ]
        app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
        self.app: ASGIApp = _ApiKeyAuth(app, lambda: self.config.api_key)

    def script(self, *replies: Reply | str) -> None:
        with self._lock:
            self._queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def script_for(self, question: str, *replies: Reply | str) -> None:
        with self._lock:
            queue = self._by_question.setdefault(question, deque())
            queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._by_question.clear()
            self.requests.clear()
            self.models_listed = 0
            self.disconnects = 0
            self.timings.clear()

    def count_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1

    async def _models(self, request: Request) -> Response:
        with self._lock:
            self.models_listed += 1
        now, cfg = int(time.time()), self.config
        cards = [{
            "id": name, "object": "model", "created": now, "owned_by": "vllm",
            "root": cfg.served_model_names[0], "parent": None, "max_model_len": cfg.max_model_len,
            "permission": [{
                "id": f"modelperm-{random_hex16()}", "object": "model_permission", "created": now,
                "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                "organization": "*", "group": None, "is_blocking": False,
            }],
        } for name in cfg.served_model_names]
        return JSONResponse({"object": "list", "data": cards})

    async def _stats(self, request: Request) -> Response:
        """Timings of every generated reply (the benchmark reads the server's own busy time here)."""
        with self._lock:
            return JSONResponse({"timings": list(self.timings), "disconnects": self.disconnects})

    async def _geocode(self, request: Request) -> Response:
        """Open-Meteo geocoding, except for the WEATHER_FAULTS city names."""
        fault = request.query_params.get("name", "").strip().lower()
        if fault == "fault-garbage":
            return Response("<html><body>502 Bad Gateway</body></html>\x00\xff", status_code=200,
                            media_type="application/json")
        if fault == "fault-hang":
            await self._wait_for_disconnect(request, count=False)
            return Response(status_code=204)
        if fault == "fault-500":
            return Response("upstream exploded", status_code=500, media_type="text/plain")
        if fault == "fault-huge":
            place = {"id": 1, "name": "Huge" + "x" * HUGE_NAME_CHARS, "latitude": 39.9, "longitude": 116.4,
                     "country": "Nowhere", "population": 1}
            return JSONResponse({"results": [place], "generationtime_ms": 0.1})
        return await openmeteo.search(request)

    def _timed(self, arrived: float, first: float, tokens: int) -> None:
        with self._lock:
            self.timings.append({"arrived": arrived, "first_token": first, "end": time.time(),
                                 "completion_tokens": tokens})

    async def _chat(self, request: Request) -> Response:
        arrived = time.time()
        cfg = self.config
        try:
            body = parse_body(await request.body(), request.headers.get("content-type"))
            with self._lock:
                self.requests.append(body)
            validate_request(body)
            check_model(body, cfg.served_model_names)
            check_tool_parser(body, cfg.parser_loaded)
            prompt_tokens = count_prompt_tokens(body)
            budget = generation_budget(body, prompt_tokens, cfg.max_model_len)
        except ApiError as exc:
            return JSONResponse(exc.body, status_code=exc.code)
        parse = cfg.parser_loaded and bool(body.get("tools")) and body.get("tool_choice") != "none"
        reply = self._next_reply(body, parse)
        if reply.status is not None:
            payload = reply.body or error_body(HTTPStatus(reply.status).phrase, reply.status)
            return JSONResponse(payload, status_code=reply.status, headers=reply.headers)
        if reply.drop:
            return DroppedResponse("text/event-stream" if body.get("stream") else "application/json")
        request_id = request.headers.get("x-request-id") or body.get("request_id") or random_hex16()
        gen = _generate(f"chatcmpl-{request_id}", cfg, body, reply, parse, prompt_tokens, budget)
        if body.get("stream"):
            return EventStream(self._events(gen, reply, body, arrived), self.count_disconnect)
        if reply.hang or reply.stall_after_tokens is not None:
            await self._wait_for_disconnect(request)
            return Response(status_code=204)
        if reply.drop_after_tokens is not None:
            whole = json.dumps(_complete(gen), ensure_ascii=False).encode()
            return DroppedResponse("application/json", whole[: max(1, len(whole) // 2)])
        if reply.error_after_tokens is not None:
            return JSONResponse(reply.body or error_body(ENGINE_ERROR, 500), status_code=500)
        if cfg.first_token_delay or cfg.token_delay:
            await asyncio.sleep(cfg.first_token_delay)
            first = time.time()
            await asyncio.sleep(cfg.token_delay * len(tokenize(gen.text)))
        else:
            first = time.time()
        self._timed(arrived, first, gen.completion_tokens)
        return JSONResponse(_complete(gen))

    async def _wait_for_disconnect(self, request: Request, count: bool = True) -> None:
        """Send nothing until the client gives up (or the server stops)."""
        while not self.stopping.is_set():
            if await request.is_disconnected():
                if count:
                    self.count_disconnect()
                break
            await asyncio.sleep(0.02)

    def _next_reply(self, body: dict[str, Any], parse: bool) -> Reply:
        with self._lock:
            if self._by_question:
                users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
                asked = text_of(users[-1].get("content")) if users else ""
                for part, queue in self._by_question.items():
                    if queue and part in asked:
                        return queue.popleft()
            if self._queue:
                return self._queue.popleft()
        family = self.config.model_family
        return Reply(text=default_reply(body, family=family, parser_active=parse))

    async def _events(self, gen: _Generation, reply: Reply, body: dict[str, Any],
                      arrived: float) -> AsyncIterator[str]:
        options = body.get("stream_options") or {}
        writer = ChunkWriter(gen.id, int(time.time()), gen.model,
                             gen.prompt_tokens if options.get("continuous_usage_stats") else None)
        if self.config.first_token_delay:
            await asyncio.sleep(self.config.first_token_delay)  # vLLM sends the role chunk with the first token
        first = 0.0
        yield writer.role()
        if reply.hang:
            while not self.stopping.is_set():
                await asyncio.sleep(0.02)
            return
        parser = HermesStreamParser() if gen.parse else None
        pieces = stream_chunks(gen.text, reply.chunking)
        last_delta: dict[str, Any] | None = None
        for i, piece in enumerate(pieces):
            if reply.error_after_tokens is not None and i >= reply.error_after_tokens:
                break
            if reply.drop_after_tokens is not None and i >= reply.drop_after_tokens:
                yield DROP_CONNECTION
                return
            if reply.stall_after_tokens is not None and i >= reply.stall_after_tokens:
                while not self.stopping.is_set():
                    await asyncio.sleep(0.02)
                return
            if self.config.token_delay:
                await asyncio.sleep(self.config.token_delay)
            writer.completion_tokens += len(tokenize(piece))
            delta = parser.feed(piece) if parser else ({"content": piece} if piece else None)
            if gen.finish == "length" and i == len(pieces) - 1:
                last_delta = delta  # no EOS step: the last token rides on the finish chunk
            elif delta:
                first = first or time.time()  # when the first token leaves the server
                yield writer.delta(delta)
        if reply.error_after_tokens is not None:
            yield sse(reply.body or error_body(ENGINE_ERROR, 500))
            yield DONE_EVENT
            return
        named = named_tool(gen.tool_choice) is not None
        finish = "tool_calls" if parser and parser.tools_streamed and not named else gen.finish
        writer.completion_tokens = gen.completion_tokens
        include_usage = bool(options.get("include_usage"))
        yield writer.finish(finish, last_delta, with_fingerprint=not include_usage)
        if include_usage:
            yield writer.usage_chunk(gen.prompt_tokens, gen.completion_tokens)
        self._timed(arrived, first or time.time(), gen.completion_tokens)
        yield DONE_EVENT


def _generate(id: str, cfg: DemoConfig, body: dict[str, Any], reply: Reply, parse: bool,
              prompt_tokens: int, budget: int) -> _Generation:
    """Apply the grammar and the token budget to the raw reply text."""
    text = reply.text
    parallel = body.get("parallel_tool_calls") is not False
    if parse and not parallel and TOOL_CALL_END in text:
        # parallel_tool_calls=false: the grammar ends generation after the first call.
        text = text[: text.index(TOOL_CALL_END) + len(TOOL_CALL_END)]
    tokens, finish = tokenize(text), reply.finish
    if len(tokens) >= budget:  # no room left for EOS either
        tokens, finish = tokens[:budget], "length"
    return _Generation(
        id=id, model=cfg.served_model_names[0], text="".join(tokens), finish=finish,
        # A "length" finish means the engine generated its whole budget; a scripted shorter text stands in for it.
        prompt_tokens=prompt_tokens, completion_tokens=budget if finish == "length" else len(tokens) + 1,
        parse=parse, tool_choice=body.get("tool_choice"), parallel=parallel,
    )


def _complete(gen: _Generation) -> dict[str, Any]:
    """The non-streaming body: hermes extraction, content null vs "", finish_reason rules."""
    extraction = extract_tool_calls(gen.text) if gen.parse else Extraction(content=gen.text)
    calls = extraction.calls if gen.parallel else extraction.calls[:1]
    named = named_tool(gen.tool_choice) is not None
    content = "" if calls and (named or gen.tool_choice == "required") else extraction.content
    if gen.finish == "length":
        finish = "length"
    else:
        finish = "tool_calls" if calls and not named else "stop"
    tool_calls = [{"id": new_tool_call_id(), "type": "function",
                   "function": {"name": name, "arguments": args}} for name, args in calls]
    return completion_body(
        id=gen.id, created=int(time.time()), model=gen.model, content=content, tool_calls=tool_calls,
        finish_reason=finish, prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
    )
