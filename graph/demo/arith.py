"""Find the arithmetic expression in a question (English or Chinese) for the scripted model's calculate call."""

from __future__ import annotations

import re
import unicodedata

# What the calculator tool accepts (tools/calculator.py); the demo imports nothing of the agent.
FUNCTIONS = frozenset({"sqrt", "sin", "cos", "tan", "log", "log10", "exp", "abs", "round", "floor", "ceil"})
CONSTANTS = frozenset({"pi", "e"})

_NUMBER = r"\d+(?:\.\d+)?"
# Chinese phrasings, rewritten to symbols first: 2的10次方, 3的平方, 16的平方根, 根号2, 3乘以4, ...
_CHINESE = [
    (re.compile(rf"({_NUMBER}|\))\s*的\s*({_NUMBER})\s*次(?:方|幂)"), r"\1^\2"),
    (re.compile(rf"({_NUMBER})\s*的\s*平方根"), r"sqrt(\1)"),
    (re.compile(rf"({_NUMBER})\s*的\s*立方根"), r"\1^(1/3)"),
    (re.compile(rf"根号\s*({_NUMBER})"), r"sqrt(\1)"),
    (re.compile(rf"({_NUMBER}|\))\s*的\s*平方"), r"\1^2"),
    (re.compile(rf"({_NUMBER}|\))\s*的\s*立方"), r"\1^3"),
]
_CHINESE_OPERATORS = {"乘以": "*", "乘": "*", "除以": "/", "加上": "+", "加": "+", "减去": "-", "减": "-"}
_CHINESE_OPERATOR = re.compile(r"(?<=[\d)])\s*(乘以|乘|除以|加上|加|减去|减)\s*(?=[\d(])")
_TOKEN = re.compile(
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_]\w*)|(?P<op>\*\*|//|[-+*/×÷^%−])"
    r"|(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<pi>π)|(?P<space>\s+)"
)
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_SYMBOLS = {"×": "*", "÷": "/", "^": "**", "−": "-", "π": "pi"}

Token = tuple[str, str, int, int]  # (kind, text, start, end)


def expression(question: str) -> str | None:
    """The first arithmetic expression in `question`, in the calculator's syntax; None if there is none.

    Keeps function names and constants (`sqrt(2) * 10`, `log(100, 10)`, `2 * pi`), reads full-width
    digits and symbols, `^`, `×`, `÷`, and Chinese such as 2的10次方 or 3乘以4.
    """
    text = unicodedata.normalize("NFKC", question)
    for pattern, replacement in _CHINESE:
        text = pattern.sub(replacement, text)
    text = _CHINESE_OPERATOR.sub(lambda m: _CHINESE_OPERATORS[m.group(1)], text)
    for run in _runs(text):
        for part in _split_commas(run):
            found = _clean(part, text)
            if found:
                return found
    return None


def _runs(text: str) -> list[list[Token]]:
    """Maximal stretches of expression tokens; any other word or character ends a stretch."""
    runs: list[list[Token]] = [[]]
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        kind = match.lastgroup if match else None
        if match is None or (kind == "name" and match.group() not in FUNCTIONS | CONSTANTS):
            runs.append([])
            pos = match.end() if match else pos + 1
            continue
        if kind != "space":
            runs[-1].append((str(kind), match.group(), match.start(), match.end()))
        pos = match.end()
    return [run for run in runs if run]


def _split_commas(run: list[Token]) -> list[list[Token]]:
    """A run split at commas outside parentheses (`3+4, then 5*6`); `log(100, 10)` stays whole."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in run:
        depth += {"open": 1, "close": -1}.get(token[0], 0)
        if token[0] == "comma" and depth <= 0:
            parts.append([])
            depth = 0
        else:
            parts[-1].append(token)
    return parts


def _clean(tokens: list[Token], text: str) -> str | None:
    """Trim dangling operators and unmatched parentheses; keep it if it is really arithmetic."""
    tokens = list(tokens)
    while tokens and (tokens[-1][0] in ("op", "open", "comma")):
        tokens.pop()
    while tokens and (tokens[0][0] in ("close", "comma") or tokens[0][0] == "op" and tokens[0][1] not in "-+−"):
        tokens.pop(0)
    tokens = _balanced(tokens)
    if not tokens or not _is_arithmetic(tokens):
        return None
    start, end = tokens[0][2], tokens[-1][3]
    if _glued(text, start, end):  # part of a word such as "Qwen2.5-7B"
        return None
    candidate = text[start:end]
    if _DATE.search(candidate):
        return None
    for symbol, replacement in _SYMBOLS.items():
        candidate = candidate.replace(symbol, replacement)
    return candidate


def _balanced(tokens: list[Token]) -> list[Token]:
    """Cut at a ")" that closes nothing; an expression left with an unclosed "(" is no expression."""
    depth, kept = 0, []
    for token in tokens:
        if token[0] == "close" and depth == 0:
            break
        depth += {"open": 1, "close": -1}.get(token[0], 0)
        kept.append(token)
    return kept if depth == 0 else []


_OPERAND_END = ("number", "name", "pi", "close")
_OPERAND_START = ("number", "name", "pi", "open", "op")  # "op": a sign, as in 3*-2


def _is_arithmetic(tokens: list[Token]) -> bool:
    """An operator between two operands, or a function applied to something."""
    if any(
        before[0] in _OPERAND_END and token[0] == "op" and after[0] in _OPERAND_START
        for before, token, after in zip(tokens, tokens[1:], tokens[2:], strict=False)
    ):
        return True
    return any(
        a[0] == "name" and a[1] in FUNCTIONS and b[0] == "open" for a, b in zip(tokens, tokens[1:], strict=False)
    )


def _glued(text: str, start: int, end: int) -> bool:
    """Whether the stretch touches a Latin letter on either side (a model name, a code)."""
    left = text[start - 1] if start > 0 else " "
    right = text[end] if end < len(text) else " "
    return (left.isascii() and left.isalpha()) or (right.isascii() and right.isalpha())
