"""Validate chat requests and serialize responses, errors and SSE chunks exactly like vLLM 0.33."""

from __future__ import annotations

import hashlib
import json
from http import HTTPStatus
from typing import Any

from graph.demo.hermes import tokenize
from graph.demo.prompt import render_prompt

VLLM_VERSION = "0.33.0"
DONE_EVENT = "data: [DONE]\n\n"
_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}
ENGINE_ERROR = "EngineCore encountered an issue. See stack trace (above) for the root cause."
# exceptions.py GenerationError: what a request whose engine output ends with finish_reason "error" gets.
GENERATION_ERROR = "Internal server error"


def error_body(message: str, code: int, type_: str | None = None, param: str | None = None) -> dict[str, Any]:
    """vLLM's error envelope; `type_` defaults to the vLLM exception name for `code`."""
    kind = type_ or _ERROR_TYPES.get(code) or HTTPStatus(code).phrase
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ApiError(Exception):
    """A request vLLM would refuse: HTTP status plus the error envelope."""

    def __init__(self, code: int, message: str, type_: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = error_body(message, code, type_, param)


def _validation_error(err: dict[str, Any]) -> ApiError:
    """A FastAPI/pydantic validation error as vLLM's handler words it."""
    return ApiError(400, f"1 validation error:\n  {err!r}", "Bad Request", err.get("loc"))


def _param_error(message: str, param: str, value: Any = None) -> ApiError:
    """A VLLMValidationError: the message gets a ` (parameter=X[, value=V])` suffix."""
    suffix = f"parameter={param}" + ("" if value is None else f", value={value}")
    return ApiError(400, f"{message} ({suffix})", param=param)


def parse_body(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """The JSON request body, or the 400 vLLM sends for a wrong media type or bad JSON."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            400, "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed", "Bad Request"
        )
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _validation_error(
            {
                "type": "json_invalid",
                "loc": f"body.{exc.pos}",
                "msg": "JSON decode error",
                "input": "<dict of 0 items>",
                "ctx": {"error": exc.msg},
            }
        ) from None
    except UnicodeDecodeError:
        raise _validation_error(
            {
                "type": "json_invalid",
                "loc": "body.0",
                "msg": "JSON decode error",
                "input": "<dict of 0 items>",
                "ctx": {"error": "Invalid UTF-8"},
            }
        ) from None
    if not isinstance(body, dict):
        raise _validation_error(
            {
                "type": "model_attributes_type",
                "loc": "body",
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": f"<{type(body).__name__} of {len(body) if hasattr(body, '__len__') else 0} items>",
            }
        )
    return body


def named_tool(tool_choice: Any) -> str | None:
    """The function name of a named tool_choice, else None."""
    if isinstance(tool_choice, dict):
        return str((tool_choice.get("function") or {}).get("name", ""))
    return None


def effective_tool_choice(body: dict[str, Any]) -> Any:
    """`tool_choice` as vLLM sees it: "auto" when omitted with tools; an explicit null stays None."""
    if "tool_choice" in body:
        return body["tool_choice"]
    return "auto" if body.get("tools") else None


def validate_request(body: dict[str, Any]) -> None:
    """ChatCompletionRequest's mode="before" model validators (the typed fields follow, in sampling.py)."""
    if body.get("stream_options") is not None and not body.get("stream"):
        raise _param_error("Stream options can only be defined when `stream=True`.", "stream_options")
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise _validation_error(
            {"type": "list_type", "loc": "body.tools", "msg": "Input should be a valid list", "input": repr(tools)}
        )
    if isinstance(tools, list) and not tools:
        raise _param_error(
            "`tools` must not be an empty array. Either provide at least one tool or omit the field entirely.", "tools"
        )
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        raise ApiError(
            400,
            f'Invalid value for `tool_choice`: {choice}! Only named tools, "none", "auto" or "required" are supported.',
        )
    if choice is not None and choice != "none" and not tools:
        raise _param_error("When using `tool_choice`, `tools` must be set.", "tool_choice")
    name = named_tool(choice)
    if name is not None and name not in {(t.get("function") or {}).get("name") for t in tools or []}:
        raise _param_error(
            "The tool specified in `tool_choice` does not match any of the specified `tools`", "tool_choice"
        )


def check_model(body: dict[str, Any], served: list[str]) -> None:
    """404 for a model name that is not one of the served aliases (omitted/empty is fine)."""
    model = body.get("model")
    if model and model not in served:
        raise ApiError(404, f"The model `{model}` does not exist. Valid aliases: {', '.join(served)}.", param="model")


def check_tool_parser(body: dict[str, Any], parser_loaded: bool) -> None:
    """The 400s for tool_choice values that need --enable-auto-tool-choice/--tool-call-parser."""
    if parser_loaded:
        return
    choice = effective_tool_choice(body)  # renderers/online_renderer.py: null and "none" need no parser
    if choice == "auto" and body.get("tools"):
        raise ApiError(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set')
    if choice == "required":
        raise ApiError(400, 'tool_choice="required" requires --tool-call-parser to be set')
    name = named_tool(choice)
    if name is not None:
        raise ApiError(400, f'tool_choice=function "{name}" requires --tool-call-parser to be set')


def count_prompt_tokens(body: dict[str, Any], family: str = "qwen2.5") -> int:
    """The rendered chat prompt's length in the scripted tokenizer's tokens (close to Qwen's, not equal)."""
    return len(tokenize(render_prompt(body, family)))


PROMPT_TOO_LONG = (
    "This model's maximum context length is {limit} tokens. However, your prompt contains at least "
    "{seen} input tokens, which exceeds this limit even without any output tokens. Please reduce "
    "the length of the input prompt."
)


def generation_budget(body: dict[str, Any], prompt_tokens: int, max_model_len: int) -> int:
    """How many tokens may be generated; the 400s for impossible lengths."""
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    requested: int | None = body.get(field)
    if requested is not None and requested > max_model_len:
        raise _param_error(
            f"{field}={requested} cannot be greater than max_model_len="
            f"{max_model_len}. Please request fewer output tokens.",
            field,
            requested,
        )
    if prompt_tokens > max_model_len:
        # renderers/params.py: the prompt is tokenized with max_length=max_model_len+1, so its true length
        # is unknown and the count reads "at least max_model_len+1".
        seen = max_model_len + 1
        raise _param_error(PROMPT_TOO_LONG.format(limit=max_model_len, seen=seen), "input_tokens", seen)
    # vLLM 0.33 silently clamps max_tokens to what is left of the context; below 1 it is refused later
    # (sampling.check_sampling, after the other sampling checks, as SamplingParams does).
    left = max_model_len - prompt_tokens
    return left if requested is None else min(requested, left)


def fingerprint(model: str) -> str:
    """`vllm-<version>-<hash8>`, stable per served model."""
    return f"vllm-{VLLM_VERSION}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def usage(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int | None = None) -> dict[str, Any]:
    """UsageInfo; `completion_tokens_details` only when the server has a reasoning parser."""
    info: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }
    if reasoning_tokens is not None:
        info["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return info


def message_choice(
    index: int,
    content: str | None,
    tool_calls: list[dict[str, Any]],
    reasoning: str | None,
    finish_reason: str,
) -> dict[str, Any]:
    """One non-streaming choice (ChatCompletionResponseChoice.model_dump()); `tool_calls` only when made."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    message["reasoning"] = reasoning  # never `reasoning_content` in vLLM 0.33
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "token_ids": None,
        "routed_experts": None,
        "weight_versions": None,
    }


def completion_body(
    *,
    id: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    prompt_tokens: int,
    completion_tokens: int,
    reasoning_tokens: int | None = None,
) -> dict[str, Any]:
    """A non-streaming response: every field, nulls and vLLM extras included (model_dump())."""
    details = None if reasoning_tokens is None else {"reasoning_tokens": reasoning_tokens}
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": fingerprint(model),
        "usage": {
            **usage(prompt_tokens, completion_tokens),
            "prompt_tokens_details": None,
            "completion_tokens_details": details,
        },
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "prompt_text": None,
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


def sse(payload: dict[str, Any]) -> str:
    """One SSE event, serialized like pydantic's model_dump_json (compact, UTF-8)."""
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


class ChunkWriter:
    """Build the chat.completion.chunk events of one stream, field for field as vLLM sets them."""

    def __init__(
        self, id: str, created: int, model: str, continuous_usage: int | None = None, reasoning_details: bool = False
    ) -> None:
        self._head = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model}
        self.model = model
        self.continuous_prompt = continuous_usage  # prompt tokens when continuous_usage_stats is on
        self.completion_tokens = 0
        self.reasoning_details = reasoning_details  # the server has a reasoning parser
        self.reasoning_tokens = 0

    def _usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return usage(prompt_tokens, completion_tokens, self.reasoning_tokens if self.reasoning_details else None)

    def _chunk(self, choice: dict[str, Any], **tail: Any) -> str:
        payload: dict[str, Any] = {**self._head, "choices": [choice]}
        if self.continuous_prompt is not None:
            payload["usage"] = self._usage(self.continuous_prompt, self.completion_tokens)
        return sse({**payload, **tail})

    def role(self, index: int = 0) -> str:
        choice = {
            "index": index,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        return self._chunk(choice, prompt_token_ids=None, prompt_text=None)

    def delta(self, delta: dict[str, Any], index: int = 0) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None, "token_ids": None}
        return self._chunk(choice, kv_transfer_params=None)

    def finish(self, finish_reason: str, delta: dict[str, Any] | None, with_fingerprint: bool, index: int = 0) -> str:
        choice = {
            "index": index,
            "delta": delta or {},
            "logprobs": None,
            "finish_reason": finish_reason,
            "stop_reason": None,
            "token_ids": None,
            "weight_versions": None,
        }
        tail: dict[str, Any] = {}
        if with_fingerprint:  # ChatCompletionStreamResponse's field order: system_fingerprint, ..., kv
            tail["system_fingerprint"] = fingerprint(self.model)
        tail["kv_transfer_params"] = None
        return self._chunk(choice, **tail)

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> str:
        return sse(
            {
                **self._head,
                "choices": [],
                "usage": self._usage(prompt_tokens, completion_tokens),
                "system_fingerprint": fingerprint(self.model),
            }
        )
