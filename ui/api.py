"""The UI's programmatic endpoint: `gradio_client.Client(url).predict(question, thread_id, api_name="/ask")`."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from graph.context import Context
from graph.errors import explain
from graph.model import resolve_model_name
from graph.runner import new_thread_id, run_turn
from ui.backend import Backend


def register_api(backend: Backend) -> None:
    """Add the named `/ask` endpoint to the Blocks being built."""

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

    gr.api(ask, api_name="ask", concurrency_limit="default")
