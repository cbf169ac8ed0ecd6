"""Property-based tests (hypothesis, issue #7) of the text tool-call recovery in graph.recovery and of
graph.nodes.repair_calls.

Each property runs on 1,000 generated inputs: arbitrary unicode prose, valid hermes and Qwen3-Coder blocks
embedded in it, randomly corrupted blocks, and random splits of a stream for MarkupGuard. What must hold:
no exception escapes, a valid call is always recovered exactly, nothing that is not a call (no opener) is
ever turned into one, and no tool-call markup is left in the text shown to the user.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call

from configs.prompts import UNREADABLE_CALL_FALLBACK
from graph.demo.hermes import qwen3_coder_call_text, tool_call_text
from graph.nodes import is_empty, repair_calls
from graph.recovery import MarkupGuard, Recovered, has_tool_markup, recover_tool_calls, strip_tool_markup
from tests.test_recovery import ID_RE, calls
from tools import TOOLS

pytestmark = pytest.mark.slow

# No example database: it would write a .hypothesis/ folder into the repository. A failure still prints
# its minimal example. No explain phase: it traces every line and makes a failure slow to report.
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

OPENERS = ("<tool_call>", "<function=")
TAG_RE = re.compile(r"</?tool_call>|<function=|</function>|</parameter>")  # markup the user must never see
ERROR_RE = re.compile(r"^tool call block \d+: [^\n]+$")

# --- strategies --------------------------------------------------------------------------------------------

# Any unicode scalar value that UTF-8 can carry (no lone surrogates), plus pieces that look like markup
# so generated prose keeps brushing against the parser's openers, closers and JSON. Sizes stay small:
# data generation, not the code under test, is what costs time here.
chars = st.characters(codec="utf-8")
unicode_text = st.text(chars, max_size=8)
FRAGMENTS = [
    "<",
    ">",
    "/",
    "=",
    "<tool",
    "_call>",
    "<tool_",
    "call",
    "</tool",
    "<func",
    "tion=",
    "<function",
    "</function>",
    "</tool_call>",
    "<parameter=x>",
    "</parameter>",
    "<tools>",
    "<b>",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    '"name"',
    '"arguments"',
    "\\",
    "\n",
    "\n\n\n",
    "\r\n",
    " ",
    "\t",
    "```",
    "你好",
    "天气",
    "🙂",
    "👨\u200d👩\u200d👧",
    "é",
    "\u200b",
    "\u2028",
    "\x00",
    "\ufeff",
]
markupish = st.lists(st.sampled_from(FRAGMENTS) | unicode_text, max_size=6).map("".join)
any_text = st.one_of(st.text(chars, max_size=40), markupish)


def defang(text: str) -> str:
    """`text` with every tag removed, again until none is left (removing one can join a new one)."""
    while (cleaner := TAG_RE.sub("", text)) != text:
        text = cleaner
    return text


# What a model may write around calls: no opener and no stray closing tag (those have their own properties).
prose = any_text.map(defang)

# Names as OpenAI allows them (^[a-zA-Z0-9_-]{1,64}$); st.from_regex would cost 5x more to generate.
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
tool_names = st.sampled_from([t.name for t in TOOLS]) | st.text(NAME_CHARS, min_size=1, max_size=64)
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | unicode_text
)
# Two levels of nesting, built flat: st.recursive costs several times more to generate.
json_keys = st.sampled_from(["city", "tz", "城市", "a b", "", "🙂", "name", "arguments"]) | unicode_text
json_values = json_scalars | st.lists(json_scalars, max_size=3) | st.dictionaries(json_keys, json_scalars, max_size=3)
arguments = st.dictionaries(json_keys, json_values, max_size=3)


def _reject(constant: str) -> None:
    raise ValueError(constant)


def _is_json(text: str) -> bool:
    """Whether the Qwen3-Coder parser would decode `text` (JSON, without NaN/Infinity)."""
    try:
        json.loads(text, parse_constant=_reject)
    except (ValueError, RecursionError):
        return False
    return True


def _qwen3_raw(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_QWEN3_TAGS = ("</parameter>", "<parameter=", "</function>", "</tool_call>")
# Qwen3-Coder writes strings raw and decodes anything that parses as JSON, so "3" would come back as 3
# (vLLM's own parser uses the tool schema to decide); and a value that contains a closing tag is ambiguous.
qwen3_values = json_values.filter(
    lambda v: not any(tag in _qwen3_raw(v) for tag in _QWEN3_TAGS) and not (isinstance(v, str) and _is_json(v))
)
# Parameter names: anything but ">" and whitespace (which \s, and so the parser, reads in Z and Cc).
qwen3_keys = st.text(
    st.characters(codec="utf-8", exclude_categories=("Z", "Cc"), exclude_characters=">"), min_size=1, max_size=8
)
qwen3_arguments = st.dictionaries(qwen3_keys, qwen3_values, max_size=3)


def _hermes_pretty(name: str, args: dict) -> str:
    return tool_call_text(name, args)  # exactly what the fake vLLM's model writes


def _hermes_compact(name: str, args: dict) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


def _hermes_parameters_key(name: str, args: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'parameters': args}, ensure_ascii=False)}\n</tool_call>"


def _hermes_string_arguments(name: str, args: dict) -> str:
    payload = {"arguments": json.dumps(args, ensure_ascii=False), "name": name}
    return f"<tool_call>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_call>"


HERMES_WRITERS = [_hermes_pretty, _hermes_compact, _hermes_parameters_key, _hermes_string_arguments]


@st.composite
def hermes_calls(draw: st.DrawFn) -> tuple[str, str, dict]:
    """(block text, name, arguments) for one valid hermes block."""
    name, args = draw(tool_names), draw(arguments)
    block = draw(st.sampled_from(HERMES_WRITERS))(name, args)
    # A "</tool_call>" inside a JSON string ends the block early, for vLLM's regex as for ours.
    assume(block.count("</tool_call>") == 1)
    return block, name, args


@st.composite
def qwen3_calls(draw: st.DrawFn) -> tuple[str, str, dict]:
    """(block text, name, arguments) for one valid Qwen3-Coder block, with or without <tool_call>."""
    name, args = draw(tool_names), draw(qwen3_arguments)
    block = qwen3_coder_call_text(name, args)
    if draw(st.booleans()):
        block = block.removeprefix("<tool_call>\n").removesuffix("\n</tool_call>")  # bare <function=...>
    return block, name, args


valid_calls = hermes_calls() | qwen3_calls()


@st.composite
def texts_with_calls(draw: st.DrawFn) -> tuple[str, list[tuple[str, dict]], str]:
    """(model text, expected [(name, args)], expected visible text): prose and 1-3 valid blocks interleaved."""
    blocks = draw(st.lists(valid_calls, min_size=1, max_size=3))
    pieces = [draw(prose)]
    text = pieces[0]
    for block, _, _ in blocks:
        pieces.append(draw(prose))
        text += block + pieces[-1]
    # What recover_tool_calls promises: the prose without markup (two halves such as "<tool_" and "call>"
    # meet once the block between them is cut out), runs of blank lines collapsed, stripped.
    visible = re.sub(r"\n{3,}", "\n\n", defang("".join(pieces))).strip()
    return text, [(name, args) for _, name, args in blocks], visible


def _corrupt(draw: st.DrawFn, text: str) -> str:
    """Apply one random corruption a real model (or a cut-off stream) produces."""
    op = draw(
        st.sampled_from(
            ["truncate", "delete", "insert", "single_quotes", "trailing_commas", "drop_brace", "runaway", "drop_closer"]
        )
    )
    at = draw(st.integers(0, len(text)))
    if op == "truncate":
        return text[:at]
    if op == "delete":
        return text[:at] + text[at + draw(st.integers(1, 20)) :]
    if op == "insert":
        return text[:at] + draw(markupish | unicode_text) + text[at:]
    if op == "single_quotes":
        return text.replace('"', "'")
    if op == "trailing_commas":
        return text.replace("}", ",}").replace("]", ",]")
    if op == "drop_brace":
        cut = text.rfind("}")
        return text if cut < 0 else text[:cut] + text[cut + 1 :]
    if op == "drop_closer":
        return text.replace(draw(st.sampled_from(["</tool_call>", "</function>", "</parameter>"])), "", 1)
    # A model stuck in a loop where a value starts (after a key, a tag or another "["): nesting deeper
    # than the JSON decoder's recursion limit.
    at = draw(st.sampled_from([m.end() for m in re.finditer(r":\s*|>\n?|\[", text)] or [at]))
    runaway = draw(st.sampled_from(["[", '{"a": ', "<"])) * draw(st.integers(1, 5) | st.integers(1000, 3000))
    return text[:at] + runaway + text[at:]


@st.composite
def corrupted_texts(draw: st.DrawFn) -> str:
    text, _, _ = draw(texts_with_calls())
    for _ in range(draw(st.integers(1, 4))):
        text = _corrupt(draw, text)
    return text


# --- helpers -----------------------------------------------------------------------------------------------


def assert_well_formed(rec: Recovered) -> None:
    ids = [c["id"] for c in rec.tool_calls]
    assert all(ID_RE.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert all(c["type"] == "tool_call" and isinstance(c["args"], dict) for c in rec.tool_calls)
    assert all(isinstance(c["name"], str) and c["name"] == c["name"].strip() and c["name"] for c in rec.tool_calls)
    assert all(ERROR_RE.match(e) for e in rec.errors), rec.errors


def assert_no_markup(visible: str) -> None:
    assert not TAG_RE.search(visible), visible
    assert not has_tool_markup(visible), visible


def splits(text: str) -> st.SearchStrategy[list[str]]:
    """`text` cut at random offsets into pieces (empty pieces included, like empty stream deltas)."""
    cuts = st.lists(st.integers(0, len(text)), max_size=min(len(text) + 2, 40)).map(sorted)
    return cuts.map(lambda cs: [text[a:b] for a, b in zip([0, *cs], [*cs, len(text)], strict=True)])


def run_guard(pieces: list[str]) -> tuple[list[str], str, MarkupGuard]:
    guard = MarkupGuard()
    shown = [guard.feed(p) for p in pieces]
    return shown, guard.flush(), guard


def first_opener(text: str) -> int:
    return min((i for i in (text.find(o) for o in OPENERS) if i >= 0), default=len(text))


# --- recover_tool_calls / strip_tool_markup / has_tool_markup, and repair_calls on the same text -----------


@FUZZ
@given(any_text)
def test_text_without_opener_is_never_a_call(text: str) -> None:
    assume(not has_tool_markup(text))
    rec = recover_tool_calls(text)
    assert rec.tool_calls == [] and rec.errors == [] and rec.format is None
    assert rec.text == strip_tool_markup(text)
    if not TAG_RE.search(text) and "\n\n\n" not in text:
        assert rec.text == text.strip()  # nothing to remove: only surrounding whitespace goes
    # repair_calls does not even strip it: a plain answer reaches the user as the model wrote it.
    fixed, recovered = repair_calls(AIMessage(content=text, id="run-1"))
    assert fixed.content == text and fixed.id == "run-1"
    assert fixed.tool_calls == [] and not recovered
    assert "recovered_tool_calls" not in fixed.response_metadata


@FUZZ
@given(any_text)
def test_any_text_never_raises_and_leaves_no_markup(text: str) -> None:
    rec = recover_tool_calls(text)
    assert_well_formed(rec)
    assert rec.text == strip_tool_markup(text)
    assert_no_markup(rec.text)
    assert strip_tool_markup(rec.text) == rec.text  # idempotent: nothing left to strip
    assert has_tool_markup(text) == any(o in text for o in OPENERS)
    if has_tool_markup(text):
        assert rec.format in ("hermes", "qwen3_coder")
        assert rec.tool_calls or rec.errors  # every block gives calls or an error line, never silence


@FUZZ
@given(texts_with_calls())
def test_valid_blocks_in_prose_are_recovered_exactly(case: tuple[str, list[tuple[str, dict]], str]) -> None:
    text, expected, visible = case
    rec = recover_tool_calls(text)
    assert calls(rec) == expected
    assert rec.errors == []
    assert rec.text == visible
    assert_well_formed(rec)
    fixed, recovered = repair_calls(AIMessage(content=text))
    assert [(c["name"], c["args"]) for c in fixed.tool_calls] == expected
    assert recovered and fixed.response_metadata["recovered_tool_calls"] is True
    assert fixed.content == visible


@FUZZ
@given(st.lists(valid_calls, min_size=1, max_size=3), prose)
def test_unclosed_final_block_is_still_recovered(blocks: list[tuple[str, str, dict]], before: str) -> None:
    # A stream cut at max_tokens (or a model that forgets the closer) leaves the last block open.
    last = blocks[-1][0]
    for closer in ("\n</tool_call>", "</tool_call>"):
        if last.endswith(closer):
            last = last.removesuffix(closer)
            break
    text = before + "".join(b for b, _, _ in blocks[:-1]) + last
    rec = recover_tool_calls(text)
    assert calls(rec) == [(name, args) for _, name, args in blocks]
    assert rec.errors == []
    assert rec.text == re.sub(r"\n{3,}", "\n\n", before).strip()


@FUZZ
@given(corrupted_texts())
# Found in CI: json_repair read a broken block's rest as the name ('"arguments": {"city": "\x1f0"}').
@example(
    '<tool_call>\n{"name": " "arguments": {"city": "\\u001f0"}}\n</tool_call>'
    '<tool_call>\n{"name": "get_current_time", "arguments": {}}\n</tool_call>'
)
def test_corrupted_blocks_never_raise_nor_invent_calls(text: str) -> None:
    rec = recover_tool_calls(text)
    assert_well_formed(rec)
    assert_no_markup(rec.text)
    assert rec.text == strip_tool_markup(text)
    if not has_tool_markup(text):
        assert rec.tool_calls == [] and rec.errors == []  # no opener, no call: whatever the damage
    else:
        assert rec.tool_calls or rec.errors
    for name, _ in calls(rec):
        # The name is text the model wrote (possibly JSON-escaped there), never made up.
        assert name in text or json.dumps(name)[1:-1] in text, name
    # repair_calls executes exactly what recovery found, and never leaves a silent turn.
    fixed, recovered = repair_calls(AIMessage(content=text))
    assert [(c["name"], c["args"]) for c in fixed.tool_calls] == calls(rec)
    assert recovered == bool(rec.tool_calls)
    if has_tool_markup(text):
        assert not is_empty(fixed)
        assert fixed.content == (rec.text or (UNREADABLE_CALL_FALLBACK if not rec.tool_calls else ""))


TAGS = ["<tool_call>", "</tool_call>", "<function=", "</function>", "</parameter>"]


@st.composite
def tags_split_around_a_tag(draw: st.DrawFn) -> str:
    """Prose, half of one tag, a tag (or a whole block) in between, the other half, prose."""
    halved = draw(st.sampled_from(TAGS))
    k = draw(st.integers(1, len(halved) - 1))
    middle = draw(st.sampled_from(TAGS[1:]) | valid_calls.map(lambda c: c[0]))
    return draw(any_text) + halved[:k] + middle + halved[k:] + draw(any_text)


@FUZZ
@given(tags_split_around_a_tag())
def test_removing_markup_never_joins_new_markup(text: str) -> None:
    # Removing one tag must not join its neighbours into a new one: "<</tool_call>tool_call>" is no call.
    rec = recover_tool_calls(text)
    assert_no_markup(rec.text)
    assert_no_markup(strip_tool_markup(text))
    assert_well_formed(rec)


# --- MarkupGuard -------------------------------------------------------------------------------------------


@st.composite
def guarded_streams(draw: st.DrawFn) -> tuple[str, list[str], bool]:
    """(text, the text cut into stream deltas, whether it is prose followed by valid blocks)."""
    valid = draw(st.booleans())
    text = draw(texts_with_calls().map(lambda c: c[0]) if valid else any_text | corrupted_texts())
    return text, draw(splits(text)), valid


@FUZZ
@given(guarded_streams())
def test_guard_shows_text_up_to_the_first_opener_whatever_the_split(case: tuple[str, list[str], bool]) -> None:
    text, pieces, valid = case
    shown, tail, guard = run_guard(pieces)
    visible = "".join(shown) + tail
    assert visible == text[: first_opener(text)]
    assert guard.in_markup == has_tool_markup(text)
    # Nothing emitted, alone or joined with what came before, ever holds an opener.
    assert not has_tool_markup(visible)
    if guard.in_markup:
        assert tail == "" and guard.feed("more <text>") == ""
    if valid:
        # The streamed display ends where markup starts; the final text (recover) starts with the same prose.
        assert recover_tool_calls(text).text.startswith(strip_tool_markup(visible))


# --- repair_calls with calls the server did parse -----------------------------------------------------------


@FUZZ
@given(
    st.lists(st.tuples(tool_names, arguments), min_size=1, max_size=3),
    corrupted_texts() | texts_with_calls().map(lambda c: c[0]),
)
def test_repair_never_adds_text_calls_to_parsed_ones(parsed: list[tuple[str, dict]], text: str) -> None:
    # The server's parser already returned calls: markup left in content is hidden, never executed too.
    server_calls = [
        tool_call(name=name, args=args, id=f"chatcmpl-tool-{i:016x}") for i, (name, args) in enumerate(parsed)
    ]
    fixed, recovered = repair_calls(AIMessage(content=text, tool_calls=server_calls))
    assert fixed.tool_calls == server_calls
    assert not recovered
    assert fixed.content == (strip_tool_markup(text) if has_tool_markup(text) else text)
    assert not has_tool_markup(fixed.content)


# json_repair and json both raise RecursionError on nesting deeper than the interpreter's limit; repair_calls
# does not catch it (see test_repair_invalid_call_with_runaway_nesting below), so it is kept out of here.
truncated_json = arguments.map(lambda a: (json.dumps(a, ensure_ascii=False)[:-1], a))  # final "}" lost
bad_json = (markupish | st.text(chars, max_size=40)).filter(lambda s: s.count("[") + s.count("{") < 200).map(
    lambda s: (s, None)
) | truncated_json


@FUZZ
@given(st.lists(st.tuples(st.none() | tool_names, bad_json, st.booleans()), max_size=4))
def test_repair_of_invalid_server_calls_never_raises(bad: list[tuple[str | None, tuple[str, Any], bool]]) -> None:
    invalid = [
        invalid_tool_call(name=name, args=raw, id=f"chatcmpl-tool-{j}" if has_id else None, error="bad")
        for j, (name, (raw, _), has_id) in enumerate(bad)
    ]
    fixed, _ = repair_calls(AIMessage(content="", invalid_tool_calls=invalid))
    named = [(name, meant) for name, (_, meant), _ in bad if name]
    assert [c["name"] for c in fixed.tool_calls] == [name for name, _ in named]  # nameless ones are dropped
    ids = [c["id"] for c in fixed.tool_calls]
    assert len(set(ids)) == len(ids)
    # A call whose arguments could not be repaired runs with {} and is marked, so call_tool answers with
    # an error instead of executing it.
    unrepaired = fixed.response_metadata.get("invalid_arguments", {})
    assert set(unrepaired) <= set(ids)
    for call, (_, meant) in zip(fixed.tool_calls, named, strict=True):
        assert isinstance(call["args"], dict)
        if call["id"] in unrepaired:
            assert call["args"] == {}
        if meant is not None:
            # JSON cut before its final brace is repaired into an object with as many keys. Not always
            # the same values: json_repair 0.64 drops a last string's trailing "\n" and keeps "\f" escaped.
            assert len(call["args"]) == len(meant) and call["id"] not in unrepaired


def test_repair_invalid_call_with_runaway_nesting() -> None:
    # A model stuck repeating "[" inside streamed arguments: langchain files it as an invalid tool call.
    ai = AIMessage(
        content="",
        invalid_tool_calls=[invalid_tool_call(name="calculate", args="[" * 3000, id="chatcmpl-tool-0", error="bad")],
    )
    fixed, _ = repair_calls(ai)
    assert fixed.tool_calls[0]["args"] == {}
    assert fixed.response_metadata["invalid_arguments"] == {"chatcmpl-tool-0": "bad"}  # the model is told
