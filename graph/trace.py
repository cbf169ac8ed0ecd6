"""The one trace record type: a model call or a tool call, shared by every interface."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

StopReason = Literal["max_steps", "repeated_failure", "length", "user"]
"""Why a turn ended early: the step budget, a failing call that repeats, the token limit, or the user's Stop."""
SkipReason = Literal["cooldown", "connection", "timeout", "http_429", "http_5xx", "http_4xx", "other"]
"""Why an endpoint was passed over (the low-cardinality metric label)."""


def http_reason(code: int) -> SkipReason:
    """The skip reason of an HTTP status an endpoint answered with."""
    return "http_429" if code == 429 else "http_5xx" if code >= 500 else "http_4xx"


class Skip(BaseModel):
    """An endpoint passed over before the one that answered a model call."""

    endpoint: str = Field(description="host:port of the endpoint (behind a router: the upstream's address)")
    reason: SkipReason
    why: str = Field(description="what happened, e.g. 'connection failed (ConnectError)', 'HTTP 503'")

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.why}"

    @classmethod
    def from_text(cls, entry: str) -> Skip:
        """A skip recorded as 'host:port: why' text by earlier versions (old threads and batch rows)."""
        endpoint, sep, why = entry.partition(": ")
        if not sep:
            return cls(endpoint="unknown", reason="other", why=entry)
        why = why.strip()
        reason: SkipReason = "other"
        if why.startswith("cooling down"):
            reason = "cooldown"
        elif why.startswith("connection failed"):
            reason = "connection"
        elif why.startswith("timed out"):
            reason = "timeout"
        elif why.startswith("HTTP ") and why[5:8].isdigit():
            reason = http_reason(int(why[5:8]))
        return cls(endpoint=endpoint.strip() or "unknown", reason=reason, why=why)


class Step(BaseModel):
    """One step of a turn. Stored in the graph state as a plain dict (`Step.model_dump()`)."""

    kind: Literal["model", "tool"]
    turn: int = Field(description="1-based number of the user question in the thread")
    node: str = Field(description="graph node that produced it: plan, answer or call_tool")
    started_at: float = Field(description="wall-clock start, seconds since the epoch")
    duration_ms: float
    status: Literal["ok", "error", "cancelled"] = "ok"
    recovered: bool = Field(False, description="tool call recovered from <tool_call> text")
    stopped: StopReason | None = Field(None, description="set on the step that ended the turn early, and why")
    # model calls
    model: str | None = None
    ttft_ms: float | None = Field(None, description="time to first streamed chunk")
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None
    tool_calls: list[str] = Field(default_factory=list, description="names of the tools it asked for")
    reasoning: str | None = Field(None, description="a thinking model's reasoning (never sent back to it)")
    reasoning_tokens: int | None = Field(None, description="usage.completion_tokens_details.reasoning_tokens")
    thinking_ms: float | None = Field(None, description="time from the first reasoning token to the first answer token")
    answer_from_reasoning: bool = Field(
        False, description="the reply came only as reasoning and was used as the answer"
    )
    endpoint: str | None = Field(None, description="host:port of the endpoint that answered")
    skipped: list[Skip] = Field(default_factory=list, description="endpoints passed over before it")
    # tool calls
    name: str | None = None
    call_id: str | None = None
    arguments: dict[str, Any] | None = None
    result: str | None = None
    error: str | None = None
    unknown_tool: bool = Field(False, description="the model asked for a tool the graph does not have")
    server: str | None = Field(None, description="the MCP server the tool comes from")
    decision: str | None = Field(
        None, description="approval: allowed, approved, edited, rejected, denied or superseded (None: auto)"
    )

    @field_validator("skipped", mode="before")
    @classmethod
    def _legacy_skips(cls, value: Any) -> Any:
        return [Skip.from_text(v) if isinstance(v, str) else v for v in value or []]

    def summary(self, width: int = 100) -> str:
        """One line for a terminal: what ran, how long, and what came back."""
        secs = f"{self.duration_ms / 1000:.2f}s"
        if self.kind == "model":
            parts = [f"model {self.model or '?'}", secs]
            if self.ttft_ms is not None:
                parts.append(f"ttft {self.ttft_ms:.0f}ms")
            if self.tokens_in is not None:
                parts.append(f"{self.tokens_in}→{self.tokens_out} tok")
            if self.thinking_ms is not None or self.reasoning_tokens:
                thought = f"thought {self.thinking_ms / 1000:.1f}s" if self.thinking_ms is not None else "thought"
                parts.append(f"{thought} ({self.reasoning_tokens} tok)" if self.reasoning_tokens else thought)
            if self.tool_calls:
                parts.append("calls " + ", ".join(self.tool_calls))
            if self.recovered:
                parts.append("recovered from text")
            return " · ".join(parts)
        args = json.dumps(self.arguments or {}, ensure_ascii=False)
        outcome = self.error if self.status == "error" else self.result
        short = " ".join((outcome or "").split())
        if len(short) > width:
            short = short[: width - 1] + "…"
        mark = "✗" if self.status == "error" else "✓"
        tag = " (recovered)" if self.recovered else ""
        if self.server:
            tag += f" [{self.server}]"
        if self.decision:
            tag += f" ({self.decision})"
        return f"{mark} {self.name}{tag} {args} {secs} → {short}"


STOP_NOTES: dict[str, str] = {
    "max_steps": "stopped early: used {steps} (raise AGENT_MAX_STEPS or --max-steps); the answer is a best effort",
    "repeated_failure": "stopped early: a tool call kept failing ({detail}); the answer is a best effort",
    "length": "the answer was cut at the token limit: raise AGENT_MAX_TOKENS, or ask it to continue",
    "user": "stopped",
}
"""How every interface words a stop reason (the CLI in parentheses, the UI in italics, batch as the error)."""


def stop_note(stopped: str, steps: list[Step], max_steps: int | None = None) -> str:
    """The wording of why a turn ended early, with its step budget and the last tool error filled in."""
    rounds = sum(1 for s in steps if s.kind == "model" and s.tool_calls)
    failed = [s.error for s in steps if s.kind == "tool" and s.status == "error" and s.error]
    detail = " ".join(failed[-1].split())[:200] if failed else "no details"
    n = max_steps or rounds
    budget = "its one tool step" if n == 1 else f"all {n} tool steps" if n else "all its tool steps"
    template = STOP_NOTES.get(stopped, "stopped early: {stopped}")
    return template.format(steps=budget, detail=detail, stopped=stopped)


def stop_reason_of(steps: list[Step]) -> StopReason | None:
    """Why the turn these steps belong to ended early, as the graph recorded it (None: it did not)."""
    return next((s.stopped for s in reversed(steps) if s.stopped), None)


def usage_of(steps: list[Step]) -> dict[str, int]:
    """Token totals over the model calls of some steps."""
    tin = sum(s.tokens_in or 0 for s in steps if s.kind == "model")
    tout = sum(s.tokens_out or 0 for s in steps if s.kind == "model")
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
