"""The one trace record type: a model call or a tool call, shared by every interface."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field


class Step(BaseModel):
    """One step of a turn. Stored in the graph state as a plain dict (`Step.model_dump()`)."""

    kind: Literal["model", "tool"]
    turn: int = Field(description="1-based number of the user question in the thread")
    node: str = Field(description="graph node that produced it: plan, answer or call_tool")
    started_at: float = Field(description="wall-clock start, seconds since the epoch")
    duration_ms: float
    status: Literal["ok", "error"] = "ok"
    recovered: bool = Field(False, description="tool call recovered from <tool_call> text")
    # model calls
    model: str | None = None
    ttft_ms: float | None = Field(None, description="time to first streamed chunk")
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None
    tool_calls: list[str] = Field(default_factory=list, description="names of the tools it asked for")
    endpoint: str | None = Field(None, description="host:port of the endpoint that answered")
    skipped: list[str] = Field(
        default_factory=list, description="endpoints passed over before it, each 'host:port: why'"
    )
    # tool calls
    name: str | None = None
    call_id: str | None = None
    arguments: dict[str, Any] | None = None
    result: str | None = None
    error: str | None = None

    def summary(self, width: int = 100) -> str:
        """One line for a terminal: what ran, how long, and what came back."""
        secs = f"{self.duration_ms / 1000:.2f}s"
        if self.kind == "model":
            parts = [f"model {self.model or '?'}", secs]
            if self.ttft_ms is not None:
                parts.append(f"ttft {self.ttft_ms:.0f}ms")
            if self.tokens_in is not None:
                parts.append(f"{self.tokens_in}→{self.tokens_out} tok")
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
        return f"{mark} {self.name}{tag} {args} {secs} → {short}"


CUT_NOTE = "the answer was cut at the token limit: raise AGENT_MAX_TOKENS, or ask it to continue"


def cut_at_token_limit(steps: list[Step]) -> bool:
    """The turn's last model call ended at the token limit (finish_reason "length"), so its answer is cut."""
    last = next((s for s in reversed(steps) if s.kind == "model"), None)
    return last is not None and last.finish_reason == "length"


def steps_of_turn(records: list[dict[str, Any]], turn: int) -> list[Step]:
    """The steps recorded for one turn, as Step objects."""
    return [Step.model_validate(r) for r in records if r.get("turn") == turn]


def usage_of(steps: list[Step]) -> dict[str, int]:
    """Token totals over the model calls of some steps."""
    tin = sum(s.tokens_in or 0 for s in steps if s.kind == "model")
    tout = sum(s.tokens_out or 0 for s in steps if s.kind == "model")
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
