"""Prometheus metrics derived from trace records, on prometheus-client's process-wide default REGISTRY.

`graph.obs.observer.TurnObserver` counts each turn from its event stream (`record_question`, `record_step` as
steps are recorded, `record_answer` at the end; `record_turn` does the last two at once); the UI
serves them at `/metrics` (`metrics_asgi_app`), `work-agent batch --metrics-port` on its own port
(`start_metrics_server`). Labels stay low-cardinality: never a question, thread id or argument.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_asgi_app,
    start_http_server,
    write_to_textfile,
)

from graph.trace import Step

INTERFACES = ("cli", "ui", "api", "batch")
STATUSES = ("ok", "error", "stopped")
OTHER = "other"
UNKNOWN_ENDPOINT = "unknown"
MAX_TOOL_LABELS = 50

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30)
MODEL_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
TOOL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STEP_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)

disable_created_metrics()  # no *_created gauge next to every series: Prometheus and Grafana do not need them

QUESTIONS = Counter("work_agent_questions_total", "Questions asked.", ["interface"])
ANSWERS = Counter(
    "work_agent_answers_total", "Turns finished, by outcome (ok, error, stopped).", ["interface", "status"]
)
STEPS_PER_ANSWER = Histogram("work_agent_steps_per_answer", "Tool calls per answered question.", buckets=STEP_BUCKETS)
TOOL_CALLS = Counter("work_agent_tool_calls_total", "Tool calls, by tool and status.", ["tool", "status"])
TOOL_SECONDS = Histogram("work_agent_tool_duration_seconds", "Time a tool call took.", ["tool"], buckets=TOOL_BUCKETS)
MODEL_CALLS = Counter("work_agent_model_calls_total", "Model requests, by the endpoint that answered.", ["endpoint"])
MODEL_TTFT = Histogram(
    "work_agent_model_ttft_seconds", "Time to the first streamed chunk.", ["endpoint"], buckets=TTFT_BUCKETS
)
MODEL_SECONDS = Histogram(
    "work_agent_model_duration_seconds", "Time a model request took.", ["endpoint"], buckets=MODEL_BUCKETS
)
TOKENS = Counter("work_agent_tokens_total", "Tokens, by endpoint and kind (prompt, completion).", ["endpoint", "kind"])
TOOL_DECISIONS = Counter(
    "work_agent_tool_decisions_total",
    "Tool calls that needed a decision, by what was decided (approved, edited, rejected, denied, allowed, superseded).",
    ["decision"],
)
DECISIONS = ("allowed", "approved", "edited", "rejected", "denied", "superseded")
MCP_SERVERS = Gauge(
    "work_agent_mcp_servers", "Configured MCP servers, by state (ready, failed, starting, disabled).", ["state"]
)
RECOVERED = Counter("work_agent_recovered_tool_calls_total", "Tool calls recovered from <tool_call> text.")
FALLBACKS = Counter(
    "work_agent_fallbacks_total", "Endpoints passed over, by the skipped endpoint and why.", ["endpoint", "reason"]
)

_seen_tools: set[str] = set()
_lock = threading.Lock()


def _prefill() -> None:
    """Create every interface/status series at zero, so rate() and the dashboard work from the first scrape."""
    for interface in INTERFACES:
        QUESTIONS.labels(interface)
        for status in STATUSES:
            ANSWERS.labels(interface, status)
    for decision in DECISIONS:
        TOOL_DECISIONS.labels(decision)


_prefill()


def tool_label(step: Step) -> str:
    """The tool label: the tool's name, "other" for a tool the graph does not have (a name the model made up),
    and "other" past the first 50 names seen, so a stream of invented names cannot grow the series."""
    if step.unknown_tool or not step.name:
        return OTHER
    with _lock:
        if step.name in _seen_tools or len(_seen_tools) < MAX_TOOL_LABELS:
            _seen_tools.add(step.name)
            return step.name
    return OTHER


def _label(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


def record_question(interface: str) -> None:
    """Count one question asked through `interface` (cli, ui, api or batch)."""
    QUESTIONS.labels(_label(interface, INTERFACES)).inc()


def record_answer(steps: list[Step], *, interface: str, status: str) -> None:
    """Count a finished turn (status ok, error or stopped) and its tool calls (its steps are counted as they come)."""
    ANSWERS.labels(_label(interface, INTERFACES), _label(status, STATUSES)).inc()
    if status != "error":
        STEPS_PER_ANSWER.observe(sum(1 for s in steps if s.kind == "tool"))


def record_turn(steps: list[Step], *, interface: str, status: str) -> None:
    """Count a finished turn and everything its steps did (for a turn's steps seen all at once)."""
    record_answer(steps, interface=interface, status=status)
    for step in steps:
        record_step(step)


def record_step(step: Step) -> None:
    """Count one trace record: a model or tool call, and the endpoints skipped before it."""
    if step.kind == "tool":
        _record_tool(step)
    else:
        _record_model(step)
    for skip in step.skipped:
        FALLBACKS.labels(skip.endpoint, skip.reason).inc()


def _record_tool(step: Step) -> None:
    tool = tool_label(step)
    TOOL_CALLS.labels(tool, step.status).inc()
    TOOL_SECONDS.labels(tool).observe(step.duration_ms / 1000)
    if step.recovered:
        RECOVERED.inc()
    if step.decision:
        TOOL_DECISIONS.labels(_label(step.decision, DECISIONS)).inc()


def record_mcp_servers(states: list[str]) -> None:
    """Set the MCP server gauge from every configured server's state (the server names are not labels)."""
    for state in ("ready", "failed", "starting", "disabled"):
        MCP_SERVERS.labels(state).set(sum(1 for s in states if s == state))


def _record_model(step: Step) -> None:
    endpoint = step.endpoint or UNKNOWN_ENDPOINT
    MODEL_CALLS.labels(endpoint).inc()
    MODEL_SECONDS.labels(endpoint).observe(step.duration_ms / 1000)
    if step.ttft_ms is not None:
        MODEL_TTFT.labels(endpoint).observe(step.ttft_ms / 1000)
    if step.tokens_in:
        TOKENS.labels(endpoint, "prompt").inc(step.tokens_in)
    if step.tokens_out:
        TOKENS.labels(endpoint, "completion").inc(step.tokens_out)


class MetricsApp:
    """prometheus-client's ASGI app as a class, so Starlette serves it at an exact path: Route("/metrics", app)."""

    def __init__(self) -> None:
        self.app = make_asgi_app(REGISTRY)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer any request with the exposition (gzip and OpenMetrics when the scraper asks)."""
        await self.app(scope, receive, send)


def metrics_asgi_app() -> MetricsApp:
    """An ASGI app serving the metrics in Prometheus text format, for a Route or a Mount."""
    return MetricsApp()


@dataclass
class MetricsServer:
    """The stand-alone metrics HTTP server of `start_metrics_server`; `stop()` shuts it down."""

    server: Any
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on (the real one when started on port 0)."""
        return int(self.server.server_port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve /metrics on host:port in a daemon thread (port 0 picks a free one)."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    return MetricsServer(server, thread)


def write_metrics_file(path: str) -> None:
    """Write every metric to `path` atomically, in the format node_exporter's textfile collector reads."""
    write_to_textfile(path, REGISTRY)
