"""Turn one choice's generated text into vLLM 0.33's reasoning, content, tool calls and finish_reason.

Mirrors entrypoints/openai/chat_completion/message_assembly.py (non-streaming), stream_processor.py
(streaming) and serve/utils/tool_calls_utils.py (`resolve_finish_reason`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graph.demo.hermes import HermesStreamParser, extract_tool_calls, new_tool_call_id
from graph.demo.protocol import named_tool
from graph.demo.reasoning import ReasoningStream, split_reasoning


def forces_tool_calls(tool_choice: Any) -> bool:
    """`required` or a named function (message_assembly._forces_tool_calls)."""
    return tool_choice == "required" or named_tool(tool_choice) is not None


def keeps_tool_calls(tool_choice: Any, parser_loaded: bool, tools: bool) -> bool:
    """Whether parsed tool calls are returned: forced, or "auto" with a parser; an explicit null drops them."""
    return forces_tool_calls(tool_choice) or (parser_loaded and tool_choice == "auto" and tools)


def resolve_finish_reason(engine: str | None, tool_choice: Any, tool_calls_made: bool) -> str:
    """`tool_calls` only for an engine "stop" with calls and no named tool: a "length" cut stays "length"."""
    finish = engine or "stop"
    if tool_calls_made and finish == "stop" and named_tool(tool_choice) is None:
        return "tool_calls"
    return finish


@dataclass(frozen=True)
class Parsing:
    """How a request's output is parsed, from its tool_choice, tools and the server's parsers."""

    tool_choice: Any
    run_tool_parser: bool  # hermes reads the output (tools sent, tool_choice not "none", parser loaded)
    keep_calls: bool  # ... and the calls it finds are returned
    reasoning: bool  # --reasoning-parser qwen3 with thinking on
    include_reasoning: bool
    parallel: bool
    parser_present: bool = False  # the server has a tool or reasoning parser (every delta goes through it)


@dataclass
class ParsedChoice:
    reasoning: str | None
    content: str | None
    calls: list[tuple[str, str]]  # (name, arguments JSON)


def parse_choice(text: str, parsing: Parsing) -> ParsedChoice:
    """Non-streaming: Parser.parse, then assemble_chat_message_fields."""
    reasoning, content = split_reasoning(text) if parsing.reasoning else (None, text)
    calls: list[tuple[str, str]] = []
    if parsing.run_tool_parser and content is not None:
        extraction = extract_tool_calls(content)
        if extraction.tools_called:
            calls, content = extraction.calls, extraction.content
    if not parsing.include_reasoning:
        reasoning = None
    if not parsing.keep_calls:
        return ParsedChoice(reasoning, content, [])
    if forces_tool_calls(parsing.tool_choice):
        content = content or ""
    return ParsedChoice(reasoning, content, calls if parsing.parallel else calls[:1])


class ChoiceStream:
    """Streaming: one choice's deltas (ChatStreamProcessor.step), fed the text of each engine output."""

    def __init__(self, parsing: Parsing, make_id: Callable[[], str] = new_tool_call_id) -> None:
        self.parsing = parsing
        self._reasoning = ReasoningStream() if parsing.reasoning else None
        self._tools = HermesStreamParser(make_id) if parsing.run_tool_parser else None
        self.tools_streamed = False

    def step(self, text: str) -> dict[str, Any] | None:
        reasoning, content = self._reasoning.feed(text) if self._reasoning else ("", text)
        if not self.parsing.include_reasoning:
            reasoning = ""
        parsed: dict[str, Any] = {}
        if self._tools is not None:
            parsed = (self._tools.feed(content) if content else None) or {}
        elif content:
            parsed = {"content": content}
        calls = parsed.get("tool_calls")
        if calls and not self.parsing.keep_calls:  # e.g. an explicit tool_choice null: calls are dropped
            calls = None
            if not parsed.get("content") and not reasoning:
                return None
        delta: dict[str, Any] = {"content": parsed["content"]} if "content" in parsed else {}
        if reasoning:  # DeltaMessage's field order: content, reasoning, tool_calls
            delta["reasoning"] = reasoning
        elif not self.parsing.include_reasoning and self.parsing.parser_present and delta:
            delta["reasoning"] = None  # Parser.parse_delta sets it to None, so it is serialized
        if calls:
            self.tools_streamed = True
            delta["tool_calls"] = calls if self.parsing.parallel else [c for c in calls if c["index"] == 0]
        return delta or None
