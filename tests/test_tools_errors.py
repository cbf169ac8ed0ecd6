"""Test the tool registry and handle_tool_error inside a real ToolNode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import _infer_handled_types

from tools import TOOLS, TOOLS_BY_NAME, ToolError, handle_tool_error

SECRET = "sk-weather-9f8e7d"


@tool
def explode(text: str) -> str:
    """Fail the way a buggy tool would: with a URL holding a key and a multi-line message.

    Args:
        text: Anything.
    """
    raise RuntimeError(f"GET https://api.test/v1?appid={SECRET}&q={text} failed\n  at line 3")


async def run_tool_calls(*calls: dict[str, Any], tools: list[BaseTool] = TOOLS) -> list[ToolMessage]:
    """Run AIMessage tool calls through ToolNode(handle_tool_errors=handle_tool_error) in a graph."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=handle_tool_error))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    calls_ = [{"id": f"call_{i}", **call} for i, call in enumerate(calls)]
    state = await builder.compile().ainvoke({"messages": [AIMessage("", tool_calls=calls_)]})
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def test_registry() -> None:
    assert [t.name for t in TOOLS] == ["get_current_time", "get_city_weather", "calculate"]
    assert TOOLS_BY_NAME == {t.name: t for t in TOOLS}
    for t in TOOLS:  # the docstring is the prompt: every argument must be described
        schema = t.tool_call_schema.model_json_schema()
        assert t.description and "Args:" not in t.description
        assert all(spec.get("description") for spec in schema["properties"].values()), t.name


async def test_missing_argument_names_the_tool_and_field() -> None:
    [message] = await run_tool_calls({"name": "calculate", "args": {}})
    assert message.status == "error"
    assert message.content == (
        "Error: invalid arguments for tool 'calculate': expression: Field required."
        " Expected arguments: expression (string, required)."
        " Call calculate again with corrected arguments."
    )


async def test_wrong_value_names_the_field_the_value_and_the_choices() -> None:
    [message] = await run_tool_calls({"name": "get_city_weather", "args": {"city": "Paris", "units": "kelvin"}})
    assert message.status == "error"
    assert message.content.startswith(
        "Error: invalid arguments for tool 'get_city_weather':"
        " units: Input should be 'metric' or 'imperial' (got 'kelvin')."
    )
    assert "units ('metric' | 'imperial', optional, default 'metric')" in message.content


async def test_tool_error_becomes_its_message() -> None:
    [message] = await run_tool_calls({"name": "calculate", "args": {"expression": "1/0"}})
    assert message.status == "error"
    assert message.content == "Error: division by zero in '1/0'. Check the divisor."


async def test_success_is_untouched() -> None:
    [message] = await run_tool_calls({"name": "calculate", "args": {"expression": "6*7"}})
    assert (message.status, message.content) == ("success", "42")


async def test_unexpected_error_is_one_line_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHER_API_KEY", SECRET)
    [message] = await run_tool_calls({"name": "explode", "args": {"text": "x"}}, tools=[explode])
    assert message.status == "error"
    assert message.content.startswith(
        "Error: tool failed: RuntimeError: GET https://api.test/v1?[redacted] failed at line 3."
    )
    assert "\n" not in message.content and SECRET not in message.content


def test_secret_is_redacted_even_outside_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-model-123456")
    text = handle_tool_error(ValueError("bad token sk-model-123456 and key=abc"))
    assert text == (
        "Error: tool failed: ValueError: bad token [redacted] and key=[redacted]. Try again once,"
        " possibly with different input; if it keeps failing, tell the user this tool is not"
        " working right now."
    )


def test_tool_error_text() -> None:
    assert handle_tool_error(ToolError("no city named 'X' was found.")) == ("Error: no city named 'X' was found.")


def test_control_flow_is_never_swallowed() -> None:
    with pytest.raises(GraphInterrupt):
        handle_tool_error(GraphInterrupt())
    # ToolNode catches only what the handler's annotation names: Exception, which excludes
    # asyncio.CancelledError (a BaseException), so cancellation always propagates.
    assert _infer_handled_types(handle_tool_error) == (Exception,)
    assert not issubclass(asyncio.CancelledError, Exception)
