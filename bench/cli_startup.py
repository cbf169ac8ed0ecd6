"""Benchmark CLI start-up: `work-agent --help` and `list-tools` against baselines, in one run.

Run: python bench/cli_startup.py [--repeat N]
Baselines: a bare `python -c pass`, and importing the whole agent stack eagerly (what the CLI would cost
if it imported the graph at start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "baseline: python -c pass": [sys.executable, "-c", "pass"],
    "baseline: import the agent stack eagerly": [
        sys.executable,
        "-c",
        "import graph.graph, graph.runner, graph.checkpoint, graph.doctor",
    ],
    "work-agent --help": [sys.executable, "-m", "graph.cli", "--help"],
    "work-agent list-tools": [sys.executable, "-m", "graph.cli", "list-tools"],
    "work-agent run (bad setting, exits 2)": [sys.executable, "-m", "graph.cli", "run", "hi"],
}


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, check=False)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENT_MAX_STEPS": "-1"}
    print(f"{'case':45} {'median ms':>10} {'min ms':>8}  ({args.repeat} runs each)")
    for name, cmd in CASES.items():
        timed(cmd, env)  # warm the file cache
        runs = [timed(cmd, env) for _ in range(args.repeat)]
        print(f"{name:45} {statistics.median(runs):10.0f} {min(runs):8.0f}")


if __name__ == "__main__":
    main()
