"""Failover across endpoints: cool-downs, the tracked HTTP transport, and which endpoint answered each call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import aiohttp
import httpx
import openai
from httpx_aiohttp import AiohttpTransport

from configs.settings import Endpoint, Settings
from graph.trace import Skip, SkipReason, http_reason

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


async def tally_request(request: httpx.Request) -> None:
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
        """Record a failure of the endpoint now (`why` as in `Skip.why`)."""
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

    cooling: list[Skip] = field(default_factory=list)  # endpoints moved to the back for their cool-down
    attempts: list[tuple[str, Skip | None]] = field(default_factory=list)  # (label, how it failed | None)
    routed: list[Skip] = field(default_factory=list)  # upstreams a router tried before the one that answered

    @property
    def endpoint(self) -> str | None:
        """host:port of the endpoint that answered (the last attempt that did not fail)."""
        return next((label for label, failure in reversed(self.attempts) if failure is None), None)

    @property
    def skipped(self) -> list[Skip]:
        """Endpoints passed over before the answer (an endpoint's retries folded into its last failure)."""
        failed: dict[str, Skip] = {}
        for label, failure in self.attempts:
            if failure is not None and label != self.endpoint:
                failed[label] = failure
        return [*failed.values(), *self.routed, *self.cooling]


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
    """A response body taken off the socket as it arrives; read errors are mapped like the request's.

    aiohttp throws away the bytes it holds once the connection closes (its StreamReader raises before it returns
    them), so a reader that was busy elsewhere for a loop turn (langchain-openai's per-chunk timeout task, a
    loaded machine) lost what a dying server had already sent: the streamed start of a reply cut off mid-stream.
    A task of its own, started with the headers, is always waiting on the socket and takes each chunk before
    asyncio hands aiohttp the close; the error comes after the chunks.
    """

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self.inner = inner
        self._chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read_ahead())

    async def _read_ahead(self) -> None:
        try:
            async for chunk in self.inner:
                self._chunks.put_nowait(chunk)
        except BaseException as exc:  # handed to the consumer, after the chunks that came before it
            self._chunks.put_nowait(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._chunks.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (item := await self._chunks.get()) is not None:
            if isinstance(item, httpx.TransportError):
                raise _transport_error(item) from item.__cause__
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        if not self._reader.done():
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.inner.aclose()


class TrackedTransport(httpx.AsyncBaseTransport):
    """aiohttp under httpx, recording each request's endpoint and outcome for the trace and cool-down.

    aiohttp's connection pool, because httpcore's scans every pooled connection's socket on each request:
    30 % of a batch's CPU at 32 in flight (bench/README.md). The recording is hand-written because neither
    httpx nor the openai client reports which endpoint of a fallback chain answered; this is the one place
    that sees every attempt, the client's own retries included.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.inner = AiohttpTransport(limits=CONNECTION_LIMITS)
        self.endpoint = endpoint

    def _note(self, reason: SkipReason | None, why: str = "") -> None:
        failure = None if reason is None else Skip(endpoint=self.endpoint.label, reason=reason, why=why)
        if failure is None:
            HEALTH.ok(self.endpoint.base_url)
        else:
            HEALTH.failed(self.endpoint.base_url, why)
        if (record := CALL.get()) is not None:
            record.attempts.append((self.endpoint.label, failure))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as raw:
            exc = _transport_error(raw)
            if isinstance(exc, httpx.TimeoutException):
                self._note("timeout", "timed out")
            else:
                self._note("connection", f"connection failed ({type(exc).__name__})")
            raise exc from raw.__cause__
        code = response.status_code
        if code >= 500 or code in _ENDPOINT_FAULT_STATUS:
            self._note(http_reason(code), f"HTTP {code}")
        else:
            self._note(None)
        if (record := CALL.get()) is not None and code < 400:
            record.routed = router_retries(response.headers, self.endpoint.label)
        response.stream = _Body(response.stream)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def router_retries(headers: httpx.Headers, label: str) -> list[Skip]:
    """The upstreams a router in front of the replicas tried and passed over, from its response headers.

    deploy/nginx/router.conf adds `X-Upstream-Addr` and `X-Upstream-Status` (nginx's `$upstream_addr` and
    `$upstream_status`, e.g. "10.0.0.1:8000, 10.0.0.2:8000" and "502, 200") so a failover behind the router
    shows in the trace and the metrics like one the agent made itself.
    """
    addrs = [a.strip() for a in headers.get("x-upstream-addr", "").replace(" : ", ",").split(",") if a.strip()]
    codes = [c.strip() for c in headers.get("x-upstream-status", "").replace(" : ", ",").split(",") if c.strip()]
    return [
        Skip(
            endpoint=addr,
            reason=http_reason(int(code)) if code.isdigit() else "other",
            why=f"HTTP {code} (behind the router at {label})",
        )
        for addr, code in zip(addrs[:-1], codes)
    ]


def ordered_endpoints(settings: Settings) -> tuple[list[Endpoint], list[Skip]]:
    """The endpoints in the order to try now (cooling ones last), and why each cooling one was moved."""
    ready: list[Endpoint] = []
    cooling: list[Endpoint] = []
    notes: list[Skip] = []
    for ep in settings.endpoints():
        why = HEALTH.cooling(ep.base_url, settings.agent_failover_cooldown)
        (cooling if why else ready).append(ep)
        if why:
            notes.append(Skip(endpoint=ep.label, reason="cooldown", why=f"cooling down after {why}"))
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
