"""Validate a chat request's typed fields (pydantic) and sampling values with vLLM 0.33's exact error texts."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph.demo.protocol import ApiError

# vllm/envs.py VLLM_MAX_N_SEQUENCES
MAX_N = 16384
_MAX_INPUT_CHARS = 200  # serve/exception_handling/handlers/validation.py _MAX_ERROR_INPUT_CHARS
_MAX_ERROR_CHARS = 1000
_MAX_REPORTED = 10

# sampling_params.py SamplingParams._verify_args / _verify_num_sequences
N_TOO_SMALL = "n must be at least 1, got {value}."
N_TOO_LARGE = (
    "n must be at most {max}, got {value}. To increase this limit, set the VLLM_MAX_N_SEQUENCES environment variable."
)
PRESENCE_RANGE = "presence_penalty must be in [-2, 2], got {value}."
FREQUENCY_RANGE = "frequency_penalty must be in [-2, 2], got {value}."
REPETITION_POSITIVE = "repetition_penalty must be greater than zero, got {value}."
TEMPERATURE_NEGATIVE = "temperature must be non-negative, got {value}."
TEMPERATURE_RANGE = "temperature must be in [0, 2], got {value}."
TOP_P_RANGE = "top_p must be in (0, 1], got {value}."
TOP_K_RANGE = "top_k must be 0 (disable), or at least 1, got {value}."
MIN_P_RANGE = "min_p must be in [0, 1], got {value}."
MAX_TOKENS_POSITIVE = "max_tokens must be at least 1, got {value}."


class ChatFields(BaseModel):
    """The fields of vLLM's ChatCompletionRequest (chat_completion/protocol.py) this server reads, in its order."""

    model_config = ConfigDict(extra="ignore")

    messages: list[Any]
    frequency_penalty: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = 1
    presence_penalty: float | None = None
    stream: bool | None = False
    temperature: float | None = None
    top_p: float | None = None
    include_reasoning: bool = True
    parallel_tool_calls: bool | None = True
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    stream_interval: Annotated[int, Field(ge=1)] | None = None


def _summarize(value: Any) -> Any:
    """handlers/validation.py _summarize_error_input: containers described, the rest as (short) text."""
    if isinstance(value, str):
        return value[:_MAX_INPUT_CHARS] + "...[truncated]" if len(value) > _MAX_INPUT_CHARS else value
    if isinstance(value, list | tuple | set | frozenset | dict):
        return f"<{type(value).__name__} of {len(value)} items>"
    text = str(value)
    return text[:_MAX_INPUT_CHARS] + "...[truncated]" if len(text) > _MAX_INPUT_CHARS else text


def _validation_error(exc: ValidationError) -> ApiError:
    """FastAPI's RequestValidationError as vLLM's handler words it: `N validation error(s):` then each."""
    errors = exc.errors(include_url=False)
    lines = []
    for error in errors[:_MAX_REPORTED]:
        shown: dict[str, Any] = {**error, "loc": ".".join(("body", *map(str, error["loc"])))}
        if "input" in shown:
            shown["input"] = _summarize(shown["input"])
        text = str(shown)
        lines.append(text[:_MAX_ERROR_CHARS] + "...[truncated]" if len(text) > _MAX_ERROR_CHARS else text)
    label = "error" if len(errors) == 1 else "errors"
    message = f"{len(errors)} validation {label}:\n" + "".join(f"  {line}\n" for line in lines)
    if len(errors) > _MAX_REPORTED:
        message += f"  ...and {len(errors) - _MAX_REPORTED} more {label}\n"
    param = ".".join(("body", *map(str, errors[0]["loc"])))
    return ApiError(400, message.rstrip(), "Bad Request", param)


def chat_fields(body: dict[str, Any]) -> ChatFields:
    """The typed fields, coerced like pydantic does (`"max_tokens": "10"` is 10), or vLLM's 400."""
    try:
        return ChatFields.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _check(ok: bool, template: str, value: Any, param: str | None = None) -> None:
    if ok:
        return
    message = template.format(value=value, max=MAX_N)
    if param is not None:  # a VLLMValidationError with parameter and value (exceptions.py __str__)
        message += f" (parameter={param}, value={value})"
    raise ApiError(400, message, param=param)


def check_sampling(fields: ChatFields, max_tokens: int) -> None:
    """SamplingParams._verify_args, in its order, for what the request set (defaults always pass)."""
    n = 1 if fields.n is None else fields.n
    _check(n >= 1, N_TOO_SMALL, n)
    _check(n <= MAX_N, N_TOO_LARGE, n)
    if fields.presence_penalty is not None:
        _check(-2.0 <= fields.presence_penalty <= 2.0, PRESENCE_RANGE, fields.presence_penalty)
    if fields.frequency_penalty is not None:
        _check(-2.0 <= fields.frequency_penalty <= 2.0, FREQUENCY_RANGE, fields.frequency_penalty)
    if fields.repetition_penalty is not None:
        _check(fields.repetition_penalty > 0.0, REPETITION_POSITIVE, fields.repetition_penalty)
    if fields.temperature is not None:
        _check(fields.temperature >= 0.0, TEMPERATURE_NEGATIVE, fields.temperature, "temperature")
        _check(fields.temperature <= 2.0, TEMPERATURE_RANGE, fields.temperature, "temperature")
    if fields.top_p is not None:
        _check(0.0 < fields.top_p <= 1.0, TOP_P_RANGE, fields.top_p, "top_p")
    if fields.top_k is not None:
        _check(fields.top_k >= -1, TOP_K_RANGE, fields.top_k)
    if fields.min_p is not None:
        _check(0.0 <= fields.min_p <= 1.0, MIN_P_RANGE, fields.min_p)
    _check(max_tokens >= 1, MAX_TOKENS_POSITIVE, max_tokens, "max_tokens")
