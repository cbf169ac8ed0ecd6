"""Read a rendered Qwen ChatML prompt back into an OpenAI-style chat body (messages and tools)."""

from __future__ import annotations

import json
import re
from typing import Any

_TURN = re.compile(r"<\|im_start\|>(\w+)\n?(.*?)(?:<\|im_end\|>\n?|\Z)", re.S)
_TOOLS_HEADER = "# Tools\n\nYou may call one or more functions"
_TOOLS = re.compile(r"<tools>\n(.*?)\n</tools>", re.S)
_TOOL_CALL = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.S)
_TOOL_RESPONSE = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.S)
_THINK = re.compile(r"<think>.*?</think>\s*", re.S)


def body_from_prompt(prompt: str) -> dict[str, Any]:
    """The chat body that rendered to `prompt`: system text, tools, user/assistant turns, tool results.

    The trailing generation prompt (`<|im_start|>assistant\\n`, maybe with an empty think block) is dropped.
    Tool calls get ids `call_0`, `call_1`, ... and the tool results that follow point at them in order.
    """
    turns = [
        (m.group(1), m.group(2), m.group(0).endswith(("<|im_end|>", "<|im_end|>\n"))) for m in _TURN.finditer(prompt)
    ]
    if turns and turns[-1][0] == "assistant" and not turns[-1][2]:
        turns.pop()
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    pending: list[str] = []
    counter = 0
    for index, (role, text, _closed) in enumerate(turns):
        if role == "system" and index == 0 and _TOOLS_HEADER in text:
            system, _, block = text.partition(_TOOLS_HEADER)
            tools = _tools(block)
            if system.strip():
                messages.append({"role": "system", "content": system.rstrip("\n")})
        elif role == "user" and _is_tool_results(text):
            for content in _TOOL_RESPONSE.findall(text):
                call_id = pending.pop(0) if pending else f"call_{counter}"
                messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        elif role == "assistant":
            message, ids = _assistant(text, counter)
            counter += len(ids)
            pending = ids
            messages.append(message)
        else:
            messages.append({"role": role, "content": text})
    body: dict[str, Any] = {"messages": messages}
    if tools:
        body["tools"] = tools
    return body


def _tools(block: str) -> list[dict[str, Any]]:
    found = _TOOLS.search(block)
    tools = []
    for line in found.group(1).splitlines() if found else []:
        try:
            tool = json.loads(line)
        except ValueError:
            continue
        if isinstance(tool, dict):
            tools.append(tool if "function" in tool else {"type": "function", "function": tool})
    return tools


def _is_tool_results(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("<tool_response>") and not _TOOL_RESPONSE.sub("", stripped).strip()


def _assistant(text: str, counter: int) -> tuple[dict[str, Any], list[str]]:
    """An assistant message from its rendered text: `<tool_call>` blocks become tool_calls."""
    calls: list[dict[str, Any]] = []

    def take(match: re.Match[str]) -> str:
        try:
            call = json.loads(match.group(1))
        except ValueError:
            return match.group(0)
        if not isinstance(call, dict) or "name" not in call:
            return match.group(0)
        arguments = call.get("arguments", {})
        calls.append(
            {
                "id": f"call_{counter + len(calls)}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False),
                },
            }
        )
        return ""

    content = _TOOL_CALL.sub(take, _THINK.sub("", text)).strip()
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = calls
    return message, [c["id"] for c in calls]
