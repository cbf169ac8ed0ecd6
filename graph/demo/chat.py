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
from graph.demo.admin import load, tokenize_route
from graph.demo.choices import ChoiceStream, Parsing, keeps_tool_calls, parse_choice, resolve_finish_reason
from graph.demo.hermes import (
    TOOL_CALL_END,
    engine_outputs,
    new_tool_call_id,
    random_hex16,
    repeat_tool_headers,
    tokenize,
)
from graph.demo.metrics import DemoMetrics
from graph.demo.model import default_reply, text_of
from graph.demo.protocol import (
    DONE_EVENT,
    GENERATION_ERROR,
    VLLM_VERSION,
    ApiError,
    ChunkWriter,
    check_model,
    check_tool_parser,
    completion_body,
    count_prompt_tokens,
    effective_tool_choice,
    error_body,
    generation_budget,
    message_choice,
    parse_body,
    sse,
    validate_request,
)
from graph.demo.reasoning import reasoning_tokens
from graph.demo.sampling import ChatFields, chat_fields, check_sampling

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
    model: str | None = None  # the --model value (/v1/models `root`); None: the first served name
    reasoning_parser: str | None = None  # "qwen3": <think>...</think> goes to `reasoning`
    stream_interval: int = 1  # --stream-interval: tokens per streamed output after the first

    @property
    def family_prompt(self) -> str:
        """Which chat template the prompt is counted with."""
        return "qwen3" if self.reasoning_parser == "qwen3" else "qwen2.5"

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
    repeat_tool_header: bool = False  # not vLLM: each streamed tool-call delta repeats id, type, name (llama.cpp)


@dataclass
class _Generation:
    """One request's generated text after the length budget, and how to parse it."""

    id: str
    model: str
    text: str
    finish: str
    prompt_tokens: int
    completion_tokens: int  # per choice
    parsing: Parsing
    n: int = 1
    stream_interval: int = 1
    reasoning_details: bool = False  # the server has a reasoning parser: usage gets completion_tokens_details

    @property
    def reasoning_tokens(self) -> int | None:
        if not self.reasoning_details:
            return None
        return self.n * reasoning_tokens(self.text) if self.parsing.reasoning else 0


@dataclass
class _Outcome:
    """How a generation ended, for the metrics: finish reason, first token time, tokens generated."""

    reason: str = "abort"  # until it finishes: a client that goes away aborts it
    first_token: float | None = None
    generated: int = 0


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
        if (
            scope["type"] != "http"
            or not key
            or scope["method"] == "OPTIONS"
            or not scope["path"].startswith(_GUARDED_PREFIXES)
        ):
            await self._app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        given, wanted = hashlib.sha256(token.encode()).digest(), hashlib.sha256(key.encode()).digest()
        if scheme.lower() == "bearer" and hmac.compare_digest(given, wanted):
            await self._app(scope, receive, send)
            return
        await JSONResponse({"error": "Unauthorized"}, status_code=401)(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods: FastAPI's default `{"detail": ...}`, not vLLM's error envelope.

    vLLM registers its envelope handler for fastapi.HTTPException only; the router raises Starlette's
    base class, so FastAPI's default handler answers (with the `Allow` header of a 405).
    """
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if "Allow" in headers:  # FastAPI routes do not add HEAD to GET as Starlette's do
        headers["Allow"] = ", ".join(m for m in headers["Allow"].split(", ") if m != "HEAD")
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


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
        self.metrics = DemoMetrics()
        self.running = 0  # requests generating now (vLLM's /load "server_load")
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/health", _health, methods=["GET"]),
            Route("/ping", _health, methods=["GET", "POST"]),
            Route("/version", _version, methods=["GET"]),
            Route("/load", self._load, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/tokenize", self._tokenize, methods=["POST"]),
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
        cards = [
            {
                "id": name,
                "object": "model",
                "created": now,
                "owned_by": "vllm",
                "root": cfg.model or cfg.served_model_names[0],
                "parent": None,
                "max_model_len": cfg.max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{random_hex16()}",
                        "object": "model_permission",
                        "created": now,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in cfg.served_model_names
        ]
        return JSONResponse({"object": "list", "data": cards})

    async def _load(self, request: Request) -> Response:
        return load(self.running)

    async def _metrics(self, request: Request) -> Response:
        body = self.metrics.text(self.config.served_model_names[0])
        return Response(body, media_type=self.metrics.content_type)

    async def _tokenize(self, request: Request) -> Response:
        cfg = self.config
        return await tokenize_route(request, cfg.served_model_names, cfg.max_model_len, cfg.family_prompt)

    async def _stats(self, request: Request) -> Response:
        """Timings of every generated reply (the benchmark reads the server's own busy time here)."""
        with self._lock:
            return JSONResponse({"timings": list(self.timings), "disconnects": self.disconnects})

    async def _geocode(self, request: Request) -> Response:
        """Open-Meteo geocoding, except for the WEATHER_FAULTS city names."""
        fault = request.query_params.get("name", "").strip().lower()
        if fault == "fault-garbage":
            return Response(
                "<html><body>502 Bad Gateway</body></html>\x00\xff", status_code=200, media_type="application/json"
            )
        if fault == "fault-hang":
            await self._wait_for_disconnect(request, count=False)
            return Response(status_code=204)
        if fault == "fault-500":
            return Response("upstream exploded", status_code=500, media_type="text/plain")
        if fault == "fault-huge":
            place = {
                "id": 1,
                "name": "Huge" + "x" * HUGE_NAME_CHARS,
                "latitude": 39.9,
                "longitude": 116.4,
                "country": "Nowhere",
                "population": 1,
            }
            return JSONResponse({"results": [place], "generationtime_ms": 0.1})
        return await openmeteo.search(request)

    def _timed(self, arrived: float, first: float, tokens: int) -> None:
        with self._lock:
            self.timings.append(
                {"arrived": arrived, "first_token": first, "end": time.time(), "completion_tokens": tokens}
            )

    async def _chat(self, request: Request) -> Response:
        arrived = time.time()
        cfg = self.config
        try:
            body = parse_body(await request.body(), request.headers.get("content-type"))
            with self._lock:
                self.requests.append(body)
            validate_request(body)
            fields = chat_fields(body)
            check_model(body, cfg.served_model_names)
            check_tool_parser(body, cfg.parser_loaded)
            prompt_tokens = count_prompt_tokens(body, cfg.family_prompt)
            lengths = {"max_tokens": fields.max_tokens, "max_completion_tokens": fields.max_completion_tokens}
            budget = generation_budget(lengths, prompt_tokens, cfg.max_model_len)
            check_sampling(fields, budget)
        except ApiError as exc:
            return JSONResponse(exc.body, status_code=exc.code)
        parsing = _parsing(cfg, body, fields)
        parse = parsing.run_tool_parser
        reply = self._next_reply(body, parse)
        if reply.status is not None:
            payload = reply.body or error_body(HTTPStatus(reply.status).phrase, reply.status)
            return JSONResponse(payload, status_code=reply.status, headers=reply.headers)
        if reply.drop:
            return DroppedResponse("text/event-stream" if body.get("stream") else "application/json")
        request_id = request.headers.get("x-request-id") or body.get("request_id") or random_hex16()
        gen = _generate(f"chatcmpl-{request_id}", cfg, body, fields, reply, parsing, prompt_tokens, budget)
        if fields.stream:
            outcome = _Outcome()
            events = self._metered(gen, self._events(gen, reply, body, arrived, outcome), outcome, arrived)
            return EventStream(events, self.count_disconnect)
        if reply.hang or reply.stall_after_tokens is not None:
            await self._wait_for_disconnect(request)
            return Response(status_code=204)
        if reply.drop_after_tokens is not None:
            whole = json.dumps(_complete(gen), ensure_ascii=False).encode()
            return DroppedResponse("application/json", whole[: max(1, len(whole) // 2)])
        outcome = _Outcome()
        self._started(gen)
        try:
            if reply.error_after_tokens is not None:  # finish_reason "error": GenerationError, a 500
                outcome.reason, outcome.generated = "error", reply.error_after_tokens
                return JSONResponse(reply.body or error_body(GENERATION_ERROR, 500), status_code=500)
            if cfg.first_token_delay or cfg.token_delay:
                await asyncio.sleep(cfg.first_token_delay)
                first = time.time()
                await asyncio.sleep(cfg.token_delay * len(tokenize(gen.text)))
            else:
                first = time.time()
            outcome.reason, outcome.first_token, outcome.generated = gen.finish, first, gen.n * gen.completion_tokens
            self._timed(arrived, first, gen.completion_tokens)
            return JSONResponse(_complete(gen))
        finally:
            self._ended(gen, outcome, arrived)

    def _started(self, gen: _Generation) -> None:
        with self._lock:
            self.running += 1
        self.metrics.started(gen.model, gen.prompt_tokens)

    def _ended(self, gen: _Generation, outcome: _Outcome, arrived: float) -> None:
        with self._lock:
            self.running -= 1
        ttft = None if outcome.first_token is None else outcome.first_token - arrived
        self.metrics.finished(gen.model, outcome.reason, outcome.generated, ttft, time.time() - arrived)

    async def _metered(
        self, gen: _Generation, events: AsyncIterator[str], outcome: _Outcome, arrived: float
    ) -> AsyncIterator[str]:
        """The stream, counted in /load and /metrics from its start until it ends or the client leaves."""
        self._started(gen)
        try:
            async for event in events:
                yield event
        finally:
            self._ended(gen, outcome, arrived)

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

    async def _events(
        self, gen: _Generation, reply: Reply, body: dict[str, Any], arrived: float, outcome: _Outcome
    ) -> AsyncIterator[str]:
        options = body.get("stream_options") or {}
        writer = ChunkWriter(
            gen.id,
            int(time.time()),
            gen.model,
            gen.prompt_tokens if options.get("continuous_usage_stats") else None,
            reasoning_details=gen.reasoning_details,
        )
        if self.config.first_token_delay:
            await asyncio.sleep(self.config.first_token_delay)  # vLLM sends the role chunk with the first token
        first = 0.0
        for index in range(gen.n):
            yield writer.role(index)
        if reply.hang:
            while not self.stopping.is_set():
                await asyncio.sleep(0.02)
            return
        choices = [ChoiceStream(gen.parsing) for _ in range(gen.n)]
        headers: list[dict[int, dict[str, Any]]] = [{} for _ in range(gen.n)]  # repeat_tool_header's
        # One piece per engine output; the last one finishes the request (with the EOS step on a "stop").
        pieces = engine_outputs(gen.text, reply.chunking, gen.stream_interval, eos=gen.finish == "stop")
        last_deltas: list[dict[str, Any] | None] = [None] * gen.n
        count_reasoning = writer.continuous_prompt is not None and gen.parsing.reasoning
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
            outcome.generated += gen.n * len(tokenize(piece))
            if count_reasoning:
                writer.reasoning_tokens = reasoning_tokens("".join(pieces[: i + 1]))
            deltas = [choice.step(piece) for choice in choices]
            if reply.repeat_tool_header:
                deltas = [repeat_tool_headers(delta, headers[k]) for k, delta in enumerate(deltas)]
            if i == len(pieces) - 1:
                last_deltas = deltas  # the finishing output's text rides on the finish chunk
                continue
            for index, delta in enumerate(deltas):
                if delta:
                    first = first or time.time()  # when the first token leaves the server
                    outcome.first_token = outcome.first_token or first
                    yield writer.delta(delta, index)
        if reply.error_after_tokens is not None:
            # The engine ends the request with finish_reason "error": GenerationError, then [DONE].
            outcome.reason = "error"
            yield sse(reply.body or error_body(GENERATION_ERROR, 500))
            yield DONE_EVENT
            return
        writer.completion_tokens = gen.completion_tokens
        writer.reasoning_tokens = gen.reasoning_tokens or 0
        include_usage = bool(options.get("include_usage"))
        for index, choice in enumerate(choices):
            finish = resolve_finish_reason(gen.finish, gen.parsing.tool_choice, choice.tools_streamed)
            yield writer.finish(finish, last_deltas[index], with_fingerprint=not include_usage, index=index)
        outcome.reason, outcome.generated = gen.finish, gen.n * gen.completion_tokens
        outcome.first_token = outcome.first_token or time.time()
        if include_usage:
            yield writer.usage_chunk(gen.prompt_tokens, gen.n * gen.completion_tokens)
        self._timed(arrived, first or time.time(), gen.completion_tokens)
        yield DONE_EVENT


def _parsing(cfg: DemoConfig, body: dict[str, Any], fields: ChatFields) -> Parsing:
    """How this request's output is parsed (chat_completion/serving.py, message_assembly.keeps_tool_calls)."""
    choice = effective_tool_choice(body)
    tools = bool(body.get("tools"))
    thinking = (fields.chat_template_kwargs or {}).get("enable_thinking", True) is not False
    return Parsing(
        tool_choice=choice,
        run_tool_parser=cfg.parser_loaded and tools and choice != "none",
        keep_calls=keeps_tool_calls(choice, cfg.parser_loaded, tools),
        reasoning=cfg.reasoning_parser is not None and thinking,
        include_reasoning=fields.include_reasoning,
        parallel=fields.parallel_tool_calls is not False,
        parser_present=cfg.parser_loaded or cfg.reasoning_parser is not None,
    )


def _generate(
    id: str,
    cfg: DemoConfig,
    body: dict[str, Any],
    fields: ChatFields,
    reply: Reply,
    parsing: Parsing,
    prompt_tokens: int,
    budget: int,
) -> _Generation:
    """Apply the grammar and the token budget to the raw reply text."""
    text = reply.text
    if parsing.run_tool_parser and not parsing.parallel and TOOL_CALL_END in text:
        # parallel_tool_calls=false: the grammar ends generation after the first call.
        text = text[: text.index(TOOL_CALL_END) + len(TOOL_CALL_END)]
    tokens, finish = tokenize(text), reply.finish
    if len(tokens) >= budget:  # no room left for EOS either
        tokens, finish = tokens[:budget], "length"
    return _Generation(
        id=id,
        model=cfg.served_model_names[0],
        text="".join(tokens),
        finish=finish,
        # A "length" finish means the engine generated its whole budget; a scripted shorter text stands in for it.
        prompt_tokens=prompt_tokens,
        completion_tokens=budget if finish == "length" else len(tokens) + 1,
        parsing=parsing,
        n=1 if fields.n is None else fields.n,
        stream_interval=max(fields.stream_interval or 1, cfg.stream_interval),
        reasoning_details=cfg.reasoning_parser is not None,
    )


def _complete(gen: _Generation) -> dict[str, Any]:
    """The non-streaming body: one parsed choice per `n`, finish_reason by resolve_finish_reason."""
    choices = []
    for index in range(gen.n):
        parsed = parse_choice(gen.text, gen.parsing)
        calls = [
            {"id": new_tool_call_id(), "type": "function", "function": {"name": name, "arguments": args}}
            for name, args in parsed.calls
        ]
        finish = resolve_finish_reason(gen.finish, gen.parsing.tool_choice, bool(calls))
        choices.append(message_choice(index, parsed.content, calls, parsed.reasoning, finish))
    return completion_body(
        id=gen.id,
        created=int(time.time()),
        model=gen.model,
        choices=choices,
        prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.n * gen.completion_tokens,
        reasoning_tokens=gen.reasoning_tokens,
    )
