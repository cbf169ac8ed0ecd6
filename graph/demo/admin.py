"""vLLM 0.33's routes beside the OpenAI API that the scripted server has: /load and /tokenize."""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from graph.demo.hermes import tokenize
from graph.demo.prompt import render_prompt
from graph.demo.protocol import ApiError, check_model, parse_body

# Qwen2.5's added tokens keep their real ids; other pieces get stable stand-in ids below them (the
# scripted tokenizer is not Qwen's BPE, so those ids are not Qwen's).
SPECIAL_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<think>": 151667,
    "</think>": 151668,
}
_PLAIN_IDS = 151643
TOKENIZE_WANTS = '1 validation error:\n  /tokenize wants {"prompt": "..."} or {"messages": [...]}'


def token_id(piece: str) -> int:
    """A piece's id: the real one for special tokens, else a stable stand-in."""
    if piece in SPECIAL_IDS:
        return SPECIAL_IDS[piece]
    return int.from_bytes(hashlib.blake2b(piece.encode("utf-8"), digest_size=4).digest()) % _PLAIN_IDS


def load(running: int) -> Response:
    """GET /load (serve/instrumentator/basic.py): the requests being served now."""
    return JSONResponse({"server_load": running})


def _pieces(body: dict[str, Any], family: str) -> list[str]:
    if isinstance(body.get("prompt"), str):
        return tokenize(body["prompt"])
    if isinstance(body.get("messages"), list):
        prompt = render_prompt(body, family, generation_prompt=body.get("add_generation_prompt", True) is not False)
        return tokenize(prompt)
    raise ApiError(400, TOKENIZE_WANTS, "Bad Request")


async def tokenize_route(request: Request, served: list[str], max_model_len: int, family: str) -> Response:
    """POST /tokenize (serve/tokenize/api_router.py): a prompt or a chat, as token ids."""
    try:
        body = parse_body(await request.body(), request.headers.get("content-type"))
        check_model(body, served)
        pieces = _pieces(body, family)
    except ApiError as exc:
        return JSONResponse(exc.body, status_code=exc.code)
    strs = pieces if body.get("return_token_strs") else None
    return JSONResponse(
        {
            "count": len(pieces),
            "max_model_len": max_model_len,
            "tokens": [token_id(p) for p in pieces],
            "token_strs": strs,
        }
    )
