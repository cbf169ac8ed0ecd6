"""Simulate Qwen-style tokenization and vLLM 0.33's hermes tool parser (no HTTP)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

TOOL_CALL_START = "<tool_call>"
TOOL_CALL_END = "</tool_call>"

# hermes_tool_parser.py: a final unclosed block also counts.
_BLOCK_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)
_NAME_RE = re.compile(r'"name"\s*:\s*"([^"]+)"')
_ARGS_KEY_RE = re.compile(r'"arguments"\s*:')

# Qwen2's pre-tokenizer regex, with \p{L} spelled [^\W\d_] for the stdlib `re`; the special
# tags are single tokens, and the trailing [\s\S] guarantees every character is covered.
_PRETOKEN_RE = re.compile(
    r"<tool_call>|</tool_call>"
    r"|(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|(?:_|[^\w\r\n])?[^\W\d_]+"
    r"|\d"
    r"| ?(?:_|[^\w\s])+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
    r"|[\s\S]"
)
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")

Chunking = Literal["fine", "coarse"]


def random_hex16() -> str:
    """16 lowercase hex characters, like vLLM's random_uuid()."""
    return secrets.token_hex(8)


def new_tool_call_id() -> str:
    """A tool-call id as vLLM makes it: chatcmpl-tool-<16 hex>."""
    return f"chatcmpl-tool-{random_hex16()}"


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    """One hermes `<tool_call>` block, written the way Qwen2.5 writes it."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_START}\n{payload}\n{TOOL_CALL_END}"


def qwen3_coder_call_text(name: str, arguments: dict[str, Any]) -> str:
    """One Qwen3-Coder XML tool call block (strings raw, other values as JSON)."""
    lines = [TOOL_CALL_START, f"<function={name}>"]
    for key, value in arguments.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines += [f"<parameter={key}>", text, "</parameter>"]
    lines += ["</function>", TOOL_CALL_END]
    return "\n".join(lines)


def tokenize(text: str) -> list[str]:
    """Split raw model text into Qwen-like token pieces ("".join gives the text back)."""
    pieces: list[str] = []
    for piece in _PRETOKEN_RE.findall(text):
        if len(piece) > 2 and _CJK_RE.search(piece):
            # BPE keeps Chinese to one or two characters per token, not whole phrases.
            pieces += [piece[i : i + 2] for i in range(0, len(piece), 2)]
        else:
            pieces.append(piece)
    return pieces


def stream_chunks(text: str, chunking: Chunking) -> list[str]:
    """The pieces a stream delivers: one token each ("fine") or one line each ("coarse")."""
    return tokenize(text) if chunking == "fine" else _LINE_RE.findall(text)


@dataclass
class Extraction:
    """Result of the non-streaming hermes parse."""

    content: str | None
    calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments JSON)

    @property
    def tools_called(self) -> bool:
        return bool(self.calls)


def extract_tool_calls(text: str) -> Extraction:
    """Non-streaming hermes: all blocks parse or the whole raw text comes back as content."""
    start = text.find(TOOL_CALL_START)
    if start < 0:
        return Extraction(content=text)
    calls: list[tuple[str, str]] = []
    try:
        for match in _BLOCK_RE.finditer(text):
            body = match.group(1) if match.group(1) is not None else match.group(2)
            obj = json.loads(body)
            calls.append((obj["name"], json.dumps(obj["arguments"], ensure_ascii=False)))
    except (ValueError, KeyError, TypeError):
        return Extraction(content=text)
    prefix = text[:start]
    return Extraction(content=prefix if prefix.strip() else None, calls=calls)


def _held_back(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that could be the start of `tag`."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


def _value_end(s: str) -> int:
    """Where the JSON value at the start of `s` ends, tracking depth outside strings."""
    depth, in_str, escaped = 0, False, False
    for i, ch in enumerate(s):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            if depth == 0:
                return i  # the envelope's own closing brace: never part of the arguments
            depth -= 1
            if depth == 0:
                return i + 1
        elif ch == "," and depth == 0:
            return i
    return len(s)


def _arguments_so_far(body: str) -> str | None:
    match = _ARGS_KEY_RE.search(body)
    if match is None:
        return None
    rest = body[match.end() :].lstrip()
    return rest[: _value_end(rest)]


@dataclass
class _StreamedCall:
    id: str
    args_sent: str = ""


class HermesStreamParser:
    """Streaming hermes: feed raw token pieces, get the DeltaMessage dict (or None) for each.

    Like vLLM it never json.loads: the name comes from a regex and the arguments are the raw
    text after `"arguments":`, diffed against what was already sent. So a malformed envelope
    still streams as a tool call, and a format without `"name": "..."` (Qwen3-Coder's
    `<function=...>`) streams nothing at all after `<tool_call>`.
    """

    def __init__(self, make_id: Callable[[], str] = new_tool_call_id) -> None:
        self._make_id = make_id
        self._text = ""
        self._content_sent = 0
        self._calls: list[_StreamedCall] = []

    @property
    def tools_streamed(self) -> bool:
        return bool(self._calls)

    def feed(self, piece: str) -> dict[str, Any] | None:
        self._text += piece
        start = self._text.find(TOOL_CALL_START)
        if start < 0:
            safe_end = len(self._text) - _held_back(self._text, TOOL_CALL_START)
        else:
            safe_end = start
        content = self._text[self._content_sent : safe_end]
        self._content_sent = max(self._content_sent, safe_end)
        tool_deltas = self._tool_deltas(self._text[start:]) if start >= 0 else []
        if tool_deltas:
            return {"content": content or None, "tool_calls": tool_deltas}
        return {"content": content} if content else None

    def _tool_deltas(self, tail: str) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        for index, match in enumerate(_BLOCK_RE.finditer(tail)):
            body = match.group(1) if match.group(1) is not None else match.group(2)
            if index == len(self._calls):
                name = _NAME_RE.search(body)
                if name is None:
                    break  # later blocks cannot get an index before this one is named
                call = _StreamedCall(id=self._make_id())
                self._calls.append(call)
                deltas.append(
                    {"id": call.id, "type": "function", "index": index,
                     "function": {"name": name.group(1)}}
                )
            call = self._calls[index]
            args = _arguments_so_far(body)
            if args and len(args) > len(call.args_sent) and args.startswith(call.args_sent):
                deltas.append(
                    {"index": index, "function": {"arguments": args[len(call.args_sent) :]}}
                )
                call.args_sent = args
        return deltas
