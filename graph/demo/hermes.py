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
_ARGS_KEY_RE = re.compile(r'"arguments"\s*:\s*')

# Qwen2's pre-tokenizer regex, with \p{L} spelled [^\W\d_] for the stdlib `re`; the special
# tags (ChatML turns, tool calls, Qwen3's think tags) are single tokens, and the trailing [\s\S]
# guarantees every character is covered.
_PRETOKEN_RE = re.compile(
    r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<tool_call>|</tool_call>|<think>|</think>"
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


def engine_outputs(text: str, chunking: Chunking, stream_interval: int = 1, eos: bool = True) -> list[str]:
    """The text of each output the engine streams; the last one finishes the request.

    With `eos` the model stopped on its own: one more output, the EOS token (""), ends it. A
    `stream_interval` above 1 sends the first token alone, then N tokens per output, the rest with the
    finish (v1/engine/output_processor.py).
    """
    pieces = stream_chunks(text, chunking) + ([""] if eos else [])
    if chunking == "coarse" or stream_interval <= 1:
        return pieces
    return pieces[:1] + ["".join(pieces[i : i + stream_interval]) for i in range(1, len(pieces), stream_interval)]


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
    """Length of the longest suffix of `text` that could be the start of `tag` (utils.partial_tag_overlap)."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


def _is_complete_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _tool_call_jsons(text: str) -> list[tuple[str, bool]]:
    """(json text, is_complete) of each `<tool_call>` region (Hermes2ProToolParser._extract_tool_call_jsons)."""
    results: list[tuple[str, bool]] = []
    pos = 0
    while (start := text.find(TOOL_CALL_START, pos)) != -1:
        json_start = start + len(TOOL_CALL_START)
        json_end = text.find(TOOL_CALL_END, json_start)
        if json_end != -1:
            results.append((text[json_start:json_end].strip(), True))
            pos = json_end + len(TOOL_CALL_END)
            continue
        raw = text[json_start:]
        overlap = _held_back(raw, TOOL_CALL_END)
        body = (raw[:-overlap] if overlap else raw).strip()
        # Valid JSON without the closing tag counts as complete: the tag just has not arrived yet.
        results.append((body, _is_complete_json(body) if body else False))
        break
    return results


def _arguments_so_far(body: str, is_complete: bool) -> str | None:
    """Everything after `"arguments":`, minus the block's last `}` once it is complete
    (Hermes2ProToolParser._extract_tool_args): keys after the arguments stream as arguments too."""
    match = _ARGS_KEY_RE.search(body)
    if match is None:
        return None
    raw = body[match.end() :]
    if is_complete:
        raw = raw.rstrip()
        if raw.endswith("}"):
            raw = raw[:-1].rstrip()
    return raw


@dataclass
class _StreamedCall:
    name: str | None = None
    args_sent: str = ""


class HermesStreamParser:
    """Streaming hermes: feed raw token pieces, get the DeltaMessage dict (or None) for each.

    A port of vLLM 0.33's tool_parsers/hermes_tool_parser.py: the name comes from a regex and
    the arguments are the raw text after `"arguments":` (less the block's last `}` once the
    block is complete), diffed by length against what was already sent. So a malformed
    envelope still streams as a tool call (keys after the arguments stream as arguments), a
    block missing its outer `}` loses one more `}` when its last tokens arrive in one delta,
    and a format without `"name": "..."` (Qwen3-Coder's `<function=...>`) streams nothing.
    """

    def __init__(self, make_id: Callable[[], str] = new_tool_call_id) -> None:
        self._make_id = make_id
        self._text = ""
        self._content_sent = 0
        self._calls: list[_StreamedCall] = []

    @property
    def tools_streamed(self) -> bool:
        return any(call.name is not None for call in self._calls)

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

    def _tool_deltas(self, text: str) -> list[dict[str, Any]]:
        # Hermes2ProToolParser.extract_tool_calls_streaming: re-parse every region, diff by length only.
        deltas: list[dict[str, Any]] = []
        for index, (body, is_complete) in enumerate(_tool_call_jsons(text)):
            if index == len(self._calls):
                self._calls.append(_StreamedCall())
            call = self._calls[index]
            if call.name is None:
                name = _NAME_RE.search(body)
                if name is None:
                    break  # later blocks cannot get an index before this one is named
                call.name = name.group(1)
                deltas.append(
                    {"id": self._make_id(), "type": "function", "index": index, "function": {"name": call.name}}
                )
            args = _arguments_so_far(body, is_complete)
            if args is not None and len(args) > len(call.args_sent):
                deltas.append({"index": index, "function": {"arguments": args[len(call.args_sent) :]}})
                call.args_sent = args
        return deltas


def repeat_tool_headers(delta: dict[str, Any] | None, headers: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """`delta` with each tool call's id, type and name in every entry of it, as llama.cpp's server streams them.

    Not vLLM (which sends them once, then index-only argument deltas): for tests of servers that are not
    vLLM. `headers` keeps each index's first header across the deltas of one choice.
    """
    calls = (delta or {}).get("tool_calls")
    if not delta or not calls:
        return delta
    repeated = []
    for call in calls:
        index = call["index"]
        if "id" in call:
            headers.setdefault(index, {"id": call["id"], "type": call["type"], "name": call["function"]["name"]})
        header = headers.get(index)
        if header is None:
            repeated.append(call)
            continue
        function = {"name": header["name"], **{k: v for k, v in call["function"].items() if k != "name"}}
        repeated.append({"id": header["id"], "type": header["type"], "index": index, "function": function})
    return {**delta, "tool_calls": repeated}
