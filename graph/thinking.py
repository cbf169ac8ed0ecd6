"""A thinking model's reasoning: kept apart from the answer, shown as thinking, never sent back to the model.

vLLM with `--reasoning-parser` sends it as `reasoning` (graph/model.py keeps it). Without a parser, Qwen3's
thinking arrives in the content between `<think>` and `</think>` (or before a lone `</think>`, when the chat
template already opened the tag): `ThinkSplitter` splits it out of the stream, `split_think_tags` out of a
whole reply.
"""

from __future__ import annotations

THINK_START = "<think>"
THINK_END = "</think>"
_TAGS = (THINK_START, THINK_END)


def split_think_tags(text: str) -> tuple[str, str]:
    """(reasoning, answer) of a whole reply whose content may hold `<think>...</think>`."""
    if THINK_END not in text:
        if text.lstrip().startswith(THINK_START):  # cut off while still thinking
            return text.lstrip()[len(THINK_START) :].strip(), ""
        return "", text
    before, _, after = text.partition(THINK_END)
    return before.replace(THINK_START, "").strip(), after.lstrip()


def _partial(text: str) -> int:
    """Length of a suffix of `text` that could still grow into one of the tags."""
    for k in range(min(len(text), max(map(len, _TAGS)) - 1), 0, -1):
        if any(tag.startswith(text[-k:]) for tag in _TAGS):
            return k
    return 0


class ThinkSplitter:
    """Splits a streamed content into (thinking, answer) pieces as `<think>` tags go by; holds back partial tags.

    Only the start of a reply opens thinking (after optional whitespace), as Qwen3 writes it. Thinking that
    the chat template opened (a lone `</think>` later) streams as answer text; `split_think_tags` splits the
    whole reply when it ends, and that is what is kept.
    """

    def __init__(self) -> None:
        self._held = ""
        self._state = "start"  # start -> thinking -> answer, or start -> answer

    def feed(self, delta: str) -> tuple[str, str]:
        """(thinking, answer) text that is safe to show now."""
        buf, self._held = self._held + delta, ""
        if self._state == "start":
            stripped = buf.lstrip()
            if not stripped or (THINK_START.startswith(stripped) and stripped != THINK_START):
                self._held = buf  # nothing yet, or "<thi": wait for more
                return "", ""
            if stripped.startswith(THINK_START):
                self._state, buf = "thinking", stripped[len(THINK_START) :]
            else:
                self._state = "answer"
        if self._state == "answer":
            return "", buf
        before, found, after = buf.partition(THINK_END)
        if found:
            self._state = "answer"
            return before, after.lstrip()
        k = _partial(buf)
        if k:
            self._held, buf = buf[-k:], buf[:-k]
        return buf, ""

    def flush(self) -> tuple[str, str]:
        """At the end of the stream: the held-back text, as thinking or answer."""
        held, self._held = self._held, ""
        return (held, "") if self._state == "thinking" else ("", held)
