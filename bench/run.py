"""Benchmark: `work-agent batch` against a raw OpenAI SDK loop, side by side, on a latency-simulating server.

Run: python bench/run.py [--questions 256] [--concurrency 32 128]

The scripted vLLM-compatible server (in this process; the clients are separate processes) sleeps for a
time to first token and per output token, so concurrent requests overlap like a batching server, and it
records each reply's own busy time. Efficiency = ideal wall / actual wall, where ideal =
ceil(questions / concurrency) x the server's busy time per question and actual = first request to last reply.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import script, write_input  # noqa: E402
from graph.demo.server import DemoConfig, DemoServer  # noqa: E402

MODEL = "Qwen/Qwen2.5-7B-Instruct"


def run_client(
    name: str, cmd: list[str], env: dict[str, str], server: DemoServer, n: int, concurrency: int, work: Path
) -> dict:
    server.reset()
    script(server, n)
    report = work / f"{name}.json"
    report.unlink(missing_ok=True)
    with open(work / f"{name}.out", "w") as out, open(work / f"{name}.err", "w") as err:
        proc = subprocess.Popen(cmd, env={**env, "BENCH_REPORT": str(report)}, stdout=out, stderr=err, cwd=work)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        raise SystemExit(f"{name} failed ({proc.returncode}); see {work / (name + '.err')}")
    timings = list(server.timings)
    span = max(t["end"] for t in timings) - min(t["arrived"] for t in timings)
    busy_per_q = sum(t["end"] - t["arrived"] for t in timings) / n
    ideal = math.ceil(n / concurrency) * busy_per_q
    data = json.loads(report.read_text()) if report.exists() else json.loads((work / f"{name}.out").read_text())
    return {
        "name": name,
        "concurrency": concurrency,
        "requests": len(timings),
        "wall_s": span,
        "ideal_s": ideal,
        "efficiency": ideal / span,
        "cpu_ms_per_q": data["cpu_s"] * 1000 / n,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def probe(name: str, cmd: list[str], env: dict[str, str], server: DemoServer, n: int, work: Path) -> float:
    """Median client-side delay of the answer's first token, minus the server's own time to first token."""
    server.reset()
    script(server, n)
    report = work / f"{name}.json"
    with open(work / f"{name}.out", "w") as out, open(work / f"{name}.err", "w") as err:
        subprocess.run(cmd, env={**env, "BENCH_REPORT": str(report)}, stdout=out, stderr=err, cwd=work, check=True)
    data = json.loads(report.read_text()) if report.exists() else json.loads((work / f"{name}.out").read_text())
    answers = [t for i, t in enumerate(server.timings) if i % 2 == 1]  # sequential: plan, answer, plan, ...
    server_ttft = [t["first_token"] - t["arrived"] for t in answers]
    return (statistics.median(data["probe_s"]) - statistics.median(server_ttft)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=256)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--probe-questions", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="work-agent-bench-"))
    questions = write_input(work / "questions.jsonl", args.questions)
    probe_q = write_input(work / "probe.jsonl", args.probe_questions)
    config = DemoConfig(first_token_delay=0.150, token_delay=0.005)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AGENT_MODEL": MODEL,
        "AGENT_MAX_RETRIES": "2",
        "AGENT_CHECKPOINT_DB": str(work / "threads.sqlite"),
        "OPENAI_API_KEY": "EMPTY",
    }
    rows = []
    with DemoServer(config) as server:
        env["OPENAI_API_BASE"] = server.base_url
        py = sys.executable
        for c in args.concurrency:
            rows.append(
                run_client(
                    "raw-openai-sdk",
                    [
                        py,
                        str(ROOT / "bench/baseline_openai.py"),
                        "--base-url",
                        server.base_url,
                        "--model",
                        MODEL,
                        "--input",
                        str(questions),
                        "--concurrency",
                        str(c),
                    ],
                    env,
                    server,
                    args.questions,
                    c,
                    work,
                )
            )
            out = work / f"answers-{c}.jsonl"
            out.unlink(missing_ok=True)
            rows.append(
                run_client(
                    "work-agent-batch",
                    [
                        py,
                        str(ROOT / "bench/agent_child.py"),
                        "batch",
                        str(questions),
                        "-o",
                        str(out),
                        "--concurrency",
                        str(c),
                    ],
                    env,
                    server,
                    args.questions,
                    c,
                    work,
                )
            )
        raw_delay = probe(
            "probe-raw",
            [
                py,
                str(ROOT / "bench/baseline_openai.py"),
                "--base-url",
                server.base_url,
                "--model",
                MODEL,
                "--input",
                str(probe_q),
                "--concurrency",
                "1",
                "--stream",
            ],
            env,
            server,
            args.probe_questions,
            work,
        )
        agent_delay = probe(
            "probe-agent",
            [py, str(ROOT / "bench/agent_child.py"), "probe", str(probe_q)],
            env,
            server,
            args.probe_questions,
            work,
        )
    print(
        f"work-agent benchmark · {args.questions} questions (1 tool step + ~30-token answer) · "
        f"TTFT {config.first_token_delay * 1000:.0f} ms, {config.token_delay * 1000:.0f} ms/token · "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'client':18} {'conc':>5} {'efficiency':>10} {'wall s':>7} {'ideal s':>8} {'CPU ms/q':>9} {'peak RSS MB':>12}"
    )
    for r in rows:
        print(
            f"{r['name']:18} {r['concurrency']:5d} {r['efficiency']:10.3f} {r['wall_s']:7.2f} {r['ideal_s']:8.2f} "
            f"{r['cpu_ms_per_q']:9.2f} {r['peak_rss_mb']:12.1f}"
        )
    for c in args.concurrency:
        raw, ours = (
            next(r for r in rows if r["name"] == n and r["concurrency"] == c)
            for n in ("raw-openai-sdk", "work-agent-batch")
        )
        print(f"concurrency {c}: CPU per question {ours['cpu_ms_per_q'] / raw['cpu_ms_per_q']:.2f}x the raw loop")
    print(
        f"streaming delay (first answer token to caller, minus server TTFT, median of {args.probe_questions}): "
        f"raw SDK {raw_delay:.2f} ms · work-agent {agent_delay:.2f} ms"
    )
    print(f"(work files in {work})")


if __name__ == "__main__":
    main()
