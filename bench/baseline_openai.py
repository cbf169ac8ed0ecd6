"""Baseline: a minimal raw OpenAI SDK tool-calling loop (asyncio), the same workload as `work-agent batch`.

Prints one JSON line with its processing CPU time (imports excluded) and, with --stream-probe, the delay
between sending the answer request and its first token reaching this code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

# The same request payload as the agent's (system prompt and the three tool schemas), so both clients put
# the same bytes on the wire; built before the CPU clock starts.
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402
from openai import AsyncOpenAI

from configs.prompts import SYSTEM_PROMPT  # noqa: E402
from tools import TOOLS as AGENT_TOOLS  # noqa: E402

TOOLS = [convert_to_openai_tool(t) for t in AGENT_TOOLS]


def get_current_time(timezone: str = "UTC") -> str:
    return datetime.now(ZoneInfo(timezone)).isoformat()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def ask(client: AsyncOpenAI, model: str, q: str, stream: bool, probe: list[float]) -> str:
    messages: list[dict] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": q}]
    for _ in range(4):
        if stream:
            calls: dict[int, dict] = {}
            text = []
            resp = await client.chat.completions.create(
                model=model, messages=messages, tools=TOOLS, stream=True, temperature=0.2, max_completion_tokens=512
            )
            first = None
            async for chunk in resp:
                for choice in chunk.choices:
                    d = choice.delta
                    if d.content:
                        first = first or time.time()
                        text.append(d.content)
                    for tc in d.tool_calls or []:
                        c = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                        c["id"] = c["id"] or tc.id
                        if tc.function and tc.function.name:
                            c["name"] = tc.function.name
                        if tc.function and tc.function.arguments:
                            c["arguments"] += tc.function.arguments
            if first and not calls:
                probe.append(first - SENT[-1])  # from the request leaving httpx, as for the agent
            tool_calls = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"] or "{}"},
                }
                for c in calls.values()
            ]
            content = "".join(text)
        else:
            resp = await client.chat.completions.create(
                model=model, messages=messages, tools=TOOLS, temperature=0.2, max_completion_tokens=512
            )
            msg = resp.choices[0].message
            content = msg.content or ""
            tool_calls = [tc.model_dump() for tc in msg.tool_calls or []]
        if not tool_calls:
            return content
        messages.append({"role": "assistant", "content": content or None, "tool_calls": tool_calls})
        for tc in tool_calls:
            args = json.loads(tc["function"]["arguments"] or "{}")
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": get_current_time(**args)})
    return content


SENT: list[float] = []


def note_sends() -> None:
    """Note when each request leaves httpx (the streaming probe), at the same point as bench/agent_child.py."""
    from openai._base_client import AsyncHttpxClientWrapper

    cls = next(c for c in AsyncHttpxClientWrapper.__mro__ if c.__name__ == "AsyncClient")  # httpx (or httpx2)
    original = cls.send

    async def send(self, request, **kwargs):
        SENT.append(time.time())
        return await original(self, request, **kwargs)

    cls.send = send


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    questions = [json.loads(line)["question"] for line in open(args.input, encoding="utf-8")]
    if args.stream:
        note_sends()
    client = AsyncOpenAI(base_url=args.base_url, api_key="EMPTY", max_retries=2)
    sem = asyncio.Semaphore(args.concurrency)
    probe: list[float] = []
    answered = 0

    async def one(q: str) -> None:
        nonlocal answered
        async with sem:
            if await ask(client, args.model, q, args.stream, probe):
                answered += 1

    start = cpu()
    await asyncio.gather(*(one(q) for q in questions))
    print(json.dumps({"cpu_s": cpu() - start, "answered": answered, "probe_s": probe}))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
