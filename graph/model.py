"""The one model factory: ChatOpenAI per endpoint, chained with `with_fallbacks`, and the served-model lookup."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import httpx
import openai
from langchain_core.runnables import Runnable
from httpx_aiohttp import AiohttpTransport
from langchain_openai import ChatOpenAI

from configs.settings import Endpoint, Settings

_MODELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)
_RESOLVED: dict[tuple[str, str], str] = {}
T = TypeVar("T")
# Enough connections for a busy batch (aiohttp keeps every one it may open alive for reuse).
CONNECTION_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=256)
# Errors that are the endpoint's fault, so the next endpoint may answer. A 400/422 (context too long,
# bad arguments) is the request's fault and would fail everywhere, so it is not retried elsewhere.
FAILOVER_ERRORS: tuple[type[Exception], ...] = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.InternalServerError,
    openai.RateLimitError,
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
)
_ENDPOINT_FAULT_STATUS = {401, 403, 404, 429}


@dataclass
class RequestTally:
    """HTTP requests sent to the model server, and how many of them were the client's retries."""

    requests: int = 0
    retries: int = 0


REQUEST_TALLY: ContextVar[RequestTally | None] = ContextVar("model_request_tally", default=None)
"""Set a fresh RequestTally before a turn to count its requests (tasks it starts share the object)."""


async def _tally_request(request: httpx.Request) -> None:
    """httpx request hook: count into the current context's tally (the openai client numbers retries)."""
    tally = REQUEST_TALLY.get()
    if tally is not None:
        tally.requests += 1
        tally.retries += request.headers.get("x-stainless-retry-count", "0") != "0"


class EndpointHealth:
    """When each endpoint last failed and why; a failed endpoint goes to the back for a cool-down."""

    def __init__(self) -> None:
        self._failed: dict[str, tuple[float, str]] = {}

    def failed(self, base_url: str, why: str) -> None:
        """Record a failure of the endpoint now."""
        self._failed[base_url] = (time.monotonic(), why)

    def ok(self, base_url: str) -> None:
        """The endpoint answered: it is healthy again."""
        self._failed.pop(base_url, None)

    def cooling(self, base_url: str, cooldown: float) -> str | None:
        """Why the endpoint is still cooling down, or None when it may be tried first."""
        when, why = self._failed.get(base_url, (0.0, ""))
        return why if why and time.monotonic() - when < cooldown else None

    def reset(self) -> None:
        """Forget every failure (tests)."""
        self._failed.clear()


HEALTH = EndpointHealth()


@dataclass
class CallRecord:
    """Which endpoints one model call went to: the one that answered and the ones passed over."""

    cooling: list[str] = field(default_factory=list)  # "host:port: cooling down after ..."
    attempts: list[tuple[str, str | None]] = field(default_factory=list)  # (label, why it failed | None)
    routed: list[str] = field(default_factory=list)  # upstreams a router tried before the one that answered

    @property
    def endpoint(self) -> str | None:
        """host:port of the endpoint that answered (the last attempt that did not fail)."""
        return next((label for label, why in reversed(self.attempts) if why is None), None)

    @property
    def skipped(self) -> list[str]:
        """Endpoints passed over before the answer, each 'host:port: why' (retries folded together)."""
        failed: dict[str, str] = {}
        for label, why in self.attempts:
            if why is not None and label != self.endpoint:
                failed[label] = why
        return [*(f"{label}: {why}" for label, why in failed.items()), *self.routed, *self.cooling]


CALL: ContextVar[CallRecord | None] = ContextVar("model_call_record", default=None)


def _transport_error(exc: httpx.TransportError) -> httpx.TransportError:
    """The httpx error that names what really happened to an aiohttp request.

    httpx-aiohttp 0.2 maps every aiohttp connection error, a refused connection or a server closing the
    stream included, to httpx.ConnectTimeout; the messages and the failover reasons need the real one.
    """
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):
        mapped: httpx.TransportError = httpx.ConnectError(str(cause))
    elif isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        mapped = httpx.ReadTimeout(str(cause) or "read timed out")
    elif isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        mapped = httpx.RemoteProtocolError(str(cause) or "server disconnected")
    elif isinstance(cause, aiohttp.ClientOSError):
        mapped = httpx.ReadError(str(cause))
    else:
        return exc
    mapped.__cause__ = cause
    return mapped


class _Body(httpx.AsyncByteStream):
    """A response body whose read errors are mapped like the request's (see `_transport_error`)."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self.inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except httpx.TransportError as exc:
            raise _transport_error(exc) from exc.__cause__

    async def aclose(self) -> None:
        await self.inner.aclose()


class _TrackedTransport(httpx.AsyncBaseTransport):
    """aiohttp under httpx, recording each request's endpoint and outcome for the trace and cool-down.

    aiohttp's connection pool, because httpcore's scans every pooled connection's socket on each request:
    30 % of a batch's CPU at 32 in flight (bench/README.md). The recording is hand-written because neither
    httpx nor the openai client reports which endpoint of a fallback chain answered; this is the one place
    that sees every attempt, the client's own retries included.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.inner = AiohttpTransport(limits=CONNECTION_LIMITS)
        self.endpoint = endpoint

    def _note(self, why: str | None) -> None:
        if why is None:
            HEALTH.ok(self.endpoint.base_url)
        else:
            HEALTH.failed(self.endpoint.base_url, why)
        if (record := CALL.get()) is not None:
            record.attempts.append((self.endpoint.label, why))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as raw:
            exc = _transport_error(raw)
            timed_out = isinstance(exc, httpx.TimeoutException)
            self._note("timed out" if timed_out else f"connection failed ({type(exc).__name__})")
            raise exc from raw.__cause__
        code = response.status_code
        self._note(f"HTTP {code}" if code >= 500 or code in _ENDPOINT_FAULT_STATUS else None)
        if (record := CALL.get()) is not None and code < 400:
            record.routed = router_retries(response.headers, self.endpoint.label)
        response.stream = _Body(response.stream)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def router_retries(headers: httpx.Headers, label: str) -> list[str]:
    """The upstreams a router in front of the replicas tried and passed over, from its response headers.

    deploy/nginx/router.conf adds `X-Upstream-Addr` and `X-Upstream-Status` (nginx's `$upstream_addr` and
    `$upstream_status`, e.g. "10.0.0.1:8000, 10.0.0.2:8000" and "502, 200") so a failover behind the router
    shows in the trace and the metrics like one the agent made itself.
    """
    addrs = [a.strip() for a in headers.get("x-upstream-addr", "").replace(" : ", ",").split(",") if a.strip()]
    codes = [c.strip() for c in headers.get("x-upstream-status", "").replace(" : ", ",").split(",") if c.strip()]
    return [f"{addr}: HTTP {code} (behind the router at {label})" for addr, code in zip(addrs[:-1], codes)]


def ordered_endpoints(settings: Settings) -> tuple[list[Endpoint], list[str]]:
    """The endpoints in the order to try now (cooling ones last), and why each cooling one was moved."""
    ready, cooling, notes = [], [], []
    for ep in settings.endpoints():
        why = HEALTH.cooling(ep.base_url, settings.agent_failover_cooldown)
        (cooling if why else ready).append(ep)
        if why:
            notes.append(f"{ep.label}: cooling down after {why}")
    return ready + cooling, notes


@contextmanager
def track_call(settings: Settings) -> Iterator[CallRecord]:
    """Record the endpoints of the model call made inside the block."""
    _, notes = ordered_endpoints(settings)
    record = CallRecord(cooling=notes)
    token = CALL.set(record)
    try:
        yield record
    finally:
        CALL.reset(token)


class VllmChat(ChatOpenAI):
    """ChatOpenAI that hands the openai SDK its messages and tools already shaped as JSON.

    The SDK walks every request body against its TypedDicts (`_transform`: key aliases, dates, files). A
    chat payload from LangChain has none of those, and the walk over the conversation and the tool
    schemas was 13 % of a batch's CPU (py-spy, bench/README.md). `extra_body` is sent untouched, and the
    SDK merges it over the (now empty) transformed fields.
    """

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        shaped = {k: payload.pop(k) for k in ("messages", "tools") if k in payload}
        payload["messages"] = []
        payload["extra_body"] = {**(payload.get("extra_body") or {}), **shaped}
        return payload


class ModelNotFoundError(RuntimeError):
    """The endpoint serves no model, or not the one asked for."""


def _model_key(settings: Settings, model: str, temperature: float | None, max_tokens: int | None,
               streaming: bool) -> tuple[Any, ...]:
    order, _ = ordered_endpoints(settings)
    return (
        tuple((ep.base_url, ep.key(), ep.model) for ep in order), model,
        settings.agent_temperature if temperature is None else temperature,
        max_tokens or settings.agent_max_tokens, settings.agent_request_timeout,
        settings.agent_max_retries, streaming,
    )


def cached_chat_model(
    settings: Settings, model: str, *, temperature: float | None = None, max_tokens: int | None = None,
    streaming: bool = True, loop: asyncio.AbstractEventLoop,
) -> Runnable | None:
    """The model `make_chat_model` already built for these parameters on `loop`, if any (no I/O)."""
    return _MODELS.get(loop, {}).get(_model_key(settings, model, temperature, max_tokens, streaming))


def _endpoint_model(settings: Settings, ep: Endpoint, model: str, temperature: float, max_tokens: int,
                    streaming: bool) -> VllmChat:
    client = httpx.AsyncClient(timeout=settings.agent_request_timeout, transport=_TrackedTransport(ep),
                               event_hooks={"request": [_tally_request]})
    return VllmChat(
        model=ep.model or model,
        base_url=ep.base_url,
        api_key=ep.api_key,  # only ever sent to its own endpoint
        temperature=temperature,
        max_tokens=max_tokens,  # sent as max_completion_tokens, which vLLM 0.33 honours
        timeout=settings.agent_request_timeout,
        max_retries=settings.agent_max_retries,  # the openai client retries connect errors, 429, 5xx
        stream_usage=True,  # vLLM sends a final usage chunk; only added to streaming requests
        disable_streaming=not streaming,
        http_async_client=client,
    )


def make_chat_model(
    settings: Settings,
    model: str,
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    streaming: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Runnable:
    """A chat model for `model` on the configured endpoints (one per event loop, parameters and order).

    One endpoint gives a plain ChatOpenAI; several give LangChain's `with_fallbacks` chain in the order
    `ordered_endpoints` picks, so an endpoint in its cool-down is tried last. Each ChatOpenAI owns an HTTP
    connection pool, which belongs to the event loop it is used on, so each loop (`loop`, default the
    running one) gets its own; langchain-openai's shared default client would outlive a closed loop.
    """
    key = _model_key(settings, model, temperature, max_tokens, streaming)
    try:
        cache = _MODELS.setdefault(loop or asyncio.get_running_loop(), {})
    except RuntimeError:
        cache = {}
    if key not in cache:
        order, _ = ordered_endpoints(settings)
        chats = []
        for ep, ident in zip(order, key[0]):  # one ChatOpenAI (and connection pool) per endpoint
            chats.append(cache.get(("endpoint", ident, *key[1:])) or cache.setdefault(
                ("endpoint", ident, *key[1:]), _endpoint_model(settings, ep, model, key[2], key[3], streaming)))
        cache[key] = chats[0] if len(chats) == 1 else chats[0].with_fallbacks(
            chats[1:], exceptions_to_handle=FAILOVER_ERRORS)
    return cache[key]


def bind_tools(model: Runnable, tools: Sequence[Any]) -> Runnable:
    """`model.bind_tools(tools)`, converted once per model and tool set (the schemas never change).

    Kept beside the model in its loop's cache, so it goes when the loop's models go.
    """
    if not tools:
        return model  # vLLM 400s on `tools: []`
    cache = _MODELS.get(asyncio.get_running_loop())
    key = ("bound", id(model), tuple(t.name for t in tools))
    hit = cache.get(key) if cache is not None else None
    if hit is None or hit[0] is not model:  # a model built outside the cache, or an id reused
        hit = (model, model.bind_tools(tools))
        if cache is not None:
            cache[key] = hit
    return hit[1]


async def aclose_models() -> None:
    """Close the connection pools of the models built on the running loop; call it before the loop ends.

    aiohttp reports a session still open when it is garbage-collected, at exit, on stderr.
    """
    cache = _MODELS.pop(asyncio.get_running_loop(), {})
    clients = {id(c): c for m in cache.values() if (c := getattr(m, "http_async_client", None)) is not None}
    await asyncio.gather(*(c.aclose() for c in clients.values()), return_exceptions=True)


async def closing_models(work: Awaitable[T]) -> T:
    """Await `work`, then close the models' connection pools (the body of a CLI's `asyncio.run`)."""
    try:
        return await work
    finally:
        await aclose_models()


def auth_headers(endpoint: Endpoint | Settings) -> dict[str, str]:
    """The Authorization header vLLM checks (`--api-key`), for this endpoint only."""
    ep = endpoint.endpoints()[0] if isinstance(endpoint, Settings) else endpoint
    return {"Authorization": f"Bearer {ep.key()}"}


async def list_models(settings: Settings, client: httpx.AsyncClient | None = None,
                      endpoint: Endpoint | None = None) -> list[str]:
    """The model ids `GET /v1/models` lists on `endpoint` (default the first; raises httpx errors)."""
    ep = endpoint or settings.endpoints()[0]
    owns = client is None
    # Created in a thread: reading CA files is blocking I/O that `langgraph dev` refuses on its loop.
    client = client or await asyncio.to_thread(httpx.AsyncClient, timeout=min(settings.agent_request_timeout, 15.0))
    try:
        resp = await client.get(f"{ep.base_url}/models", headers=auth_headers(ep))
        resp.raise_for_status()
        return [card["id"] for card in resp.json().get("data", [])]
    finally:
        if owns:
            await client.aclose()


async def resolve_model_name(settings: Settings, requested: str | None = None) -> str:
    """The model to use: `requested`, else AGENT_MODEL, else the first model the first reachable endpoint lists."""
    if requested or settings.agent_model:
        return requested or settings.agent_model  # type: ignore[return-value]
    order, _ = ordered_endpoints(settings)
    errors: list[Exception] = []
    for ep in order:
        if ep.model:  # an endpoint with its own model needs no lookup; the name is only the default
            return ep.model
        cache_key = (ep.base_url, ep.key())
        if cache_key not in _RESOLVED:
            try:
                models = await list_models(settings, endpoint=ep)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                HEALTH.failed(ep.base_url, f"connection failed ({type(exc).__name__})"
                              if isinstance(exc, httpx.TransportError) else f"HTTP {exc.response.status_code}")
                errors.append(exc)
                continue
            if not models:
                raise ModelNotFoundError(f"The server at {ep.base_url} lists no models; set AGENT_MODEL.")
            _RESOLVED[cache_key] = models[0]
        return _RESOLVED[cache_key]
    raise errors[0]
