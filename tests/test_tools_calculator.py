"""Test calculate: arithmetic, notation, limits and refusals of anything but arithmetic."""

from __future__ import annotations

import sys
import time

import pytest

from tools.calculator import MAX_EXPRESSION_CHARS, calculate, evaluate, format_number, normalize
from tools.errors import ToolError


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2 ^ 10", "1024"),
        ("2 ** 3 ** 2", "512"),  # right-associative
        ("-2 ^ 2", "-4"),
        ("2 ^ -2", "0.25"),
        ("３＋４", "7"),
        ("（１＋２）×３", "9"),
        ("１２÷４", "3"),
        ("7 − 10", "-3"),
        ("7 / 7", "1"),
        ("10 / 4", "2.5"),
        ("7 // 2", "3"),
        ("7 % 4", "3"),
        ("0.1 + 0.2", "0.3"),
        ("1e5", "100000"),
        ("12345678901234567890 * 2", "24691357802469135780"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(3.14159, 2)", "3.14"),
        ("floor(2.7) + ceil(2.1)", "5"),
        ("log(8, 2) + log10(1000)", "6"),
        ("exp(0) + sin(0) + cos(0) + tan(0)", "2"),
        ("2*pi", "6.28318530717959"),
        ("e", "2.71828182845905"),
    ],
)
async def test_calculates_through_the_tool_interface(expression: str, expected: str) -> None:
    assert await calculate.ainvoke({"expression": expression}) == expected


async def test_tool_interface_raises_tool_error_with_the_normalized_expression() -> None:
    with pytest.raises(ToolError, match="^'2pi' is not a valid arithmetic expression"):
        await calculate.ainvoke({"expression": "2π"})  # no implicit multiplication


def test_normalize_maps_full_width_and_symbols() -> None:
    assert normalize(" ２＾３×４÷５−π ") == "2**3*4/5-pi"


def test_format_number() -> None:
    assert format_number(3) == "3"
    assert format_number(3.0) == "3"
    assert format_number(1 / 3) == "0.333333333333333"
    assert format_number(1e20) == "1e+20"


@pytest.mark.parametrize("expression", ["9**9**9", "2**100000000", "4000000**4000000", "10**300"])
def test_huge_powers_are_refused_fast(expression: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ToolError, match="too large"):
        evaluate(expression)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("expression", ["1e308 * 10", "exp(1000)", "10.0 ** 400", "(2**600) * (2**600)", "1e999"])
def test_overflowing_results_are_refused(expression: str) -> None:
    with pytest.raises(ToolError, match=r"too large \(over 300 digits or beyond float range\)"):
        evaluate(expression)


@pytest.mark.parametrize("expression", ["1 / 0", "5 % 0", "1 // 0", "1 / (2 - 2)"])
def test_division_by_zero(expression: str) -> None:
    with pytest.raises(ToolError) as info:
        evaluate(expression)
    assert str(info.value) == f"division by zero in {expression!r}. Check the divisor."


@pytest.mark.parametrize(
    ("expression", "named"),
    [("__import__('os')", "'__import__'"), ("open('x')", "'open'"), ("x + 1", "'x'")],
)
def test_unknown_names_are_refused_and_named(expression: str, named: str) -> None:
    with pytest.raises(ToolError) as info:
        evaluate(expression)
    assert str(info.value).startswith(f"{named} is not available in {expression!r}.")
    assert "sqrt" in str(info.value)  # says what is available


@pytest.mark.parametrize(
    "expression",
    [
        "().__class__",
        "(1).__class__.__bases__",
        "pi.real",
        "'a' * 3",
        "[1, 2]",
        "1 < 2",
        "1 if 1 else 2",
        "lambda: 1",
        "True + 1",
        "1j",
        "f'{1}'",
    ],
)
def test_anything_but_arithmetic_is_refused(expression: str) -> None:
    with pytest.raises(ToolError, match="not allowed|not a valid arithmetic expression"):
        evaluate(expression)


@pytest.mark.parametrize("expression", ["2 +", "1; 2", "a = 1", "import os", "(1"])
def test_syntax_errors(expression: str) -> None:
    with pytest.raises(ToolError) as info:
        evaluate(expression)
    assert str(info.value).startswith(f"{expression!r} is not a valid arithmetic expression.")


def test_domain_and_non_real_results() -> None:
    with pytest.raises(ToolError, match="outside a function's domain"):
        evaluate("sqrt(-1)")
    with pytest.raises(ToolError, match="outside a function's domain"):
        evaluate("log(0)")
    with pytest.raises(ToolError, match="no real-number result"):
        evaluate("(-8) ** (1/3)")
    with pytest.raises(ToolError, match="got the wrong arguments: .*one argument"):
        evaluate("sqrt(1, 2)")


def test_empty_and_too_long_expressions() -> None:
    with pytest.raises(ToolError, match="the expression is empty"):
        evaluate("   ")
    long = "1+" * MAX_EXPRESSION_CHARS + "1"
    with pytest.raises(ToolError) as info:
        evaluate(long)
    assert str(info.value) == (
        f"the expression has {len(long)} characters; the limit is {MAX_EXPRESSION_CHARS}. Split it into smaller steps."
    )


@pytest.mark.parametrize("recursion_limit", [1000, 3000])
def test_deep_nesting_is_refused_whatever_the_recursion_limit(recursion_limit: int) -> None:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(recursion_limit)  # jedi (pulled in by gradio) raises it to 3000
    try:
        with pytest.raises(ToolError, match="nests more than 60 levels deep"):
            evaluate("-" * 499 + "1")
        assert evaluate("((((1+2))))*3") == 9
    finally:
        sys.setrecursionlimit(old)
