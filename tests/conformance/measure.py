"""Print the harness's costs: vLLM import time, server start (cold and cached model folder), memory, latency."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.conformance.harness import RealVllm, check_installed, vllm_python
from tests.conformance.vllm_app.model_folder import CACHE_VAR

FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes")
IMPORTS = (
    "import time; t = time.monotonic(); import vllm.entrypoints.cli.main, vllm.entrypoints.cli.serve, "
    "vllm.v1.engine.async_llm, vllm.entrypoints.launchers.app; print(time.monotonic() - t)"
)


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def _start(log_dir: Path, label: str) -> RealVllm:
    server = RealVllm(FLAGS, log_dir).start()
    print(f"start, {label}: {server.startup_seconds:.1f} s to /health 200; RSS {_mib(server.rss_bytes())}", flush=True)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.measure", description=__doc__)
    parser.add_argument("--requests", type=int, default=20, help="chat completions to time (default 20)")
    args = parser.parse_args()
    print(f"vLLM {check_installed()} at {vllm_python()}", flush=True)
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu"}
    imported = subprocess.run([str(vllm_python()), "-c", IMPORTS], capture_output=True, text=True, env=env, check=True)
    print(f"import of vLLM's CLI, AsyncLLM and app: {float(imported.stdout.split()[-1]):.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="wa-conformance-measure-") as tmp:
        os.environ[CACHE_VAR] = str(Path(tmp) / "cache")
        _start(Path(tmp), "cold (model folder built first)").stop()
        server = _start(Path(tmp), "model folder cached")
        try:
            body = {"messages": [{"role": "user", "content": "What's the weather in Tokyo?"}]}
            took = []
            with httpx.Client(timeout=60) as client:
                for _ in range(args.requests):
                    began = time.monotonic()
                    client.post(f"{server.base_url}/chat/completions", json=body).raise_for_status()
                    took.append(time.monotonic() - began)
            took.sort()
            print(
                f"{args.requests} chat completions: median {took[len(took) // 2] * 1000:.0f} ms, "
                f"max {took[-1] * 1000:.0f} ms; RSS after {_mib(server.rss_bytes())}, "
                f"peak {_mib(server.rss_bytes('VmHWM'))}",
                flush=True,
            )
        finally:
            server.close()


if __name__ == "__main__":
    main()
