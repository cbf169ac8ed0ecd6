"""Split Qwen3 output into reasoning and content like vLLM 0.33's `--reasoning-parser qwen3` (parser/qwen3.py)."""

from __future__ import annotations

from graph.demo.hermes import TOOL_CALL_START, tokenize

THINK_START = "<think>"
THINK_END = "</think>"
SUPPORTED_REASONING_PARSERS = (None, "qwen3")
_ENDS = (THINK_END, TOOL_CALL_START)  # `<tool_call>` ends the reasoning implicitly, and stays in the content


def _end_of_reasoning(text: str) -> tuple[int, int] | None:
    """(where the reasoning stops, where the content starts), or None while still reasoning."""
    found = [(i, tag) for tag in _ENDS if (i := text.find(tag)) >= 0]
    if not found:
        return None
    index, tag = min(found)
    return index, index + len(tag) if tag == THINK_END else index


def split_reasoning(text: str) -> tuple[str | None, str | None]:
    """(reasoning, content) of a whole output; the `<think>` tags are dropped, empty parts are None."""
    end = _end_of_reasoning(text)
    reasoning, content = (text, "") if end is None else (text[: end[0]], text[end[1] :])
    return reasoning.replace(THINK_START, "") or None, content.replace(THINK_END, "") or None


def reasoning_tokens(text: str) -> int:
    """usage.completion_tokens_details.reasoning_tokens: the tokens between the think tags."""
    reasoning, _ = split_reasoning(text)
    return len(tokenize(reasoning)) if reasoning else 0


def _partial_tag(text: str) -> int:
    """Length of a suffix of `text` that could still become one of the tags that end reasoning."""
    for k in range(min(len(text), max(map(len, _ENDS)) - 1), 0, -1):
        if any(tag.startswith(text[-k:]) for tag in _ENDS):
            return k
    return 0


class ReasoningStream:
    """Feed generated text; get (reasoning delta, content text) for each piece."""

    def __init__(self) -> None:
        self._text = ""
        self._reasoning_sent = 0
        self._content_from: int | None = None  # where the content starts once reasoning ended

    def feed(self, piece: str) -> tuple[str, str]:
        self._text += piece
        if self._content_from is not None:
            return "", piece.replace(THINK_END, "")
        end = _end_of_reasoning(self._text)
        safe = len(self._text) - _partial_tag(self._text) if end is None else end[0]
        reasoning = self._text[:safe].replace(THINK_START, "")
        delta, self._reasoning_sent = reasoning[self._reasoning_sent :], max(self._reasoning_sent, len(reasoning))
        if end is None:
            return delta, ""
        self._content_from = end[1]
        return delta, self._text[end[1] :].replace(THINK_END, "")
