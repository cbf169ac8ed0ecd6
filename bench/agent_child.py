"""Run `work-agent batch` (or a streaming probe) in this process, timing CPU after the imports are done."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time

import httpx

import graph.batch.run  # noqa: F401 - imported before the clock starts, like the baseline's imports
import graph.cli


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def stream_probe(questions: list[str]) -> list[float]:
    """Client-side delay from sending each answer request to its first token reaching stream_turn's caller."""
    from configs.settings import get_settings
    from graph.context import Context
    from graph.events import Token
    from graph.graph import build_graph
    from graph.runner import stream_turn

    sends: list[float] = []
    original = httpx.AsyncClient.send

    async def send(self, request, **kwargs):  # measurement only: when each model request leaves
        if request.url.path.endswith("/chat/completions"):
            sends.append(time.time())
        return await original(self, request, **kwargs)

    httpx.AsyncClient.send = send
    settings = get_settings()
    graph = build_graph(settings=settings)
    delays = []
    for q in questions:
        first: list[float] = []
        async for event in stream_turn(graph, q, thread_id="probe", context=Context(stream=True, max_steps=4)):
            if isinstance(event, Token) and not first and len(sends) % 2 == 0:
                first.append(time.time())
        delays.append(first[0] - sends[-1])
    return delays


def main() -> None:
    report = os.environ["BENCH_REPORT"]
    if sys.argv[1] == "probe":
        questions = [json.loads(line)["question"] for line in open(sys.argv[2], encoding="utf-8")]
        out = {"probe_s": asyncio.run(stream_probe(questions))}
    else:
        start = cpu()
        try:
            graph.cli.cli.main(sys.argv[1:], prog_name="work-agent", standalone_mode=False)
        except SystemExit as done:
            if done.code not in (0, None):
                raise
        out = {"cpu_s": cpu() - start}
    with open(report, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
