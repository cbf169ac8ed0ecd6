"""The benchmark workload: N questions, each one tool step and a ~30-token answer, scripted on the server."""

from __future__ import annotations

import json
from pathlib import Path

from graph.demo.server import DemoServer, tool_call_text

ANSWER = (
    "The current time in UTC is shown above by the clock tool, and it is a fine moment to "
    "check the weather or do some arithmetic if you need it, thanks."
)


def question(i: int) -> str:
    return f"What time is it in UTC right now? [q{i:04d}]"


def script(server: DemoServer, n: int) -> None:
    """For each question: a get_current_time call, then the answer (matched by the question's tag)."""
    for i in range(n):
        server.script_for(f"[q{i:04d}]", tool_call_text("get_current_time", {"timezone": "UTC"}), ANSWER)


def write_input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i:04d}", "question": question(i)}) + "\n" for i in range(n)))
    return path
