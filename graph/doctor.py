"""`work-agent doctor`: check a model server the way someone setting up vLLM needs it checked."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx

from configs.profiles import parser_for
from configs.settings import Endpoint, Settings
from graph.model import auth_headers
from graph.recovery import has_tool_markup
from graph.thinking import THINK_END, THINK_START

Status = Literal["ok", "warn", "fail", "skip"]

PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_time",
        "description": "Get the current time in an IANA timezone.",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "IANA timezone, e.g. Asia/Tokyo"}},
            "required": ["timezone"],
        },
    },
}


@dataclass
class Check:
    """One row of the report."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Report:
    """All checks, in order."""

    base_url: str
    model: str | None = None
    checks: list[Check] = field(default_factory=list)
    ttft_ms: float | None = None
    tokens_per_s: float | None = None

    @property
    def ok(self) -> bool:
        """The agent can work: no check failed."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def endpoint_failed(self) -> bool:
        """The endpoint could not be reached or refused us (exit status 3)."""
        return any(c.status == "fail" and c.name in ("endpoint", "model served") for c in self.checks)

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or f"HTTP {resp.status_code}"
    err = body.get("error", body) if isinstance(body, dict) else body
    return str(err.get("message", err) if isinstance(err, dict) else err)


async def run_all(settings: Settings, *, quick: bool = False) -> list[Report]:
    """Check every configured endpoint at once; one report each, in the configured order."""
    return list(await asyncio.gather(*(run_checks(settings, quick=quick, endpoint=ep) for ep in settings.endpoints())))


async def run_checks(settings: Settings, *, quick: bool = False, endpoint: Endpoint | None = None) -> Report:
    """Run every check against one endpoint (default the first); later checks are skipped once one blocks them.

    `quick` skips the streaming and speed check (the web UI's status badge).
    """
    ep = endpoint or settings.endpoints()[0]
    report = Report(base_url=ep.base_url)
    timeout = httpx.Timeout(settings.agent_request_timeout, connect=10.0)
    async with httpx.AsyncClient(base_url=ep.base_url, headers=auth_headers(ep), timeout=timeout) as client:
        model = await _check_models(client, ep, ep.model or settings.agent_model, report)
        if model is None:
            for name in ("chat", "tool calling", "streaming"):
                report.add(name, "skip", "needs a reachable endpoint and a served model")
            return report
        report.model = model
        if await _check_chat(client, model, report):
            await _check_tools(client, model, report)
            if not quick:
                await _check_streaming(client, model, report)
    return report


async def _check_models(client: httpx.AsyncClient, ep: Endpoint, wanted: str | None, report: Report) -> str | None:
    try:
        resp = await client.get("/models")
    except httpx.HTTPError as exc:
        report.add(
            "endpoint",
            "fail",
            f"cannot connect to {ep.base_url} ({type(exc).__name__})",
            "start the server with ./run_vllm.sh, or set OPENAI_API_BASE / --base-url",
        )
        return None
    if resp.status_code == 401:
        report.add(
            "endpoint",
            "fail",
            "reachable, but the API key was refused (401 Unauthorized)",
            "set OPENAI_API_KEY to the key vLLM was started with (--api-key / VLLM_API_KEY)",
        )
        return None
    if resp.status_code != 200:
        report.add(
            "endpoint",
            "fail",
            f"GET /models answered HTTP {resp.status_code}: {_error_text(resp)}",
            "check that OPENAI_API_BASE ends in /v1 and points at an OpenAI-compatible server",
        )
        return None
    served = [card["id"] for card in resp.json().get("data", [])]
    report.add("endpoint", "ok", f"reachable; serves {', '.join(served) or 'nothing'}")
    if not served:
        report.add("model served", "fail", "the server lists no models", "check the vLLM log")
        return None
    if wanted and wanted not in served:
        report.add(
            "model served",
            "fail",
            f"{wanted} is not served",
            f"set AGENT_MODEL (or --model) to one of: {', '.join(served)}",
        )
        return None
    if wanted:
        report.add("model served", "ok", wanted)
        return wanted
    report.add("model served", "ok", f"{served[0]} (AGENT_MODEL unset: using the first model listed)")
    return served[0]


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/chat/completions", json=body)


async def _check_chat(client: httpx.AsyncClient, model: str, report: Report) -> bool:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with the single word OK."}],
        "max_tokens": 16,
        "temperature": 0,
    }
    try:
        resp = await _post(client, body)
    except httpx.HTTPError as exc:
        report.add("chat", "fail", f"request failed ({type(exc).__name__})", "check the vLLM log")
        return False
    if resp.status_code != 200:
        report.add("chat", "fail", f"HTTP {resp.status_code}: {_error_text(resp)}", "check the vLLM log")
        return False
    message = resp.json()["choices"][0]["message"]
    text = (message.get("content") or "").strip()
    report.add("chat", "ok", f"replied {text[:40]!r}")
    _check_thinking(message, report)
    return True


def _check_thinking(message: dict[str, Any], report: Report) -> None:
    """Does the model think, and does the server split its thinking out (a reasoning parser)?"""
    content = message.get("content") or ""
    if message.get("reasoning") or message.get("reasoning_content"):
        report.add("thinking", "ok", "the model thinks; the server's reasoning parser keeps it apart (on)")
    elif THINK_START in content or THINK_END in content:
        report.add(
            "thinking",
            "warn",
            "the model thinks, but the server has no reasoning parser: its thinking comes in the reply "
            "(the agent splits it out)",
            "start vLLM with --reasoning-parser qwen3 (run_vllm.sh picks it from the model's profile)",
        )
    else:
        report.add("thinking", "ok", "no thinking in the reply (not a thinking model, or thinking is off)")


async def _check_tools(client: httpx.AsyncClient, model: str, report: Report) -> None:
    parser = parser_for(model) or "hermes"
    body = {
        "model": model,
        "temperature": 0,
        "max_tokens": 200,
        "tools": [PROBE_TOOL],
        "messages": [{"role": "user", "content": "What time is it in Tokyo? Call the get_current_time tool."}],
    }
    resp = await _post(client, body)
    if resp.status_code == 400 and "tool" in _error_text(resp):
        report.add(
            "tool calling",
            "fail",
            _error_text(resp),
            f"restart vLLM with: vllm serve {model} --enable-auto-tool-choice --tool-call-parser {parser}"
            " (./run_vllm.sh adds them)",
        )
        return
    if resp.status_code != 200:
        report.add("tool calling", "fail", f"HTTP {resp.status_code}: {_error_text(resp)}", "check the vLLM log")
        return
    message = resp.json()["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    content = message.get("content") or ""
    if calls:
        fn = calls[0]["function"]
        report.add("tool calling", "ok", f"{fn['name']}({fn.get('arguments') or ''})")
    elif has_tool_markup(content):
        right = "qwen3_coder" if "<function=" in content else parser
        report.add(
            "tool calling",
            "fail",
            "the tool call came back as text: the server's tool-call parser does not match this model",
            f"restart vLLM with --tool-call-parser {right} (the agent recovers such calls, unreliably)",
        )
    else:
        report.add(
            "tool calling",
            "warn",
            f"the model answered without calling the tool: {content[:60]!r}",
            "tool calling is enabled; a small or non-instruct model may ignore tools",
        )


async def _check_streaming(client: httpx.AsyncClient, model: str, report: Report) -> None:
    body = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Count from 1 to 20, separated by spaces."}],
    }
    started = time.perf_counter()
    first: float | None = None
    chunks, done, completion = 0, False, None
    try:
        async with client.stream("POST", "/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                await resp.aread()
                report.add("streaming", "fail", f"HTTP {resp.status_code}: {_error_text(resp)}", "check the vLLM log")
                return
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    break
                event = json.loads(data)
                if "error" in event:
                    report.add("streaming", "fail", f"error mid-stream: {event['error']}", "check the vLLM log")
                    return
                if event.get("usage"):
                    completion = event["usage"].get("completion_tokens")
                for choice in event.get("choices", []):
                    if choice.get("delta", {}).get("content"):
                        chunks += 1
                        first = first or time.perf_counter()
    except httpx.HTTPError as exc:
        report.add("streaming", "fail", f"stream broke ({type(exc).__name__})", "check the vLLM log")
        return
    ended = time.perf_counter()
    if not done or not chunks:
        report.add("streaming", "fail", "the stream ended without text or without [DONE]", "check the vLLM log")
        return
    report.ttft_ms = ((first or ended) - started) * 1000
    decode_s = ended - (first or ended)
    tokens = completion or chunks
    report.tokens_per_s = tokens / decode_s if decode_s > 0 else None
    speed = f"{report.tokens_per_s:.1f} tok/s" if report.tokens_per_s else "n/a"
    report.add("streaming", "ok", f"{chunks} chunks; time to first token {report.ttft_ms:.0f} ms; decode {speed}")


def print_report(report: Report, *, as_json: bool = False) -> None:
    """Print the report as a table (or JSON) on stdout."""
    if as_json:
        print(json.dumps({"ok": report.ok, **asdict(report)}, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    marks = {"ok": "[green]✓ ok[/]", "warn": "[yellow]! warn[/]", "fail": "[red]✗ fail[/]", "skip": "[dim]- skip[/]"}
    table = Table(title=f"work-agent doctor · {report.base_url}", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("details")
    table.add_column("what to do")
    for c in report.checks:
        table.add_row(c.name, marks[c.status], c.detail, c.fix)
    console = Console(soft_wrap=False)
    console.print(table)
    verdict = (
        "[green]The agent can work with this endpoint.[/]"
        if report.ok
        else "[red]The agent cannot work with this endpoint yet: see 'what to do'.[/]"
    )
    console.print(verdict)


def print_endpoints(reports: list[Report], *, as_json: bool = False) -> None:
    """Print one row per endpoint (several endpoints configured): verdict, model, speed, first problem."""
    if as_json:
        print(
            json.dumps(
                {"ok": any(r.ok for r in reports), "endpoints": [{"ok": r.ok, **asdict(r)} for r in reports]},
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="work-agent doctor · endpoints in failover order", title_justify="left")
    for column in ("#", "endpoint", "result", "model", "time to first token", "details", "what to do"):
        table.add_column(column)
    for i, r in enumerate(reports, 1):
        problem = next((c for c in r.checks if c.status in ("fail", "warn")), None)
        mark = "[green]✓ ok[/]" if r.ok and problem is None else "[yellow]! warn[/]" if r.ok else "[red]✗ fail[/]"
        detail = f"{problem.name}: {problem.detail}" if problem else "chat, tool calling and streaming work"
        ttft = f"{r.ttft_ms:.0f} ms" if r.ttft_ms is not None else "-"
        table.add_row(str(i), r.base_url, mark, r.model or "-", ttft, detail, problem.fix if problem else "")
    console = Console(soft_wrap=False)
    console.print(table)
    working = sum(r.ok for r in reports)
    verdict = (
        f"[green]All {len(reports)} endpoints work.[/]"
        if working == len(reports)
        else f"[yellow]{working} of {len(reports)} endpoints work; the agent fails over to them.[/]"
        if working
        else "[red]No endpoint works yet: see 'what to do'.[/]"
    )
    console.print(verdict)
