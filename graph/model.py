"""The one model factory: ChatOpenAI per endpoint, chained with `with_fallbacks`, and the served-model lookup."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from configs.settings import Endpoint, Settings
from graph.errors import ModelNotFoundError
from graph.failover import FAILOVER_ERRORS, HEALTH, TrackedTransport, ordered_endpoints, tally_request

_MODELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()
_RESOLVED: dict[tuple[str, str], str] = {}
T = TypeVar("T")
_BOTH_LIMITS_REFUSED = ("api.openai.com", ".openai.azure.com")
"""Hosts that answer 400 to `max_tokens` and `max_completion_tokens` in one request ("Setting 'max_tokens' and
'max_completion_tokens' at the same time is not supported", langchain-ai/langgraph#5943)."""


REASONING_KEY = "reasoning_content"


def reasoning_of(message: dict[str, Any]) -> str:
    """The reasoning text of a response message or delta: vLLM's `reasoning`, or `reasoning_content`."""
    value = message.get("reasoning") or message.get("reasoning_content")
    return value if isinstance(value, str) else ""


class VllmChat(ChatOpenAI):
    """ChatOpenAI that hands the openai SDK its messages and tools already shaped as JSON.

    The SDK walks every request body against its TypedDicts (`_transform`: key aliases, dates, files). A
    chat payload from LangChain has none of those, and the walk over the conversation and the tool
    schemas was 13 % of a batch's CPU (py-spy, bench/README.md). `extra_body` is sent untouched, and the
    SDK merges it over the (now empty) transformed fields.

    The body is also shaped for OpenAI-compatible servers that are not vLLM (llama.cpp's, Ollama, LM Studio),
    none of which changes what vLLM 0.33 does: `tool_choice: "auto"` whenever tools go out (llama.cpp reads a
    missing one as "none" and leaves the tools out of the prompt; vLLM's default is "auto"), `content: ""`
    instead of `null` on an assistant turn with tool calls (llama.cpp answers 500 to null; vLLM's template
    skips empty content either way), and `max_tokens` beside `max_completion_tokens` (llama.cpp ignores the
    latter; vLLM takes `max_completion_tokens` when both are sent, `ChatCompletionRequest.build_tok_params`).
    """

    mirror_max_tokens: bool = True
    """Send `max_tokens` too; off for OpenAI's own API, which refuses both in one request."""

    # Reasoning: vLLM 0.33 sends a thinking model's reasoning as `reasoning` (deltas and message; other servers
    # say `reasoning_content`), which langchain-openai drops. Both converters keep it in the message's
    # `additional_kwargs["reasoning_content"]` (LangChain's key for it, as ChatDeepSeek uses), which the
    # request builder never sends back to the model.

    def _convert_chunk_to_generation_chunk(
        self, chunk: dict, default_chunk_class: type, base_generation_info: dict | None
    ) -> Any:
        generation = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        choices = chunk.get("choices") or []
        delta = (choices[0].get("delta") or {}) if choices else {}
        if generation is not None and (thinking := reasoning_of(delta)):
            generation.message.additional_kwargs[REASONING_KEY] = thinking
        return generation

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> Any:
        result = super()._create_chat_result(response, generation_info)
        body = response if isinstance(response, dict) else response.model_dump(warnings=False)
        for generation, choice in zip(result.generations, body.get("choices") or []):
            if thinking := reasoning_of(choice.get("message") or {}):
                generation.message.additional_kwargs[REASONING_KEY] = thinking
        return result

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if payload.get("tools") and payload.get("tool_choice") is None:
            # Not bind_tools(tool_choice="auto"): langchain-openai turns it into a named choice when a tool
            # is called "auto".
            payload["tool_choice"] = "auto"
        for message in payload.get("messages") or ():
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""  # langchain-openai sends null beside tool calls
        shaped = {k: payload.pop(k) for k in ("messages", "tools") if k in payload}
        if self.mirror_max_tokens and payload.get("max_completion_tokens") is not None:
            shaped["max_tokens"] = payload["max_completion_tokens"]
        payload["messages"] = []
        payload["extra_body"] = {**(payload.get("extra_body") or {}), **shaped}
        return payload


def _model_key(
    settings: Settings, model: str, temperature: float | None, max_tokens: int | None, streaming: bool
) -> tuple[Any, ...]:
    order, _ = ordered_endpoints(settings)
    return (
        tuple((ep.base_url, ep.key(), ep.model) for ep in order),
        model,
        settings.agent_temperature if temperature is None else temperature,
        max_tokens or settings.agent_max_tokens,
        settings.agent_request_timeout,
        settings.agent_max_retries,
        streaming,
    )


def cached_chat_model(
    settings: Settings,
    model: str,
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    streaming: bool = True,
    loop: asyncio.AbstractEventLoop,
) -> Runnable | None:
    """The model `make_chat_model` already built for these parameters on `loop`, if any (no I/O)."""
    return _MODELS.get(loop, {}).get(_model_key(settings, model, temperature, max_tokens, streaming))


def _endpoint_model(
    settings: Settings, ep: Endpoint, model: str, temperature: float, max_tokens: int, streaming: bool
) -> VllmChat:
    client = httpx.AsyncClient(
        timeout=settings.agent_request_timeout, transport=TrackedTransport(ep), event_hooks={"request": [tally_request]}
    )
    host = urlsplit(ep.base_url).hostname or ""
    return VllmChat(
        mirror_max_tokens=not host.endswith(_BOTH_LIMITS_REFUSED),
        model=ep.model or model,
        base_url=ep.base_url,
        api_key=ep.api_key,  # only ever sent to its own endpoint
        temperature=temperature,
        max_tokens=max_tokens,  # sent as max_completion_tokens, and as max_tokens by VllmChat
        timeout=settings.agent_request_timeout,
        max_retries=settings.agent_max_retries,  # the openai client retries connect errors, 429, 5xx
        stream_usage=True,  # vLLM sends a final usage chunk; only added to streaming requests
        disable_streaming=not streaming,
        http_async_client=client,
        # langchain-openai's per-chunk timeout wraps each chunk read in asyncio.wait_for, which on Python 3.11
        # swallows a cancel that arrives as a chunk does: a stopped turn then streams on to its end. The read
        # timeout above (agent_request_timeout) already ends a stalled stream.
        stream_chunk_timeout=None,
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
            chats.append(
                cache.get(("endpoint", ident, *key[1:]))
                or cache.setdefault(
                    ("endpoint", ident, *key[1:]), _endpoint_model(settings, ep, model, key[2], key[3], streaming)
                )
            )
        cache[key] = (
            chats[0] if len(chats) == 1 else chats[0].with_fallbacks(chats[1:], exceptions_to_handle=FAILOVER_ERRORS)
        )
    return cache[key]


def bind_tools(model: Runnable, tools: Sequence[Any]) -> Runnable:
    """`model.bind_tools(tools)`, converted once per model and tool set (the schemas never change).

    Kept beside the model in its loop's cache, so it goes when the loop's models go.
    """
    if not tools:
        return model  # vLLM 400s on `tools: []`
    cache = _MODELS.get(asyncio.get_running_loop())
    key = ("bound", id(model), tuple((t.name, id(t)) for t in tools))  # an MCP server's restart: new tools
    hit = cache.get(key) if cache is not None else None
    if hit is None or hit[0] is not model:  # a model built outside the cache, or an id reused
        hit = (model, model.bind_tools(tools))  # type: ignore[attr-defined]  # a chat model or its fallbacks
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


async def list_models(
    settings: Settings, client: httpx.AsyncClient | None = None, endpoint: Endpoint | None = None
) -> list[str]:
    """The model ids `GET /v1/models` lists on `endpoint` (default the first; raises httpx errors)."""
    ep = endpoint or settings.endpoints()[0]
    owns = client is None
    # Created in a thread: reading CA files is blocking I/O that `langgraph dev` refuses on its loop.
    timeout = min(settings.agent_request_timeout, 15.0)
    http: httpx.AsyncClient = (
        client if client is not None else await asyncio.to_thread(httpx.AsyncClient, timeout=timeout)
    )
    try:
        resp = await http.get(f"{ep.base_url}/models", headers=auth_headers(ep))
        resp.raise_for_status()
        return [card["id"] for card in resp.json().get("data", [])]
    finally:
        if owns:
            await http.aclose()


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
                HEALTH.failed(
                    ep.base_url,
                    f"connection failed ({type(exc).__name__})"
                    if isinstance(exc, httpx.TransportError)
                    else f"HTTP {exc.response.status_code}",
                )
                errors.append(exc)
                continue
            if not models:
                raise ModelNotFoundError(f"The server at {ep.base_url} lists no models; set AGENT_MODEL.")
            _RESOLVED[cache_key] = models[0]
        return _RESOLVED[cache_key]
    raise errors[0]
