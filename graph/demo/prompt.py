"""Render a chat request as the Qwen ChatML prompt vLLM would feed the model (to count its tokens)."""

from __future__ import annotations

import json
from typing import Any

from graph.demo.model import text_of

QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided "
    "with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
    '"arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # the chat template's `tojson`


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """How vLLM hands a tool to the template (ChatCompletionToolsParam.model_dump): nulls kept."""
    function = tool.get("function") or {}
    rendered = {
        "name": function.get("name"),
        "description": function.get("description"),
        "parameters": function.get("parameters"),
    }
    if function.get("strict") is not None:
        rendered["strict"] = function["strict"]
    return {"type": tool.get("type", "function"), "function": rendered}


def _arguments(raw: Any) -> Any:
    """renderers/chat_utils/chat_message.py: history arguments are parsed; bad JSON becomes {}."""
    if not isinstance(raw, str):
        return raw if isinstance(raw, dict) else {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def render_prompt(body: dict[str, Any], family: str = "qwen2.5", generation_prompt: bool = True) -> str:
    """Qwen2.5-Instruct's chat template (Qwen3's when `family` is "qwen3"), with the generation prompt."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    qwen3 = family == "qwen3"
    first_system = bool(messages) and messages[0].get("role") == "system"
    system = text_of(messages[0].get("content")) if first_system else ("" if qwen3 else QWEN25_SYSTEM)
    parts: list[str] = []
    if tools:
        intro = (system + "\n\n" if system else "") if qwen3 else system + "\n\n"
        parts.append(
            "<|im_start|>system\n"
            + intro
            + _TOOLS_HEAD
            + "".join("\n" + _tojson(_tool(t)) for t in tools)
            + _TOOLS_TAIL
        )
    elif system or not qwen3:
        parts.append(f"<|im_start|>system\n{system}<|im_end|>\n")
    for i, message in enumerate(messages):
        role, content = message.get("role"), text_of(message.get("content"))
        if role == "system" and i == 0:
            continue
        if role == "tool":
            opening = i == 0 or messages[i - 1].get("role") != "tool"
            closing = i == len(messages) - 1 or messages[i + 1].get("role") != "tool"
            parts.append(
                ("<|im_start|>user" if opening else "")
                + f"\n<tool_response>\n{content}\n</tool_response>"
                + ("<|im_end|>\n" if closing else "")
            )
        elif role == "assistant" and message.get("tool_calls"):
            calls = "".join(
                f'\n<tool_call>\n{{"name": "{(c.get("function") or {}).get("name")}", "arguments": '
                f"{_tojson(_arguments((c.get('function') or {}).get('arguments')))}}}\n</tool_call>"
                for c in message["tool_calls"]
                if isinstance(c, dict)
            )
            parts.append("<|im_start|>assistant" + (f"\n{content}" if content else "") + calls + "<|im_end|>\n")
        else:
            parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
    if not generation_prompt:
        return "".join(parts)
    parts.append("<|im_start|>assistant\n")
    kwargs = body.get("chat_template_kwargs") or {}
    if qwen3 and isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False:
        parts.append("<think>\n\n</think>\n\n")
    return "".join(parts)
