"""The one model factory: ChatOpenAI pointed at the vLLM endpoint, and the served-model lookup."""

from __future__ import annotations

import asyncio
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_openai import ChatOpenAI

from configs.settings import Settings

_MODELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], ChatOpenAI]] = (
    weakref.WeakKeyDictionary()
)
_RESOLVED: dict[tuple[str, str], str] = {}
# Keep enough idle connections for a busy batch: httpx's default of 20 keepalive connections makes
# every request beyond 20 in flight open and close its own TCP connection.
CONNECTION_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=256)


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


class ModelNotFoundError(RuntimeError):
    """The endpoint serves no model, or not the one asked for."""


def _model_key(settings: Settings, model: str, temperature: float | None, max_tokens: int | None,
               streaming: bool) -> tuple[Any, ...]:
    return (
        settings.openai_api_base, settings.openai_api_key.get_secret_value(), model,
        settings.agent_temperature if temperature is None else temperature,
        max_tokens or settings.agent_max_tokens, settings.agent_request_timeout,
        settings.agent_max_retries, streaming,
    )


def cached_chat_model(
    settings: Settings, model: str, *, temperature: float | None = None, max_tokens: int | None = None,
    streaming: bool = True, loop: asyncio.AbstractEventLoop,
) -> ChatOpenAI | None:
    """The model `make_chat_model` already built for these parameters on `loop`, if any (no I/O)."""
    return _MODELS.get(loop, {}).get(_model_key(settings, model, temperature, max_tokens, streaming))


def make_chat_model(
    settings: Settings,
    model: str,
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    streaming: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
) -> ChatOpenAI:
    """A ChatOpenAI for `model` on the configured endpoint (one per event loop and parameters).

    The instance is reused because it owns an HTTP connection pool. A pool belongs to the event loop it
    is used on, so each loop (`loop`, default the running one) gets its own client; langchain-openai's
    shared default client would outlive a closed loop ("Event loop is closed").
    """
    key = _model_key(settings, model, temperature, max_tokens, streaming)
    try:
        cache = _MODELS.setdefault(loop or asyncio.get_running_loop(), {})
    except RuntimeError:
        cache = {}
    if key not in cache:
        client = httpx.AsyncClient(timeout=settings.agent_request_timeout, limits=CONNECTION_LIMITS,
                                   event_hooks={"request": [_tally_request]})
        cache[key] = ChatOpenAI(
            model=model,
            base_url=settings.openai_api_base,
            api_key=settings.openai_api_key,
            temperature=key[3],
            max_tokens=key[4],  # sent as max_completion_tokens, which vLLM 0.33 honours
            timeout=settings.agent_request_timeout,
            max_retries=settings.agent_max_retries,  # the openai client retries connect errors, 429, 5xx
            stream_usage=True,  # vLLM sends a final usage chunk; only added to streaming requests
            disable_streaming=not streaming,
            http_async_client=client,
        )
    return cache[key]


def auth_headers(settings: Settings) -> dict[str, str]:
    """The Authorization header vLLM checks (`--api-key`)."""
    return {"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"}


async def list_models(settings: Settings, client: httpx.AsyncClient | None = None) -> list[str]:
    """The model ids `GET /v1/models` lists (raises httpx errors on failure)."""
    owns = client is None
    # Created in a thread: reading CA files is blocking I/O that `langgraph dev` refuses on its loop.
    client = client or await asyncio.to_thread(httpx.AsyncClient, timeout=min(settings.agent_request_timeout, 15.0))
    try:
        resp = await client.get(f"{settings.openai_api_base}/models", headers=auth_headers(settings))
        resp.raise_for_status()
        return [card["id"] for card in resp.json().get("data", [])]
    finally:
        if owns:
            await client.aclose()


async def resolve_model_name(settings: Settings, requested: str | None = None) -> str:
    """The model to use: `requested`, else AGENT_MODEL, else the first model the server lists."""
    if requested or settings.agent_model:
        return requested or settings.agent_model  # type: ignore[return-value]
    cache_key = (settings.openai_api_base, settings.openai_api_key.get_secret_value())
    if cache_key not in _RESOLVED:
        models = await list_models(settings)
        if not models:
            raise ModelNotFoundError(
                f"The server at {settings.openai_api_base} lists no models; set AGENT_MODEL."
            )
        _RESOLVED[cache_key] = models[0]
    return _RESOLVED[cache_key]
