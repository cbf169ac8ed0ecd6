"""A scripted vLLM engine core: one token per step from a script or the demo brain, stopping like the scheduler."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from vllm.v1.engine import (
    EngineCoreEvent,
    EngineCoreEventType,
    EngineCoreOutput,
    EngineCoreOutputs,
    EngineCoreRequest,
    FinishReason,
)
from vllm.v1.engine.core_client import EngineCoreClient
from vllm.v1.metrics.stats import PrefillStats, SchedulerStats

from graph.demo.model import default_reply
from tests.conformance.vllm_app.chatml import body_from_prompt

# What Qwen writes after its answer when the request leaves no EOS to stop on (ignore_eos).
IM_END = 151645


@dataclass
class Reply:
    """One scripted model output: its text (or exact token ids) and the faults to inject."""

    text: str = ""
    token_ids: list[int] | None = None
    error_after_tokens: int | None = None  # after N tokens the engine fails the request (FinishReason.ERROR)
    stall_after_tokens: int | None = None  # after N tokens nothing more comes until the request is aborted
    delay: float = 0.0  # seconds before each token

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        known = {
            k: data[k] for k in ("text", "token_ids", "error_after_tokens", "stall_after_tokens", "delay") if k in data
        }
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"unknown reply fields {unknown}: use text, token_ids, error_after_tokens, stall_after_tokens, delay"
            )
        return cls(**known)


@dataclass
class _Running:
    request: EngineCoreRequest
    record: dict[str, Any]
    tokens: list[int]
    reply: Reply
    due: float
    emitted: list[int] = field(default_factory=list)


class ScriptedEngineCore(EngineCoreClient):
    """Stands in for the engine-core process behind vLLM's AsyncLLM; everything in front of it is real vLLM."""

    def __init__(self, *, parser_active: bool, family: str) -> None:
        self.parser_active = parser_active
        self.family = family
        self.tokenizer: Any = None
        self.max_model_len = 0
        self.engine_ranks_managed = [0]
        self.resources = SimpleNamespace(engine_dead=False)
        self._queue: deque[Reply] = deque()
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self.requests: list[dict[str, Any]] = []
        self.aborts: list[dict[str, Any]] = []

    def attach(self, tokenizer: Any, max_model_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len

    # --- the control API -------------------------------------------------------------------------------
    def script(self, replies: list[Reply]) -> None:
        self._queue.extend(replies)

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()
        self.aborts.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "aborts": self.aborts,
            "running": len(self._running),
            "scripted_left": len(self._queue),
        }

    # --- what AsyncLLM calls ---------------------------------------------------------------------------
    async def get_supported_tasks_async(self) -> tuple[str, ...]:
        return ("generate",)

    async def add_request_async(self, request: EngineCoreRequest) -> None:
        prompt_ids = list(request.prompt_token_ids or [])
        prompt = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        scripted = bool(self._queue)
        if scripted:
            reply = self._queue.popleft()
        else:
            body = body_from_prompt(prompt)
            reply = Reply(text=default_reply(body, family=self.family, parser_active=self.parser_active))
        tokens = (
            list(reply.token_ids)
            if reply.token_ids is not None
            else self.tokenizer.encode(reply.text, add_special_tokens=False)
        )
        params = request.sampling_params
        eos = params.eos_token_id if params is not None else None
        tokens.append(eos if eos is not None else IM_END)
        record = {
            "request_id": request.request_id,
            "external_req_id": request.external_req_id,
            "prompt": prompt,
            "prompt_tokens": len(prompt_ids),
            "max_tokens": params.max_tokens if params else None,
            "scripted": scripted,
            "reply": reply.text if reply.token_ids is None else None,
            "output_token_ids": [],
            "finish_reason": None,
            "stop_reason": None,
        }
        self.requests.append(record)
        self._running[request.request_id] = _Running(request, record, tokens, reply, due=time.monotonic() + reply.delay)
        self._wake.set()

    async def abort_requests_async(self, request_ids: list[str]) -> None:
        for request_id in request_ids:
            running = self._running.pop(request_id, None)
            self.aborts.append(
                {
                    "request_id": request_id,
                    "running": running is not None,
                    "tokens_emitted": len(running.emitted) if running else None,
                }
            )
            if running is not None:
                running.record["finish_reason"] = "abort"

    async def get_output_async(self) -> EngineCoreOutputs:
        while True:
            await asyncio.sleep(0)  # a step: let the frontend run, as a separate engine process would
            now = time.monotonic()
            ready = [r for r in self._running.values() if r.due <= now and not self._stalled(r)]
            if ready:
                outputs = [self._step(r, now) for r in ready]
                stats = SchedulerStats(num_running_reqs=len(self._running))
                return EngineCoreOutputs(outputs=outputs, scheduler_stats=stats)
            waiting = [r.due for r in self._running.values() if not self._stalled(r)]
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(waiting) - now) if waiting else None)
            except TimeoutError:
                pass

    @staticmethod
    def _stalled(running: _Running) -> bool:
        stall = running.reply.stall_after_tokens
        return stall is not None and len(running.emitted) >= stall

    def _step(self, running: _Running, now: float) -> EngineCoreOutput:
        """The next token of one request, and whether it finished (vllm/v1/core/sched/utils.check_stop)."""
        request, reply = running.request, running.reply
        first = not running.emitted
        extra: dict[str, Any] = {}
        if first:
            prompt_len = len(request.prompt_token_ids or [])
            extra["events"] = [
                EngineCoreEvent.new_event(EngineCoreEventType.QUEUED, now),
                EngineCoreEvent.new_event(EngineCoreEventType.SCHEDULED, now),
            ]
            extra["prefill_stats"] = PrefillStats(num_prompt_tokens=prompt_len, num_computed_tokens=prompt_len)
        if reply.error_after_tokens is not None and len(running.emitted) >= reply.error_after_tokens:
            return self._finish(
                running, EngineCoreOutput(request.request_id, [], finish_reason=FinishReason.ERROR, **extra)
            )
        index = len(running.emitted)
        token = running.tokens[index] if index < len(running.tokens) else running.tokens[-1]
        running.emitted.append(token)
        running.record["output_token_ids"].append(token)
        running.due = now + reply.delay
        params = request.sampling_params
        assert params is not None
        finish, stop_reason = None, None
        if token == params.eos_token_id:
            finish = FinishReason.STOP
        elif token in (params.stop_token_ids or ()):
            finish, stop_reason = FinishReason.STOP, token
        elif len(request.prompt_token_ids or []) + len(running.emitted) >= self.max_model_len or len(
            running.emitted
        ) >= (params.max_tokens or 0):
            finish = FinishReason.LENGTH
        output = EngineCoreOutput(request.request_id, [token], finish_reason=finish, stop_reason=stop_reason, **extra)
        return self._finish(running, output) if finish is not None else output

    def _finish(self, running: _Running, output: EngineCoreOutput) -> EngineCoreOutput:
        self._running.pop(running.request.request_id, None)
        running.record["finish_reason"] = str(output.finish_reason)
        running.record["stop_reason"] = output.stop_reason
        return output

    # --- no-op stubs for the rest of the engine-core interface -------------------------------------------
    def shutdown(self, timeout: float | None = None) -> None:
        self._running.clear()

    def dp_engines_running(self) -> bool:
        return False

    def get_kv_event_sources(self) -> dict[int, Any]:
        return {}

    async def reset_mm_cache_async(self) -> None:
        return None

    async def reset_prefix_cache_async(
        self, reset_running_requests: bool = False, reset_connector: bool = False
    ) -> bool:
        return True

    async def reset_encoder_cache_async(self) -> None:
        return None

    async def profile_async(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def sleep_async(self, level: int = 1, mode: str = "abort") -> None:
        return None

    async def release_kv_cache_memory_async(self) -> None:
        return None

    async def wake_up_async(self, tags: list[str] | None = None) -> bool:
        return True

    async def is_sleeping_async(self) -> bool:
        return False

    async def pause_generation_async(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def resume_scheduler_async(self) -> None:
        return None

    async def is_scheduler_paused_async(self) -> bool:
        return False

    async def add_lora_async(self, lora_request: Any) -> bool:
        return False

    async def remove_lora_async(self, lora_id: int) -> bool:
        return False

    async def list_loras_async(self) -> set[int]:
        return set()

    async def pin_lora_async(self, lora_id: int) -> bool:
        return False

    async def collective_rpc_async(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    async def compute_weight_checksums_async(self) -> list[dict[str, str]]:
        return []

    async def set_weight_version_async(self, weight_version: str) -> None:
        return None

    async def get_weight_version_async(self) -> str:
        return ""

    async def execute_dummy_batch_async(self) -> None:
        return None
