"""Per-run knobs (LangGraph `context_schema`): Studio shows them as a form; the CLI and UI fill them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from configs.prompts import SYSTEM_PROMPT


@dataclass(kw_only=True)
class Context:
    """Run-time settings for one turn. Empty values fall back to the Settings (env/.env)."""

    model: str = field(
        default="",
        metadata={"description": "Served model name. Empty: AGENT_MODEL, else the server's first model."},
    )
    max_steps: int = field(
        default=0,
        metadata={"description": "Most tool rounds before the agent must answer. 0: AGENT_MAX_STEPS."},
    )
    temperature: float = field(
        default=-1.0,
        metadata={"description": "Sampling temperature. Negative: AGENT_TEMPERATURE."},
    )
    max_tokens: int = field(
        default=0,
        metadata={"description": "Most tokens per model call. 0: AGENT_MAX_TOKENS."},
    )
    tools: list[str] | None = field(
        default=None,
        metadata={"description": "Names of the enabled tools. Unset: all tools; an empty list: none."},
    )
    system_prompt: str = field(
        default=SYSTEM_PROMPT,
        metadata={"description": "The system prompt."},
    )
    stream: bool = field(
        default=True,
        metadata={"description": "Stream the model's reply token by token."},
    )
    base_url: str = field(
        default="",
        metadata={
            "description": "OpenAI-compatible endpoint for this run, e.g. http://gpu-box:8000/v1. "
            "Empty: OPENAI_API_BASE (or AGENT_ENDPOINTS)."
        },
    )
    approve: Literal["ask", "auto", "deny"] = field(
        default="ask",
        metadata={
            "description": "Calls whose policy is `ask`: pause for a person (ask), run them (auto), or refuse "
            "them (deny, for runs nobody watches)."
        },
    )
    approval: dict[str, str] | None = field(
        default=None,
        metadata={"description": "Policy per tool name or pattern (auto, ask, deny), over the config file's."},
    )
    thinking: bool | None = field(
        default=None,
        metadata={"description": "Thinking models: false turns thinking off, true asks for it. Unset: AGENT_THINKING."},
    )
