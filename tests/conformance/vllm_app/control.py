"""The test-only control routes added to vLLM's app: POST /_script, POST /_reset, GET /_stats."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tests.conformance.vllm_app.core import Reply, ScriptedEngineCore

BAD_SCRIPT = 'POST /_script wants {{"replies": [{{"text": "..."}}, ...]}}: {problem}'


def add_control_routes(app: FastAPI, core: ScriptedEngineCore) -> None:
    """Register the routes (outside /v1, so --api-key does not guard them; real vLLM has no such paths)."""

    async def script(body: dict[str, Any]) -> JSONResponse:
        replies = body.get("replies")
        if not isinstance(replies, list):
            return JSONResponse({"error": BAD_SCRIPT.format(problem="no replies list")}, status_code=400)
        try:
            parsed = [Reply(text=r) if isinstance(r, str) else Reply.from_json(r) for r in replies]
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": BAD_SCRIPT.format(problem=exc)}, status_code=400)
        core.script(parsed)
        return JSONResponse({"queued": core.stats()["scripted_left"]})

    async def reset() -> JSONResponse:
        core.reset()
        return JSONResponse({"reset": True})

    async def stats() -> JSONResponse:
        return JSONResponse(core.stats())

    app.add_api_route("/_script", script, methods=["POST"], include_in_schema=False)
    app.add_api_route("/_reset", reset, methods=["POST"], include_in_schema=False)
    app.add_api_route("/_stats", stats, methods=["GET"], include_in_schema=False)
