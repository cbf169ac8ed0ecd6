"""Your own tools: typed Python functions from a module (`AGENT_TOOL_MODULES`) or a `work_agent.tools` entry point.

A module gives its tools either as a `TOOLS` list (functions or LangChain tools) or, without one, as every
public function defined in it (not imported into it) plus every LangChain tool object. A function's
docstring is its description and its type hints are its schema, as for the built-in tools. Mark a tool
that only reads with `readOnlyHint` (MCP's name for it) so it runs without asking: an attribute of a plain
function, or the metadata of a LangChain tool (`@tool` takes no `metadata=`)::

    def word_count(text: str) -> int:
        ...

    word_count.readOnlyHint = True

    @tool(parse_docstring=True)
    def char_count(text: str) -> int:
        ...

    char_count.metadata = {"readOnlyHint": True}

An entry point (group `work_agent.tools`, as simonw/llm's plugins use one) names a module, a list of
tools, or a function returning one.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_core.tools import BaseTool, tool

ENTRY_POINT_GROUP = "work_agent.tools"
HINTS = ("readOnlyHint", "destructiveHint")
"""MCP's tool annotations a plain function may carry as attributes; they give its approval policy."""


@dataclass
class Loaded:
    """The tools of every configured module and entry point, and one line per one that failed."""

    tools: list[BaseTool] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_user_tools(modules: Iterable[str], *, entry_point_group: str = ENTRY_POINT_GROUP) -> Loaded:
    """Import each module (a dotted name or a .py path) and every entry point; collect their tools."""
    loaded = Loaded()
    for spec in modules:
        try:
            module = _import(spec)
            loaded.tools += _tag(tools_of(module), f"module {spec}")
        except Exception as exc:  # noqa: BLE001 - a broken plugin is one line, the agent still starts
            loaded.problems.append(
                _problem(f"tools module '{spec}'", exc, "fix it or remove it from AGENT_TOOL_MODULES")
            )
    for ep in entry_points(group=entry_point_group):
        try:
            target = ep.load()
            found = tools_of(target) if isinstance(target, ModuleType) else _from_object(target)
            loaded.tools += _tag(found, f"entry point {ep.name}")
        except Exception as exc:  # noqa: BLE001
            where = f"tools entry point '{ep.name}' ({ep.value})"
            loaded.problems.append(_problem(where, exc, "fix or uninstall the package that provides it"))
    return loaded


def _import(spec: str) -> ModuleType:
    """A module by dotted name, or from a .py file path (relative to the working directory)."""
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"no such file: {spec}")
        name = f"work_agent_user_tools_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot import {spec}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        loader_spec.loader.exec_module(module)
        return module
    if str(Path.cwd()) not in sys.path:  # `AGENT_TOOL_MODULES=mytools` finds ./mytools.py, as `python -m` does
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(spec)


def tools_of(module: ModuleType) -> list[BaseTool]:
    """A module's tools: its `TOOLS` list, else its public functions and LangChain tools."""
    if hasattr(module, "TOOLS"):
        return _from_object(module.TOOLS)
    found: list[BaseTool] = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, BaseTool):
            found.append(value)
        elif inspect.isfunction(value) and value.__module__ == module.__name__:
            found.append(as_tool(value))
    return found


def _from_object(obj: Any) -> list[BaseTool]:
    if callable(obj) and not isinstance(obj, BaseTool) and not inspect.signature(obj).parameters:
        obj = obj()  # an entry point naming a function that returns the tools
    items = obj if isinstance(obj, list | tuple) else [obj]
    return [t if isinstance(t, BaseTool) else as_tool(t) for t in items]


def as_tool(fn: Callable[..., Any]) -> BaseTool:
    """A typed function as a tool: its docstring's summary and `Args:` become the description and schema."""
    if not (fn.__doc__ or "").strip():
        raise TypeError(f"{fn.__name__} has no docstring: the docstring is what tells the model when to use it")
    try:
        made = tool(fn, parse_docstring=True)
    except ValueError:  # not Google style (no `Args:` section): the whole docstring is the description
        made = tool(fn)
    hints = {h: bool(getattr(fn, h)) for h in HINTS if hasattr(fn, h)}  # `word_count.readOnlyHint = True`
    if hints:
        made.metadata = {**(made.metadata or {}), **hints}
    return made


def _tag(tools: list[BaseTool], origin: str) -> list[BaseTool]:
    for t in tools:
        t.metadata = {**(t.metadata or {}), "source": "user", "origin": origin}
    return tools


def _problem(what: str, exc: BaseException, todo: str) -> str:
    from tools.errors import _one_line

    detail = _one_line(str(exc)).rstrip(".")
    return f"{what} failed to load ({type(exc).__name__}: {detail}); {todo}"
