"""Tests for graph.recovery: tool calls returned by vLLM as raw text, and hiding tool-call markup."""

from __future__ import annotations

import re

import pytest
from langchain_core.messages import AIMessage

from graph.recovery import MarkupGuard, Recovered, has_tool_markup, recover_tool_calls, strip_tool_markup

PARIS = {"city": "Paris"}
ID_RE = re.compile(r"^recovered-[0-9a-f]{12}$")


def calls(rec: Recovered) -> list[tuple[str, dict]]:
    return [(c["name"], c["args"]) for c in rec.tool_calls]


def assert_well_formed(rec: Recovered) -> None:
    ids = [c["id"] for c in rec.tool_calls]
    assert all(ID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert all(c["type"] == "tool_call" for c in rec.tool_calls)


# --- hermes / Qwen2.5 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',  # canonical
        "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",  # single quotes
        '{"name": "get_weather", "arguments": {"city": "Paris",},}',  # trailing commas
        '{"name": "get_weather", "arguments": {"city": "Paris"}',  # missing final brace
        '{name: "get_weather", arguments: {city: "Paris"}}',  # unquoted keys
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',  # "parameters" key
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',  # arguments as JSON string
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',  # code fence
        '```\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',  # bare code fence
    ],
    ids=[
        "canonical",
        "single-quotes",
        "trailing-commas",
        "missing-brace",
        "unquoted-keys",
        "parameters-key",
        "string-arguments",
        "json-fence",
        "bare-fence",
    ],
)
def test_hermes_variants(body: str) -> None:
    rec = recover_tool_calls(f"<tool_call>\n{body}\n</tool_call>")
    assert calls(rec) == [("get_weather", PARIS)]
    assert rec.format == "hermes"
    assert rec.text == ""
    assert rec.errors == []
    assert_well_formed(rec)


def test_compact_block_and_prefix_text_preserved() -> None:
    text = 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    rec = recover_tool_calls(text)
    assert rec.text == "Let me check."
    assert calls(rec) == [("get_weather", PARIS)]


def test_several_blocks_in_order_with_unique_ids() -> None:
    text = "".join(
        f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{c}"}}}}\n</tool_call>\n'
        for c in ("Paris", "Rome", "Oslo")
    )
    rec = recover_tool_calls("Checking three cities.\n" + text)
    assert calls(rec) == [("get_weather", {"city": c}) for c in ("Paris", "Rome", "Oslo")]
    assert rec.text == "Checking three cities."
    assert_well_formed(rec)


def test_ids_differ_between_calls_to_recover() -> None:
    text = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    assert recover_tool_calls(text).tool_calls[0]["id"] != recover_tool_calls(text).tool_calls[0]["id"]


def test_unclosed_final_block() -> None:
    text = (
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"tz": "Europe/Rome"}}'
    )
    rec = recover_tool_calls(text)
    assert calls(rec) == [("get_weather", PARIS), ("get_time", {"tz": "Europe/Rome"})]
    assert rec.text == "Sure."


def test_unclosed_block_with_truncated_json() -> None:
    rec = recover_tool_calls('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"')
    assert calls(rec) == [("get_weather", PARIS)]


def test_missing_arguments_gives_empty_args() -> None:
    rec = recover_tool_calls('<tool_call>{"name": "list_files"}</tool_call>')
    assert calls(rec) == [("list_files", {})]


def test_text_after_blocks_is_kept() -> None:
    rec = recover_tool_calls('Before.\n<tool_call>{"name": "f", "arguments": {}}</tool_call>\nAfter.')
    assert rec.text == "Before.\n\nAfter."


def test_result_fits_langchain_ai_message() -> None:
    rec = recover_tool_calls('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>')
    msg = AIMessage(content=rec.text, tool_calls=rec.tool_calls)
    assert msg.tool_calls[0]["name"] == "get_weather"
    assert msg.tool_calls[0]["args"] == PARIS
    assert msg.tool_calls[0]["id"] == rec.tool_calls[0]["id"]


# --- Qwen3-Coder XML ---------------------------------------------------------------------------------------

QWEN3_FUNCTION = (
    "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>"
)


@pytest.mark.parametrize(
    "text",
    [f"<tool_call>\n{QWEN3_FUNCTION}\n</tool_call>", QWEN3_FUNCTION],
    ids=["wrapped", "bare"],
)
def test_qwen3_coder_with_and_without_wrapper(text: str) -> None:
    rec = recover_tool_calls("I'll look it up.\n" + text)
    assert calls(rec) == [("get_weather", {"city": "Paris", "days": 3})]
    assert rec.format == "qwen3_coder"
    assert rec.text == "I'll look it up."
    assert rec.errors == []
    assert_well_formed(rec)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("false", False),
        ("null", None),
        ('{"a": 1, "b": [1, 2]}', {"a": 1, "b": [1, 2]}),
        ('["x", "y"]', ["x", "y"]),
        ("Paris", "Paris"),
        ("NaN", "NaN"),  # not JSON in the strict sense: stays a string
        ("hello world", "hello world"),
        ("", ""),
    ],
)
def test_qwen3_coder_typed_values(raw: str, expected: object) -> None:
    text = f"<tool_call>\n<function=f>\n<parameter=v>\n{raw}\n</parameter>\n</function>\n</tool_call>"
    rec = recover_tool_calls(text)
    assert rec.tool_calls[0]["args"] == {"v": expected}
    assert type(rec.tool_calls[0]["args"]["v"]) is type(expected)


def test_qwen3_coder_multiline_value_keeps_inner_newlines() -> None:
    code = "def f():\n    return 1\n"
    text = (
        "<tool_call>\n<function=write_file>\n<parameter=path>\na.py\n</parameter>\n"
        f"<parameter=content>\n{code}\n</parameter>\n</function>\n</tool_call>"
    )
    rec = recover_tool_calls(text)
    assert calls(rec) == [("write_file", {"path": "a.py", "content": code})]


def test_qwen3_coder_several_calls_and_unclosed_last() -> None:
    text = (
        "<tool_call>\n<function=a>\n<parameter=x>\n1\n</parameter>\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=b>\n<parameter=y>\nhi\n</parameter>\n"
    )
    rec = recover_tool_calls(text)
    assert calls(rec) == [("a", {"x": 1}), ("b", {"y": "hi"})]
    assert_well_formed(rec)


def test_qwen3_coder_no_parameters() -> None:
    rec = recover_tool_calls("<tool_call>\n<function=get_time>\n</function>\n</tool_call>")
    assert calls(rec) == [("get_time", {})]


# --- unrecoverable ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [
        "<tool_call>not json at all</tool_call>",
        '<tool_call>{"arguments": {"city": "Paris"}}</tool_call>',
        "<tool_call></tool_call>",
        '<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>',
        "<tool_call>\n<function=>\n</function>\n</tool_call>",
    ],
    ids=["not-json", "no-name", "empty", "args-not-object", "empty-function-name"],
)
def test_unrecoverable_block_gives_error_and_no_markup(block: str) -> None:
    rec = recover_tool_calls(f"Hmm.\n{block}")
    assert rec.tool_calls == []
    assert len(rec.errors) == 1 and rec.errors[0].startswith("tool call block 1: ")
    assert rec.text == "Hmm."
    assert "<tool_call>" not in rec.text and "<function=" not in rec.text


def test_error_numbering_with_mixed_blocks() -> None:
    text = '<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>not json at all</tool_call>'
    rec = recover_tool_calls(text)
    assert calls(rec) == [("f", {})]
    assert rec.errors == ["tool call block 2: not a JSON object"]
    assert rec.errors[0].count("\n") == 0


def test_no_block_found() -> None:
    rec = recover_tool_calls("  Just an answer, the tag is called tool_call.  ")
    assert rec == Recovered(text="Just an answer, the tag is called tool_call.", tool_calls=[], format=None, errors=[])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<tool_call>" + "[" * 5000, []),
        ('<tool_call>{"name": "f", "arguments": ' + "[" * 5000, []),
        ("<function=f><parameter=x>" + "[" * 5000 + "</parameter></function>", [("f", {"x": "[" * 5000})]),
    ],
    ids=["hermes-body", "hermes-arguments", "qwen3-value"],
)
def test_runaway_nesting_is_not_a_crash(text: str, expected: list) -> None:
    # Found by tests/test_fuzz_recovery.py: json.loads raised RecursionError past the interpreter's limit.
    rec = recover_tool_calls(text)
    assert calls(rec) == expected
    assert rec.errors == ([] if expected else ["tool call block 1: not a JSON object"])


# --- strip_tool_markup / has_tool_markup ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Done.\n<tool_call>{"name": "f", "arguments": {}}</tool_call>', "Done."),
        ("Answer <tool_call>garbage", "Answer"),
        (f"Text\n{QWEN3_FUNCTION}\nmore", "Text\n\nmore"),
        ("stray </tool_call> close", "stray  close"),
        ("plain text", "plain text"),
        ("使用 <b>工具</b>", "使用 <b>工具</b>"),
    ],
)
def test_strip_tool_markup(text: str, expected: str) -> None:
    assert strip_tool_markup(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<</tool_call>tool_call>", ""),
        ("<tool_</function>call>x", "x"),
        ("<func</parameter>tion=f>", "f>"),
        ('a <tool_<tool_call>{"name": "f", "arguments": {}}</tool_call>call> b', "a  b"),
    ],
)
def test_strip_removes_markup_that_a_removal_joins(text: str, expected: str) -> None:
    # Found by tests/test_fuzz_recovery.py: one pass of removal turned "<</tool_call>tool_call>" into "<tool_call>".
    assert strip_tool_markup(text) == expected
    assert recover_tool_calls(text).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<tool_call>{"name": "f"}</tool_call>', True),
        ("prefix <tool_call>", True),
        ("<function=get_weather>", True),
        ("use the <b>tool</b>", False),
        ("the tag is called tool_call", False),
        ("a <tool> and a <function> tag", False),
        ("def function(x): return x", False),
        ("", False),
    ],
)
def test_has_tool_markup(text: str, expected: bool) -> None:
    assert has_tool_markup(text) is expected


# --- MarkupGuard ------------------------------------------------------------------------------------------


def run_guard(deltas: list[str]) -> tuple[list[str], str, MarkupGuard]:
    guard = MarkupGuard()
    shown = [guard.feed(d) for d in deltas]
    return shown, guard.flush(), guard


def test_guard_hides_hermes_markup_token_by_token() -> None:
    deltas = ["Hi ", "<", "tool", "_call", '>{"name": "f"', ', "arguments": {}}', "</tool_call>"]
    shown, tail, guard = run_guard(deltas)
    assert shown == ["Hi ", "", "", "", "", "", ""]
    assert tail == ""
    assert guard.in_markup


def test_guard_hides_function_opener() -> None:
    shown, tail, guard = run_guard(["Sure", ". <func", "tion", "=get_weather>", "\n<parameter=city>"])
    assert "".join(shown) + tail == "Sure. "
    assert guard.in_markup


def test_guard_opener_in_single_delta() -> None:
    shown, tail, guard = run_guard(['ok<tool_call>{"name": "f"}</tool_call>'])
    assert shown == ["ok"] and tail == "" and guard.in_markup


def test_guard_releases_false_alarms_after_flush() -> None:
    deltas = ["a ", "<", " b and ", "<tool", "tip>"]
    shown, tail, guard = run_guard(deltas)
    assert "".join(shown) + tail == "a < b and <tooltip>"
    assert not guard.in_markup


def test_guard_holds_partial_opener_until_stream_end() -> None:
    guard = MarkupGuard()
    assert guard.feed("x <tool_ca") == "x "
    assert not guard.in_markup
    assert guard.flush() == "<tool_ca"


def test_guard_chinese_passes_through_unchanged() -> None:
    deltas = ["你好", "，", "今天", "巴黎", "的天气", "很好。"]
    shown, tail, guard = run_guard(deltas)
    assert shown == deltas and tail == ""
    assert not guard.in_markup


@pytest.mark.parametrize("text", ["use the <b>tool</b> wisely", "1 < 2 <3", "<functional> programming", "x <"])
def test_guard_char_by_char_equals_input_for_plain_text(text: str) -> None:
    shown, tail, _ = run_guard(list(text))
    assert "".join(shown) + tail == text


def test_guard_char_by_char_stops_at_markup() -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    shown, tail, guard = run_guard(list(text))
    assert "".join(shown) + tail == "Let me check.\n"
    assert guard.in_markup
    assert guard.feed("more") == ""


def test_a_broken_block_whose_rest_reads_as_a_name_is_not_a_call():
    text = (
        '<tool_call>\n{"name": " "arguments": {"city": "Paris"}}\n</tool_call>'
        '<tool_call>{"name": "get_current_time", "arguments": {}}</tool_call>'
    )
    rec = recover_tool_calls(text)
    assert calls(rec) == [("get_current_time", {})]
    assert rec.errors == ["tool call block 1: the function name is not a name"]
