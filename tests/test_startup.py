"""Fast start-up (issue #11): `--help` and `list-tools` answer without importing the model or UI stacks.

Each command runs for real in a child process (runpy, as `python -m` would), which then reports every module it
had imported. A behaviour test, not a timing one: bench/cli_startup.py prints the timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Runs `python -m MODULE ARGS...` in this process, then writes its exit code and sys.modules to a JSON file.
PROBE = textwrap.dedent("""
    import json, runpy, sys
    report, module, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    with open(report, "w", encoding="utf-8") as out:
        json.dump({"code": code, "modules": sorted(sys.modules)}, out)
""")

MODEL_STACK = ("langgraph", "langchain_openai", "openai")
UI_STACK = ("gradio", "plotly")
DEMO_SERVER = ("graph.demo", "uvicorn")

CASES = {
    "work-agent --help": (["graph.cli", "--help"], MODEL_STACK + UI_STACK + DEMO_SERVER + ("langchain_core", "ui")),
    "work-agent run --help": (
        ["graph.cli", "run", "--help"],
        MODEL_STACK + UI_STACK + DEMO_SERVER + ("langchain_core", "ui"),
    ),
    # The tool specs come from langchain_core's @tool: langchain_core is the floor, langgraph is not needed.
    "work-agent list-tools": (["graph.cli", "list-tools"], MODEL_STACK + UI_STACK + DEMO_SERVER + ("ui",)),
    "python -m ui.app --help": (["ui.app", "--help"], MODEL_STACK + UI_STACK + DEMO_SERVER + ("langchain_core",)),
}


def imported_by(args: list[str], tmp_path: Path) -> tuple[int, list[str]]:
    report = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"},
        cwd=tmp_path,
    )
    assert report.exists(), proc.stderr
    found = json.loads(report.read_text(encoding="utf-8"))
    return found["code"], found["modules"]


@pytest.mark.parametrize("case", list(CASES))
def test_command_answers_without_the_heavy_stacks(case: str, tmp_path: Path) -> None:
    args, forbidden = CASES[case]
    code, modules = imported_by(args, tmp_path)
    assert code == 0
    loaded = [m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not loaded, f"{case} imported {sorted({m.split('.')[0] for m in loaded})}: {loaded[:8]}"


def test_the_probe_is_not_blind(tmp_path: Path) -> None:
    """The same probe does see what a command imports: list-tools loads the tools and langchain_core."""
    code, modules = imported_by(["graph.cli", "list-tools"], tmp_path)
    assert code == 0 and {"tools.calculator", "tools.weather", "langchain_core.tools"} <= set(modules)
