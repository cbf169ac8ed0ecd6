"""The folder map's import rules (CONTRIBUTING.md), checked on the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> project packages it must never import (at any depth, lazily included)
FORBIDDEN = {
    "graph/demo": ("graph", "tools", "ui", "configs"),  # the scripted server stands alone (except graph.demo)
    "configs": ("graph", "tools", "ui"),
    "tools": ("graph", "ui"),
    "graph": ("ui", "graph.cli"),  # the agent knows no interface (graph/cli itself is exempt below)
    "graph/obs": ("graph.cli", "graph.batch", "ui"),
    "graph/batch": ("graph.cli", "ui"),
    "ui": ("graph.cli", "graph.batch"),
}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, top-level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files_of(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    if package == "graph":  # the agent's own files: its interface sub-packages have their own rules
        files = [f for f in files if f.parent == ROOT / "graph"]
    return files


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_follow_the_folder_map(package: str) -> None:
    bad = []
    for path in files_of(package):
        for name in imports_of(path):
            for banned in FORBIDDEN[package]:
                if package == "graph/demo" and name.startswith("graph.demo"):
                    continue
                if name == banned or name.startswith(banned + "."):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_every_module_has_a_one_line_docstring() -> None:
    missing = []
    for package in ("graph", "ui", "tools", "configs"):
        for path in sorted((ROOT / package).rglob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            if not doc or not doc.splitlines()[0].strip():
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, missing
