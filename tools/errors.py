"""Turn tool failures into one-line messages the model can act on."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langgraph.prebuilt.tool_node import ToolInvocationError

TOOL_ERROR_TEMPLATE = "Error: {message}"
INVALID_ARGUMENTS_TEMPLATE = (
    "Error: invalid arguments for tool '{tool}': {problems}.{expected} Call {tool} again with corrected arguments."
)
EXPECTED_ARGUMENTS_TEMPLATE = " Expected arguments: {arguments}."
UNEXPECTED_ERROR_TEMPLATE = (
    "Error: tool failed: {kind}: {detail}. Try again once, possibly with different input;"
    " if it keeps failing, tell the user this tool is not working right now."
)
REDACTED = "[redacted]"
MAX_DETAIL_CHARS = 300
MAX_INPUT_CHARS = 60

_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\"]*")
_SECRET_PARAM = re.compile(r"(?i)\b(appid|api[_-]?key|apikey|key|token|access_token)=[^\s&'\"]+")


class ToolError(Exception):
    """A failure the model can act on; the message says what went wrong and what to do next."""


def handle_tool_error(e: Exception) -> str:
    """Render `e` as the content of an error ToolMessage (for `ToolNode(handle_tool_errors=...)`).

    Args:
        e: The exception a tool call raised (or the invocation error for bad arguments).

    Returns:
        One line starting with "Error:"; never a traceback, never a secret.
    """
    # langgraph only when a tool has failed: the tools themselves (and `work-agent list-tools`) do without it.
    from langgraph.errors import GraphBubbleUp
    from langgraph.prebuilt.tool_node import ToolInvocationError

    if isinstance(e, GraphBubbleUp):  # interrupts and other control flow must propagate
        raise e
    if isinstance(e, ToolInvocationError):
        return _invalid_arguments(e)
    if isinstance(e, ToolError):
        return TOOL_ERROR_TEMPLATE.format(message=_one_line(str(e)))
    detail = _one_line(str(e)).rstrip(".") or "no details"
    return UNEXPECTED_ERROR_TEMPLATE.format(kind=type(e).__name__, detail=detail)


def _invalid_arguments(e: ToolInvocationError) -> str:
    errors = e.filtered_errors if e.filtered_errors is not None else e.source.errors()
    problems = []
    for err in errors:
        field = ".".join(str(part) for part in err.get("loc", ())) or "arguments"
        problem = f"{field}: {err.get('msg', 'invalid value')}"
        if err.get("type") != "missing" and "input" in err:
            problem += f" (got {_short(repr(err['input']))})"
        problems.append(problem)
    expected = _expected_arguments(e.tool_name)
    return INVALID_ARGUMENTS_TEMPLATE.format(
        tool=e.tool_name,
        problems=_one_line("; ".join(problems)) or "the arguments do not match the schema",
        expected=EXPECTED_ARGUMENTS_TEMPLATE.format(arguments=expected) if expected else "",
    )


def _expected_arguments(tool_name: str) -> str:
    """Describe a registered tool's arguments, e.g. "expression (string, required)"."""
    from tools import TOOLS_BY_NAME  # lazy: tools/__init__ imports the modules that import us

    tool = TOOLS_BY_NAME.get(tool_name)
    if tool is None:
        return ""
    args_schema = tool.tool_call_schema
    schema = args_schema if isinstance(args_schema, dict) else args_schema.model_json_schema()  # type: ignore[union-attr]
    required = set(schema.get("required", ()))
    parts = []
    for name, spec in schema.get("properties", {}).items():
        kind = _type_of(spec)
        need = "required" if name in required else f"optional, default {spec.get('default')!r}"
        parts.append(f"{name} ({kind}, {need})")
    return ", ".join(parts)


def _type_of(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return " | ".join(repr(v) for v in spec["enum"])
    return str(spec.get("type", "any"))


def _secrets() -> list[str]:
    """The secret values currently configured (to scrub from messages); none if settings fail."""
    from configs import get_settings

    try:
        settings = get_settings()
    except Exception:  # a broken config must not hide the original error
        return []
    values = [settings.openai_api_key.get_secret_value()]
    if settings.weather_api_key is not None:
        values.append(settings.weather_api_key.get_secret_value())
    from configs.secrets import extra_secrets

    return sorted({v for v in values if v.strip() and v != "EMPTY"} | set(extra_secrets()), key=len, reverse=True)


def _one_line(text: str) -> str:
    """Collapse whitespace, drop URL query strings and secrets, and cap the length."""
    for secret in _secrets():
        text = text.replace(secret, REDACTED)
    text = _URL_QUERY.sub(rf"\1?{REDACTED}", text)
    text = _SECRET_PARAM.sub(rf"\1={REDACTED}", text)
    text = " ".join(text.split())
    return _short(text, MAX_DETAIL_CHARS)


def _short(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
