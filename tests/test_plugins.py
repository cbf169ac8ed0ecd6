"""Your own tools: modules by name or path (AGENT_TOOL_MODULES), `TOOLS` lists, entry points, and their policies."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from configs.settings import get_settings
from graph.checkpoint import open_checkpointer
from graph.context import Context
from graph.demo.server import tool_call_text
from graph.graph import build_graph
from graph.runner import run_turn
from tools import TOOLS
from tools.plugins import ENTRY_POINT_GROUP, load_user_tools
from tools.toolbox import Toolbox

WORD_COUNT = '''
from langchain_core.tools import tool


def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: The text to count, in any language.
    """
    return len(text.split())


word_count.readOnlyHint = True


@tool(parse_docstring=True)
def char_count(text: str) -> int:
    """Count the characters of a text.

    Args:
        text: The text to count.
    """
    return len(text)


char_count.metadata = {"readOnlyHint": True}
'''

TYPED_FUNCTIONS = '''
import json
from os.path import join  # imported, so not a tool


def shout(text: str, times: int = 1) -> str:
    """Repeat a text in capitals.

    Args:
        text: What to shout.
        times: How many times to repeat it.
    """
    return " ".join([text.upper()] * times)


def save_memo(title: str, body: str) -> str:
    """Save a memo under a title (writes a file, so it is asked about).

    Args:
        title: The memo's title.
        body: What the memo says.
    """
    return json.dumps({"saved": title, "chars": len(body)})


def _helper() -> None:
    """Private: not a tool."""
'''


@pytest.fixture(autouse=True)
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what loading user modules does to sys.path and sys.modules."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if getattr(module, "__file__", None) and "pytest-of" in str(module.__file__):
            del sys.modules[name]


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def names(tools) -> list[str]:
    return [t.name for t in tools]


def test_a_module_by_name_in_the_working_directory(tmp_path):
    write(tmp_path / "cwd_tools_a.py", TYPED_FUNCTIONS)  # the test's cwd is tmp_path
    loaded = load_user_tools(["cwd_tools_a"])
    assert loaded.problems == []
    assert names(loaded.tools) == ["shout", "save_memo"]  # not the imported `join`, not `_helper`
    shout = loaded.tools[0]
    assert shout.invoke({"text": "hi", "times": 2}) == "HI HI"
    assert shout.metadata == {"source": "user", "origin": "module cwd_tools_a"}


def test_a_py_path_and_its_google_docstring_become_description_and_schema(tmp_path):
    path = write(tmp_path / "lib" / "typed.py", TYPED_FUNCTIONS)
    loaded = load_user_tools([str(path)])
    tools = {t.name: t for t in loaded.tools}
    shout = tools["shout"]
    assert shout.description == "Repeat a text in capitals."
    schema = shout.tool_call_schema.model_json_schema()
    assert schema["properties"]["text"] == {"description": "What to shout.", "title": "Text", "type": "string"}
    assert schema["properties"]["times"]["type"] == "integer" and schema["properties"]["times"]["default"] == 1
    assert schema["properties"]["times"]["description"] == "How many times to repeat it."
    assert schema["required"] == ["text"]
    assert tools["save_memo"].metadata["origin"] == f"module {path}"


def test_a_tools_list_is_what_the_module_gives(tmp_path):
    write(
        tmp_path / "listed_tools_b.py",
        WORD_COUNT
        + '''

def not_listed(x: str) -> str:
    """Not in TOOLS, so not a tool."""
    return x


def plain(city: str) -> str:
    """Say hello to a city.

    Args:
        city: The city, e.g. 北京.
    """
    return f"你好, {city}"


TOOLS = [word_count, plain]
''',
    )
    loaded = load_user_tools(["listed_tools_b"])
    assert names(loaded.tools) == ["word_count", "plain"]
    assert loaded.tools[1].invoke({"city": "北京"}) == "你好, 北京"


def test_read_only_hint_runs_by_itself_and_anything_else_is_asked(tmp_path):
    write(tmp_path / "mixed_tools_c.py", WORD_COUNT + TYPED_FUNCTIONS)
    box = Toolbox.from_settings(get_settings(), tool_modules=["mixed_tools_c"])
    rows = {r.name: r for r in box.listing()}
    assert rows["word_count"].policy == "auto" and rows["char_count"].policy == "auto"  # readOnlyHint
    assert rows["shout"].policy == "ask" and rows["save_memo"].policy == "ask"  # no hints: ask
    assert rows["calculate"].policy == "auto" and rows["calculate"].source == "built-in"
    assert rows["shout"].source == "module mixed_tools_c" and rows["shout"].server is None
    assert names(box.known())[: len(TOOLS)] == names(TOOLS)


def test_a_module_that_fails_to_import_is_one_line_and_the_others_still_load(tmp_path):
    write(tmp_path / "good_tools_d.py", WORD_COUNT)
    write(tmp_path / "broken_tools_d.py", "import json\nraise RuntimeError('the database is not configured')\n")
    write(tmp_path / "syntax_tools_d.py", "def oops(:\n")
    write(tmp_path / "undocumented_tools_d.py", "def nodoc(x: int) -> int:\n    return x\n")
    loaded = load_user_tools(
        ["broken_tools_d", "good_tools_d", "syntax_tools_d", "missing_tools_d", "undocumented_tools_d", "nope.py"]
    )
    assert names(loaded.tools) == ["word_count", "char_count"]
    assert len(loaded.problems) == 5 and all("\n" not in p and "Traceback" not in p for p in loaded.problems)
    broken, syntax, missing, undocumented, nope = loaded.problems
    assert broken == (
        "tools module 'broken_tools_d' failed to load (RuntimeError: the database is not configured); "
        "fix it or remove it from AGENT_TOOL_MODULES"
    )
    assert syntax.startswith("tools module 'syntax_tools_d' failed to load (SyntaxError:")
    assert missing.startswith("tools module 'missing_tools_d' failed to load (ModuleNotFoundError:")
    assert "nodoc has no docstring" in undocumented and "AGENT_TOOL_MODULES" in undocumented
    assert nope.startswith("tools module 'nope.py' failed to load (FileNotFoundError: no such file: nope.py")


def test_a_tool_with_a_built_in_name_is_skipped_with_a_line(tmp_path, monkeypatch):
    write(
        tmp_path / "clash_tools_e.py",
        '''
def calculate(expression: str) -> str:
    """My own calculator.

    Args:
        expression: What to compute.
    """
    return "mine"


def kept(text: str) -> str:
    """Kept: its name is free.

    Args:
        text: Anything.
    """
    return text
''',
    )
    monkeypatch.setenv("AGENT_TOOL_MODULES", "clash_tools_e")
    get_settings.cache_clear()
    box = Toolbox.from_settings(get_settings())
    assert names(box.known()) == [*names(TOOLS), "kept"]
    assert box.get("calculate") is TOOLS[2]  # the built-in one
    assert box.problems() == [
        "tool 'calculate' from module clash_tools_e has the name of a built-in tool and was skipped; rename it"
    ]


def test_the_same_name_in_two_modules_keeps_the_first_with_a_line(tmp_path):
    write(tmp_path / "first_tools_g.py", WORD_COUNT)
    write(tmp_path / "second_tools_g.py", WORD_COUNT.replace("Count the words", "Another count of the words"))
    box = Toolbox.from_settings(get_settings(), tool_modules=["first_tools_g", "second_tools_g"])
    assert names(box.known()) == [*names(TOOLS), "word_count", "char_count"]
    assert box.get("word_count").description == "Count the words of a text."
    assert box.problems() == [
        "tool 'word_count' from module second_tools_g has the name of a tool from module first_tools_g and was "
        "skipped; rename it",
        "tool 'char_count' from module second_tools_g has the name of a tool from module first_tools_g and was "
        "skipped; rename it",
    ]


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (a .dist-info on sys.path) with `work_agent.tools` entry points."""
    site = tmp_path / "site"
    dist = site / "work_agent_demo_plugin-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: work-agent-demo-plugin\nVersion: 1.0\n")
    write(
        dist / "entry_points.txt",
        f"""
        [{ENTRY_POINT_GROUP}]
        whole = demo_plugin_tools
        listed = demo_plugin_more:TOOLS
        factory = demo_plugin_tools:make_tools
        broken = demo_plugin_missing_module
        [console_scripts]
        unrelated = demo_plugin_tools:make_tools
        """,
    )
    write(
        site / "demo_plugin_tools.py",
        '''
from langchain_core.tools import tool


def reverse(text: str) -> str:
    """Reverse a text.

    Args:
        text: The text.
    """
    return text[::-1]


@tool
def upper(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


upper.metadata = {"readOnlyHint": True}
TOOLS = [upper]


def make_tools():
    """Build the tools at load time."""
    return [reverse]
''',
    )
    write(
        site / "demo_plugin_more.py",
        '''
def lower(text: str) -> str:
    """Lower-case a text."""
    return text.lower()


TOOLS = [lower]
''',
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entry_points_give_a_module_a_list_or_a_factory(plugin_dist):
    loaded = load_user_tools([])
    by_origin = [(t.name, t.metadata["origin"]) for t in loaded.tools]
    assert by_origin == [
        ("upper", "entry point whole"),  # a module: its TOOLS
        ("lower", "entry point listed"),  # a list of functions
        ("reverse", "entry point factory"),  # a function returning the tools
    ]
    assert loaded.tools[1].description == "Lower-case a text." and loaded.tools[1].invoke({"text": "AbC"}) == "abc"
    (problem,) = loaded.problems
    assert problem.startswith("tools entry point 'broken' (demo_plugin_missing_module) failed to load")
    assert problem.endswith("fix or uninstall the package that provides it")


def test_entry_point_tools_reach_the_toolbox_with_their_policies(plugin_dist):
    box = Toolbox.from_settings(get_settings(), tool_modules=[])
    assert box.policy("upper") == "auto" and box.policy("reverse") == "ask" and box.policy("lower") == "ask"
    assert box.info("reverse")["source"] == "user"


async def test_a_user_tool_runs_in_a_turn_and_an_unhinted_one_waits(vllm, tmp_path):
    write(tmp_path / "turn_tools_f.py", WORD_COUNT + TYPED_FUNCTIONS)
    settings = get_settings()
    box = Toolbox.from_settings(settings, tool_modules=["turn_tools_f"])
    async with open_checkpointer(settings) as saver:
        graph = build_graph(settings=settings, toolbox=box, checkpointer=saver)
        vllm.script(tool_call_text("word_count", {"text": "一 二 three"}), "Three words.")
        result = await run_turn(graph, "How many words in 一 二 three?", thread_id="t1", context=Context())
        (step,) = [s for s in result.steps if s.kind == "tool"]
        assert (step.name, step.status, step.result, step.decision) == ("word_count", "ok", "3", None)
        offered = [t["function"]["name"] for t in vllm.requests[0]["tools"]]
        assert {"word_count", "shout", "save_memo"} <= set(offered)

        vllm.script(tool_call_text("save_memo", {"title": "t", "body": "b"}), "Saved.")
        paused = await run_turn(graph, "Save a memo", thread_id="t1", context=Context())
        assert paused.pending is not None and [c.name for c in paused.pending.calls] == ["save_memo"]
        done = await run_turn(
            graph, None, thread_id="t1", context=Context(), resume={"decisions": [{"type": "approve"}]}
        )
        (memo,) = [s for s in done.steps if s.kind == "tool"]
        assert (memo.decision, memo.result) == ("approved", '{"saved": "t", "chars": 1}')
