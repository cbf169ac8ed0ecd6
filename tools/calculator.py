"""Evaluate arithmetic safely with simpleeval: numbers, operators and a few math functions."""

from __future__ import annotations

import ast
import math
import operator
import unicodedata
from collections.abc import Callable
from typing import Any

from langchain_core.tools import tool
from simpleeval import (
    FeatureNotAvailable,
    FunctionNotDefined,
    InvalidExpression,
    NameNotDefined,
    NumberTooHigh,
    OperatorNotDefined,
    SimpleEval,
)

from tools.errors import ToolError

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 60
MAX_SHOWN_CHARS = 80  # how much of the expression error messages quote
MAX_DIGITS = 300  # integers up to 10**300; floats are capped by their own range (~1.8e308)
HELP = (
    "Use numbers, + - * / // % ^ (power), parentheses, the functions"
    " sqrt sin cos tan log log10 exp abs round floor ceil and the constants pi and e."
)
EMPTY_EXPRESSION = "the expression is empty. Pass an arithmetic expression such as '(3 + 4) * 2'."
TOO_LONG = "the expression has {length} characters; the limit is {limit}. Split it into smaller steps."
SYNTAX_ERROR = "{expression!r} is not a valid arithmetic expression. " + HELP
TOO_DEEP = "{expression!r} nests more than {limit} levels deep; split it into smaller steps."
DIVISION_BY_ZERO = "division by zero in {expression!r}. Check the divisor."
TOO_LARGE = (
    "the result of {expression!r} is too large (over {digits} digits or beyond float range)."
    " Use smaller numbers or scientific notation such as 1e100."
)
UNKNOWN_NAME = "{name!r} is not available in {expression!r}. " + HELP
NOT_ALLOWED = "{expression!r} uses something other than arithmetic, which is not allowed. " + HELP
MATH_DOMAIN = "{expression!r} is outside a function's domain (e.g. sqrt or log of a negative number)."
NOT_REAL = "{expression!r} has no real-number result (e.g. a fractional power of a negative number)."
BAD_CALL = "a function in {expression!r} got the wrong arguments: {detail}. " + HELP

_REPLACEMENTS = {"^": "**", "×": "*", "÷": "/", "−": "-", "π": "pi"}
_LIMIT = 10**MAX_DIGITS
_ALLOWED_NODES = (ast.Expr, ast.BinOp, ast.UnaryOp, ast.Call, ast.keyword, ast.Name, ast.Constant)


def _checked(value: Any) -> Any:
    """Refuse intermediate or final values that are too large to be worth computing further."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, complex):
            raise ArithmeticError("complex")
        return value
    if isinstance(value, int) and abs(value) >= _LIMIT or math.isinf(value):
        raise NumberTooHigh("result too large")
    return value


def _power(base: Any, exponent: Any) -> Any:
    """`base ** exponent`, refused before computing when the integer result would be huge."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log10(abs(base)) > MAX_DIGITS + 1:
            raise NumberTooHigh("exponent too large")
    return _checked(base**exponent)


def _guard(op: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *args, **kwargs: _checked(op(*args, **kwargs))


OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: _guard(operator.add),
    ast.Sub: _guard(operator.sub),
    ast.Mult: _guard(operator.mul),
    ast.Div: _guard(operator.truediv),
    ast.FloorDiv: _guard(operator.floordiv),
    ast.Mod: _guard(operator.mod),
    ast.Pow: _power,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_MATH: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
}
FUNCTIONS: dict[str, Callable[..., Any]] = {name: _guard(fn) for name, fn in _MATH.items()}
NAMES: dict[str, float] = {"pi": math.pi, "e": math.e}


class _Arithmetic(SimpleEval):
    """SimpleEval limited to numbers, arithmetic operators, whitelisted calls and names."""

    def __init__(self) -> None:
        super().__init__(operators=OPERATORS, functions=FUNCTIONS, names=NAMES)
        self.nodes: dict[Any, Any] = {kind: fn for kind, fn in self.nodes.items() if kind in _ALLOWED_NODES}
        self.nodes[ast.Constant] = self._eval_number

    @staticmethod
    def _eval_number(node: ast.Constant) -> int | float:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FeatureNotAvailable(f"constant {node.value!r}")
        return node.value


def normalize(expression: str) -> str:
    """NFKC-normalize (full-width "３＋４" -> "3+4") and map ^ × ÷ − π to Python syntax."""
    text = unicodedata.normalize("NFKC", expression).strip()
    for symbol, replacement in _REPLACEMENTS.items():
        text = text.replace(symbol, replacement)
    return text


def format_number(value: int | float) -> str:
    """Integers (and integral floats) without ".0"; other floats to 15 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def _depth(tree: ast.AST) -> int:
    """How deeply the expression nests, walked without recursion (so the limit does not depend on
    Python's recursion limit, which other libraries raise)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression; raise ToolError with a clear message when it cannot."""
    text = normalize(expression)
    if not text:
        raise ToolError(EMPTY_EXPRESSION)
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(TOO_LONG.format(length=len(text), limit=MAX_EXPRESSION_CHARS))
    shown = text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"
    try:
        tree = ast.parse(text, mode="eval")
        if _depth(tree) > MAX_DEPTH:
            raise ToolError(TOO_DEEP.format(expression=shown, limit=MAX_DEPTH))
        result = _checked(_Arithmetic().eval(text, previously_parsed=tree.body))
    except ZeroDivisionError:
        raise ToolError(DIVISION_BY_ZERO.format(expression=shown)) from None
    except (NumberTooHigh, OverflowError):
        raise ToolError(TOO_LARGE.format(expression=shown, digits=MAX_DIGITS)) from None
    except (NameNotDefined, FunctionNotDefined) as err:
        name = getattr(err, "name", None) or getattr(err, "func_name", "?")
        raise ToolError(UNKNOWN_NAME.format(name=name, expression=shown)) from None
    except (FeatureNotAvailable, OperatorNotDefined):
        raise ToolError(NOT_ALLOWED.format(expression=shown)) from None
    except (SyntaxError, InvalidExpression, RecursionError, MemoryError):
        raise ToolError(SYNTAX_ERROR.format(expression=shown)) from None
    except ArithmeticError:
        raise ToolError(NOT_REAL.format(expression=shown)) from None
    except ValueError:
        raise ToolError(MATH_DOMAIN.format(expression=shown)) from None
    except TypeError as err:
        raise ToolError(BAD_CALL.format(expression=shown, detail=err)) from None
    if not isinstance(result, int | float) or isinstance(result, bool) or math.isnan(result):
        raise ToolError(NOT_REAL.format(expression=shown))
    return result


@tool(parse_docstring=True)
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression and return the resulting number.

    Use this instead of doing arithmetic in your head. Supports + - * / // % and ^ or **
    for powers, parentheses, sqrt, sin, cos, tan (radians), log (natural; log(x, base)),
    log10, exp, abs, round, floor, ceil and the constants pi and e.

    Args:
        expression: Arithmetic expression using only numbers, operators and the functions
            above, e.g. '(3 + 4) * 2', '2^10', 'sqrt(2) * pi' or '１２÷４'.
    """
    return format_number(evaluate(expression))
