"""Recover tool calls that vLLM returned as raw text (hermes JSON or Qwen3-Coder XML) and hide the markup."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import json_repair

# Hand-written parsing: no library parses these vLLM/Qwen tool-call text formats (vLLM's own parsers live
# inside the server and need its tokenizer), so we use regexes shaped like vLLM's and json_repair for the JSON.

_OPENERS = ("<tool_call>", "<function=")
# Same semantics as vLLM's hermes regex `<tool_call>(.*?)</tool_call>|<tool_call>(.*)`, plus bare
# Qwen3-Coder `<function=...>` blocks; each alternative allows a final unclosed block.
_BLOCK_RE = re.compile(
    r"<tool_call>(?P<tc>.*?)</tool_call>|<tool_call>(?P<tcu>.*)"
    r"|(?P<fn><function=.*?</function>)|(?P<fnu><function=.*)",
    re.DOTALL,
)
# Also the openers: cutting a block out can join the text on its two sides into one ("<tool_" + "call>").
_TAG_RE = re.compile(r"</?tool_call>|<function=|</function>|</parameter>")
_FENCE_RE = re.compile(r"^\s*```[\w-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
# A function name is one word: no spaces, quotes, brackets, separators or control characters.
_NAME_RE = re.compile(r"[^\s\x00-\x1f\"'{}\[\]:,<>=()]+")
_FUNCTION_RE = re.compile(r"<function=([^>\s]+)>?")
_PARAM_RE = re.compile(r"<parameter=([^>\s]+)>(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Recovered:
    text: str  # user-visible text with every tool-call block removed and stripped
    tool_calls: list[dict] = field(default_factory=list)  # LangChain ToolCall dicts
    format: str | None = None  # "hermes" | "qwen3_coder" | None when no block was found
    errors: list[str] = field(default_factory=list)  # one line per block that could not be recovered


def has_tool_markup(text: str) -> bool:
    """True if text contains a `<tool_call>` or `<function=` block opener."""
    return any(opener in text for opener in _OPENERS)


def _split(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Return (text without markup, [(style, block body)]) where style is "hermes" or "qwen3_coder"."""
    parts: list[str] = []
    blocks: list[tuple[str, str]] = []
    pos = 0
    for m in _BLOCK_RE.finditer(text):
        parts.append(text[pos : m.start()])
        pos = m.end()
        body = m.group("tc") if m.group("tc") is not None else m.group("tcu")
        if body is None:
            blocks.append(("qwen3_coder", m.group("fn") or m.group("fnu")))
        else:
            blocks.append(("qwen3_coder" if body.lstrip().startswith("<function=") else "hermes", body))
    parts.append(text[pos:])
    visible = _remove_tags("".join(parts))
    return re.sub(r"\n{3,}", "\n\n", visible).strip(), blocks


def _remove_tags(text: str) -> str:
    """Remove stray tags until none is left: removing one can join its neighbours into another
    ("<</tool_call>tool_call>")."""
    while (cleaner := _TAG_RE.sub("", text)) != text:
        text = cleaner
    return text


def strip_tool_markup(text: str) -> str:
    """The text with all tool-call markup removed (for final answers)."""
    return _split(text)[0]


def _new_id(used: set[str]) -> str:
    while (call_id := f"recovered-{secrets.token_hex(6)}") in used:
        pass
    used.add(call_id)
    return call_id


def _loads_lenient(raw: str) -> Any:
    fenced = _FENCE_RE.match(raw)
    raw = (fenced.group(1) if fenced else raw).strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the decoder allows ("[[[[...")
        pass
    try:
        return json_repair.loads(raw)
    except Exception:  # json_repair is best effort; any failure means "not JSON"
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _convert_value(raw: str) -> Any:
    """Qwen3-Coder parameter value: JSON scalars/objects/arrays are decoded, anything else stays a string."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)  # no NaN/Infinity
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the decoder allows
        return raw


def _parse_hermes(body: str) -> tuple[list[tuple[str, dict]], str | None]:
    obj = _loads_lenient(body)
    items = obj if isinstance(obj, list) and obj else [obj]
    calls: list[tuple[str, dict]] = []
    for item in items:
        if not isinstance(item, dict):
            return [], "not a JSON object"
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            return [], "no function name"
        if not _NAME_RE.fullmatch(name.strip()):  # e.g. json_repair read the rest of a broken block as the name
            return [], "the function name is not a name"
        args = item.get("arguments", item.get("parameters"))
        if isinstance(args, str):
            args = _loads_lenient(args) if args.strip() else {}
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return [], f"arguments of {name.strip()!r} are not a JSON object"
        calls.append((name.strip(), args))
    return calls, None


def _parse_qwen3_coder(body: str) -> tuple[list[tuple[str, dict]], str | None]:
    m = _FUNCTION_RE.search(body)
    if m is None:
        return [], "no function name"
    args: dict[str, Any] = {}
    for key, value in _PARAM_RE.findall(body[m.end() :]):
        if value.startswith("\n"):
            value = value[1:]
        if value.endswith("\n"):
            value = value[:-1]
        args[key] = _convert_value(value)
    return [(m.group(1), args)], None


def recover_tool_calls(text: str) -> Recovered:
    """Extract every tool-call block from `text`; unrecoverable blocks are reported in `errors`."""
    visible, blocks = _split(text)
    if not blocks:
        return Recovered(text=visible)
    calls: list[dict] = []
    errors: list[str] = []
    used: set[str] = set()
    for index, (style, body) in enumerate(blocks, start=1):
        parsed, error = _parse_hermes(body) if style == "hermes" else _parse_qwen3_coder(body)
        if error is not None:
            errors.append(f"tool call block {index}: {error}")
        for name, args in parsed:
            calls.append({"name": name, "args": args, "id": _new_id(used), "type": "tool_call"})
    return Recovered(text=visible, tool_calls=calls, format=blocks[0][0], errors=errors)


class MarkupGuard:
    """Filters a token stream for display: passes text through until tool-call markup begins, and holds back a
    possible partial opener (e.g. "<tool_" or "<func") until it is known not to be one."""

    def __init__(self) -> None:
        self._held = ""
        self._in_markup = False

    @property
    def in_markup(self) -> bool:
        """Markup has started; everything after it is withheld."""
        return self._in_markup

    def feed(self, delta: str) -> str:
        """Return the text that is safe to show now."""
        if self._in_markup:
            return ""
        buf = self._held + delta
        starts = [i for i in (buf.find(opener) for opener in _OPENERS) if i >= 0]
        if starts:
            self._in_markup, self._held = True, ""
            return buf[: min(starts)]
        # Hold back the longest suffix that could still grow into an opener.
        for k in range(min(len(buf), max(map(len, _OPENERS)) - 1), 0, -1):
            if any(opener.startswith(buf[-k:]) for opener in _OPENERS):
                self._held = buf[-k:]
                return buf[:-k]
        self._held = ""
        return buf

    def flush(self) -> str:
        """At stream end: return held-back text that turned out not to be markup."""
        held, self._held = ("" if self._in_markup else self._held), ""
        return held
