"""The UI's programmatic endpoints: `/ask` (a question) and `/approve` (decisions on the calls a turn paused for).

`gradio_client.Client(url).predict(question, thread_id, api_name="/ask")`; when the result's `pending` lists
calls, `predict(thread_id, '{"decisions": [{"type": "approve"}]}', api_name="/approve")` goes on.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from graph.context import Context
from graph.errors import AgentError, explain
from graph.model import resolve_model_name
from graph.runner import new_thread_id, run_turn
from ui.backend import Backend

DECISIONS_EXAMPLE = '{"decisions": [{"type": "approve"}]}'


def register_api(backend: Backend) -> None:
    """Add the named `/ask` and `/approve` endpoints to the Blocks being built."""

    async def ask(question: str, thread_id: str = "") -> dict[str, Any]:
        """Ask the agent a question. Returns the answer, the thread id and the turn's trace records.

        Args:
            question: The question, in any language.
            thread_id: A conversation to continue; empty starts a new one.
        """
        settings = backend.settings
        thread_id = thread_id.strip() or new_thread_id()
        try:
            graph = await backend.graph()
            model = await resolve_model_name(settings)
            context = Context(model=model, max_steps=settings.agent_max_steps)
            result = await run_turn(graph, question, thread_id=thread_id, context=context, interface="api")
        except Exception as exc:  # noqa: BLE001 - reported as one line, the API never leaks a traceback
            raise gr.Error(str(explain(exc, base_url=settings.openai_api_base, model=settings.agent_model))) from None
        return json.loads(json.dumps(result.as_json(), ensure_ascii=False))

    async def approve(thread_id: str, decisions: str) -> dict[str, Any]:
        """Decide on the tool calls a turn paused for, and let it go on. Returns what `/ask` returns.

        Args:
            thread_id: The conversation whose turn is waiting (its `pending` lists the calls).
            decisions: JSON: {"decisions": [...]} with one decision per pending call, in order, or
                {"decisions": {"<tool_call_id>": ...}}; a decision is {"type": "approve"},
                {"type": "edit", "edited_action": {"name": ..., "args": {...}}} or {"type": "reject", "message": ...}.
        """
        settings = backend.settings
        try:
            resume = json.loads(decisions)
        except json.JSONDecodeError as exc:
            raise gr.Error(f"decisions must be JSON, e.g. {DECISIONS_EXAMPLE} ({exc.msg})") from None
        if not isinstance(resume, dict | list):
            raise gr.Error(f"decisions must be a JSON object or list, e.g. {DECISIONS_EXAMPLE}")
        try:
            graph = await backend.graph()
            model = await resolve_model_name(settings)
            context = Context(model=model, max_steps=settings.agent_max_steps)
            result = await run_turn(
                graph, None, thread_id=thread_id.strip(), context=context, interface="api", resume=resume
            )
        except AgentError as exc:  # StaleApproval: nothing waits on that thread
            raise gr.Error(str(exc)) from None
        except Exception as exc:  # noqa: BLE001
            raise gr.Error(str(explain(exc, base_url=settings.openai_api_base, model=settings.agent_model))) from None
        return json.loads(json.dumps(result.as_json(), ensure_ascii=False))

    gr.api(ask, api_name="ask", concurrency_limit="default")
    gr.api(approve, api_name="approve", concurrency_limit="default")
