"""Benchmark start-up: `work-agent --help`, `run --help`, `list-tools`, `run --demo` and `python -m ui.app --help`.

Run: python bench/cli_startup.py [--repeat N] [--root DIR]
Baselines: a bare `python -c pass`, and importing the whole agent stack eagerly (what the CLI would cost if it
imported the graph at start-up). `run --demo` is a whole turn against the scripted model (its tokens are paced
at 20 ms, as in the demo), so the row after it splits that time: imports, demo server start and stop, the turn.
tests/test_startup.py checks the behaviour behind these numbers (which modules each command imports).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_QUESTION = "What is 2+3?"  # the calculator: no network needed

CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "baseline: python -c pass": (["-c", "pass"], {}),
    "baseline: import the agent stack eagerly": (
        ["-c", "import graph.graph, graph.runner, graph.checkpoint, graph.doctor"],
        {},
    ),
    "work-agent --help": (["-m", "graph.cli", "--help"], {}),
    "work-agent run --help": (["-m", "graph.cli", "run", "--help"], {}),
    "work-agent list-tools": (["-m", "graph.cli", "list-tools"], {}),
    "work-agent run (bad setting, exits 2)": (["-m", "graph.cli", "run", "hi"], {"AGENT_MAX_STEPS": "-1"}),
    "python -m ui.app --help": (["-m", "ui.app", "--help"], {}),
    f"work-agent run --demo {DEMO_QUESTION!r}": (["-m", "graph.cli", "run", "--demo", DEMO_QUESTION], {}),
}

# Where a `run --demo` goes, measured in one child process (each phase in order, seconds).
DEMO_PHASES = """
import sys, time
t = [time.perf_counter()]
import graph.cli
t.append(time.perf_counter())
from graph.demo.server import DemoConfig, DemoServer
t.append(time.perf_counter())
server = DemoServer(DemoConfig(token_delay=0.02)).start()
t.append(time.perf_counter())
import graph.graph, graph.runner, graph.checkpoint, graph.model
t.append(time.perf_counter())
server.stop()
t.append(time.perf_counter())
print(" ".join(f"{b - a:.3f}" for a, b in zip(t, t[1:])))
"""
PHASES = ("import graph.cli", "import the demo server", "start it", "import the agent stack", "stop the server")


def timed(args: list[str], env: dict[str, str], root: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) milliseconds of one run; CPU barely moves when the machine is busy."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, check=False)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    args = parser.parse_args()
    base = {
        **os.environ,
        "PYTHONPATH": str(args.root),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "AGENT_CHECKPOINT_DB": str(Path(os.environ.get("TMPDIR", "/tmp")) / "cli-startup-bench.sqlite"),
    }
    print(f"{'case':48} {'wall ms':>8} {'min':>6} {'CPU ms':>7}  (medians of {args.repeat} runs, {args.root})")
    for name, (cmd, extra) in CASES.items():
        env = {**base, **extra}
        timed(cmd, env, args.root)  # warm the file cache
        runs = [timed(cmd, env, args.root) for _ in range(args.repeat)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:48} {statistics.median(walls):8.0f} {min(walls):6.0f} {statistics.median(cpus):7.0f}")
    phases = []
    for _ in range(args.repeat):
        out = subprocess.run(
            [sys.executable, "-c", DEMO_PHASES], cwd=args.root, env=base, capture_output=True, text=True, check=True
        ).stdout
        phases.append([float(x) * 1000 for x in out.split()])
    medians = [statistics.median(p[i] for p in phases) for i in range(len(PHASES))]
    print("  run --demo, median ms: " + " · ".join(f"{n} {m:.0f}" for n, m in zip(PHASES, medians)))


if __name__ == "__main__":
    main()
