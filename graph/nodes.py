"""The graph's nodes: plan (model decides), call_tool (ToolNode), observe (trace, budget), answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from json_repair import repair_json
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime

from configs.prompts import (
    CUT_CALL_FALLBACK,
    OUT_OF_STEPS_FALLBACK,
    OUT_OF_STEPS_PROMPT,
    REPEATED_FAILURE_PROMPT,
    UNREADABLE_CALL_FALLBACK,
)
from configs.settings import Settings
from graph.approval import EDIT_NOTICE
from graph.context import Context
from graph.events import Thinking, Token, ToolFinished, ToolStarted
from graph.failover import CallRecord, track_call
from graph.model import REASONING_KEY, bind_tools, cached_chat_model, make_chat_model, resolve_model_name
from graph.recovery import MarkupGuard, has_tool_markup, recover_tool_calls, strip_tool_markup
from graph.state import State, current_turn, tool_rounds, turn_number
from graph.thinking import ThinkSplitter, split_think_tags
from graph.trace import Step, StopReason
from tools.errors import handle_tool_error
from tools.toolbox import Toolbox

INVALID_ARGS_TEMPLATE = (
    "Error: the arguments for {name} were not valid JSON ({error}). Call {name} again with a JSON object "
    "that matches its parameters."
)
DISABLED_TOOL_TEMPLATE = "Error: {name} is not a valid tool, try one of [{available}]."
TOOL_TIMEOUT_TEMPLATE = (
    "Error: {name} did not answer within {seconds:g} seconds and was stopped (TOOL_TIMEOUT={timeout:g}). "
    "Try again later, or answer without it."
)
# A tool's HTTP calls each get TOOL_TIMEOUT per network operation, a tool may make two (geocoding, then the
# forecast), and a large answer keeps flowing past it; the whole call gets three times that before it is
# abandoned as hung.
TOOL_CALL_LIMIT_FACTOR = 3
MAX_TOOL_RESULT_CHARS = 20_000
TRUNCATED_NOTE = "\n\n[Truncated: the tool returned {total:,} characters; only the first {kept:,} are shown.]"

Writer = Callable[[Any], None]
ModelFactory = Callable[[Context, bool], Awaitable[tuple[Runnable, str]]]
"""(filled context, streaming) -> (the chat model, or its fallback chain, and the model name)."""


def knobs(ctx: Context | None, settings: Settings) -> Context:
    """The run's Context with every empty value filled from Settings."""
    ctx = ctx or Context()
    return Context(
        model=ctx.model or (settings.agent_model or ""),
        max_steps=ctx.max_steps or settings.agent_max_steps,
        temperature=settings.agent_temperature if ctx.temperature < 0 else ctx.temperature,
        max_tokens=ctx.max_tokens or settings.agent_max_tokens,
        tools=ctx.tools,
        system_prompt=ctx.system_prompt,
        stream=ctx.stream,
        base_url=ctx.base_url,
        approve=ctx.approve,
        approval=ctx.approval,
        thinking=settings.agent_thinking if ctx.thinking is None else ctx.thinking,
    )


def with_thinking(model: Runnable, ctx: Context) -> Runnable:
    """The model, asked to think or not when the run says so (vLLM: `chat_template_kwargs.enable_thinking`).

    Sent only when set: a server without chat templates (a hosted API) may refuse the field.
    """
    if ctx.thinking is None:
        return model
    return model.bind(extra_body={"chat_template_kwargs": {"enable_thinking": ctx.thinking}})


def run_settings(settings: Settings, ctx: Context) -> Settings:
    """The settings of this run: the graph's, with the run's endpoint URL when its context names one."""
    return settings.for_endpoint(ctx.base_url)


def enabled_tools(tools: Sequence[BaseTool], ctx: Context) -> list[BaseTool]:
    """The tools this run may use: all when the context does not say, none for an empty list."""
    if ctx.tools is None:
        return list(tools)
    return [t for t in tools if t.name in set(ctx.tools)]


def default_model_factory(settings: Settings) -> ModelFactory:
    """Build the run's chat model from Settings and the (filled) Context."""
    building = asyncio.Lock()

    async def factory(ctx: Context, streaming: bool) -> tuple[Runnable, str]:
        endpoint = run_settings(settings, ctx)
        name = await resolve_model_name(endpoint, ctx.model or None)
        knobs: dict[str, Any] = {
            "temperature": ctx.temperature,
            "max_tokens": ctx.max_tokens,
            "streaming": streaming,
            "loop": asyncio.get_running_loop(),
        }
        model = cached_chat_model(endpoint, name, **knobs)
        if model is None:
            async with building:  # the first questions of a batch arrive together: build it once
                model = cached_chat_model(endpoint, name, **knobs)
                if model is None:
                    # Built in a thread: creating an HTTP client reads CA files, which `langgraph dev`
                    # flags as blocking I/O on the event loop.
                    model = await asyncio.to_thread(make_chat_model, endpoint, name, **knobs)
        return model, name

    return factory


def stop_reason(messages: list[AnyMessage], max_steps: int) -> StopReason | None:
    """Why the turn must stop calling tools now: 'max_steps', 'repeated_failure', or None."""
    if tool_rounds(messages) >= max_steps:
        return "max_steps"
    if repeated_failure(messages):
        return "repeated_failure"
    return None


def _call_key(name: str, args: dict[str, Any]) -> str:
    return f"{name}({json.dumps(args, sort_keys=True, ensure_ascii=False)})"


def repeated_failure(messages: list[AnyMessage]) -> str | None:
    """The call (name and arguments) that failed at least twice with the same error in this turn."""
    calls = {
        tc["id"]: _call_key(tc["name"], tc["args"])
        for m in current_turn(messages)
        if isinstance(m, AIMessage)
        for tc in m.tool_calls
    }
    failures = Counter(
        (calls.get(m.tool_call_id), str(m.content))
        for m in current_turn(messages)
        if isinstance(m, ToolMessage) and m.status == "error"
    )
    return next((call for (call, _), n in failures.items() if n >= 2 and call), None)


def _first_headers_only(chunk: AIMessageChunk, named: set[int], with_id: set[int]) -> AIMessageChunk:
    """`chunk` less the name and id of each tool call whose index already has them (`named`, `with_id`).

    llama.cpp's server repeats a call's id and name in every delta of it, and LangChain's `+` joins names
    (`get_current_timeget_current_time`): the first name and id per index stay, only arguments are appended.
    """
    parts = []
    for part in chunk.tool_call_chunks:
        index = part.get("index")
        if index is not None:
            name = None if index in named else part.get("name")
            call_id = None if index in with_id else part.get("id")
            if name:
                named.add(index)
            if call_id:
                with_id.add(index)
            if (name, call_id) != (part.get("name"), part.get("id")):
                part = tool_call_chunk(name=name, args=part.get("args"), id=call_id, index=index)
        parts.append(part)
    return chunk if parts == chunk.tool_call_chunks else chunk.model_copy(update={"tool_call_chunks": parts})


async def stream_model(
    model: Runnable, messages: list[AnyMessage], *, stream: bool, writer: Writer, node: str
) -> tuple[AIMessage, float | None]:
    """Call the model, streaming display-safe tokens to the writer; return the message and TTFT (ms)."""
    started = time.perf_counter()
    if not stream:
        return await model.ainvoke(messages), None
    guard, splitter, clock = MarkupGuard(), ThinkSplitter(), _ThinkingClock()
    full = AIMessageChunk(content="")  # starting from an empty chunk merges same-index tool deltas
    ttft: float | None = None
    named: set[int] = set()
    with_id: set[int] = set()

    def show(thought: str, text: str) -> None:
        if thought:
            clock.think()
            writer(Thinking(thought, node))
        if text and (safe := guard.feed(text)):
            clock.answer(safe)
            writer(Token(safe, node))

    async for chunk in model.astream(messages):
        if ttft is None:
            ttft = (time.perf_counter() - started) * 1000
        full = full + _first_headers_only(chunk, named, with_id)
        if chunk.tool_call_chunks:
            clock.answer("call")
        show(chunk.additional_kwargs.get(REASONING_KEY) or "", "")
        if isinstance(chunk.content, str) and chunk.content:
            show(*splitter.feed(chunk.content))
    show(*splitter.flush())
    if tail := guard.flush():
        writer(Token(tail, node))
    meta = dict(full.response_metadata)
    if clock.elapsed_ms is not None:
        meta["thinking_ms"] = clock.elapsed_ms
    reasoning = full.additional_kwargs.get(REASONING_KEY)
    msg = AIMessage(
        content=full.content,
        tool_calls=full.tool_calls,
        invalid_tool_calls=full.invalid_tool_calls,
        usage_metadata=full.usage_metadata,
        response_metadata=meta,
        additional_kwargs={REASONING_KEY: reasoning} if reasoning else {},
        id=full.id,
    )
    return msg, ttft


class _ThinkingClock:
    """When thinking started and when the answer (text or a tool call) took over."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.ended: float | None = None

    def think(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def answer(self, text: str) -> None:
        if self.started is not None and self.ended is None and text.strip():
            self.ended = time.perf_counter()

    @property
    def elapsed_ms(self) -> float | None:
        if self.started is None:
            return None
        return ((self.ended or time.perf_counter()) - self.started) * 1000


def is_empty(ai: AIMessage) -> bool:
    """The reply has no text, no reasoning and no tool calls at all."""
    text = ai.content if isinstance(ai.content, str) else ""
    reasoning = ai.additional_kwargs.get(REASONING_KEY) or ""
    return not text.strip() and not reasoning.strip() and not ai.tool_calls and not ai.invalid_tool_calls


def separate_thinking(ai: AIMessage) -> AIMessage:
    """The reply with its reasoning apart from its answer (the known ways thinking models go wrong behind vLLM).

    `<think>` tags left in the content (no reasoning parser) move to the reasoning; tool calls written inside
    the reasoning are recovered as calls; a reply that is only reasoning (no answer, no call) is answered by
    its reasoning, marked `answer_from_reasoning`.
    """
    content = ai.content if isinstance(ai.content, str) else ""
    reasoning = ai.additional_kwargs.get(REASONING_KEY) or ""
    tagged, rest = split_think_tags(content)
    if tagged or rest != content:
        reasoning, content = "\n".join(p for p in (reasoning, tagged) if p).strip(), rest
    if not reasoning:
        return ai
    content = content.lstrip()  # vLLM's reasoning parser leaves the blank line after </think> in the content
    meta, calls = dict(ai.response_metadata), list[Any](ai.tool_calls)
    if not calls and not ai.invalid_tool_calls and has_tool_markup(reasoning) and not has_tool_markup(content):
        found = recover_tool_calls(reasoning)
        if found.tool_calls:
            calls, reasoning, meta["recovered_tool_calls"] = found.tool_calls, found.text, True
    if not calls and not ai.invalid_tool_calls and not content.strip():
        content, meta["answer_from_reasoning"] = reasoning, True
    return AIMessage(
        content=content,
        tool_calls=calls,
        invalid_tool_calls=ai.invalid_tool_calls,
        usage_metadata=ai.usage_metadata,
        response_metadata=meta,
        additional_kwargs={REASONING_KEY: reasoning} if reasoning else {},
        id=ai.id,
    )


def repair_calls(ai: AIMessage) -> tuple[AIMessage, bool]:
    """Recover tool calls a server sent as text, and repair calls whose arguments are bad JSON."""
    recovered = False
    # A call without a name cannot run (a stream can merge one from a stray argument delta); one without an
    # id gets one, since its result must point back to it.
    calls: list[Any] = [
        c if c.get("id") else {**c, "id": f"call-{i}"} for i, c in enumerate(ai.tool_calls) if c.get("name")
    ]
    invalid: dict[str, str] = {}
    for bad in ai.invalid_tool_calls:
        try:
            fixed = repair_json(bad.get("args") or "{}", return_objects=True)
        except RecursionError:  # runaway nesting: unrepairable, the model is told its arguments were bad
            fixed = None
        call_id = bad.get("id") or f"invalid-{len(calls)}"
        if isinstance(fixed, dict) and bad.get("name"):
            calls.append({"name": bad["name"], "args": fixed, "id": call_id, "type": "tool_call"})
            recovered = True
        elif bad.get("name"):
            calls.append({"name": bad["name"], "args": {}, "id": call_id, "type": "tool_call"})
            invalid[call_id] = bad.get("error") or "unparseable"
    content = ai.content if isinstance(ai.content, str) else ""
    if not calls and has_tool_markup(content):
        found = recover_tool_calls(content)
        calls, content, recovered = found.tool_calls, found.text, bool(found.tool_calls)
        if not calls:
            content = content or UNREADABLE_CALL_FALLBACK
    elif has_tool_markup(content):
        content = strip_tool_markup(content)
    meta = dict(ai.response_metadata)
    if recovered:
        meta["recovered_tool_calls"] = True
    if invalid:
        meta["invalid_arguments"] = invalid
    fixed_msg = AIMessage(
        content=content,
        tool_calls=calls,
        usage_metadata=ai.usage_metadata,
        response_metadata=meta,
        additional_kwargs=ai.additional_kwargs,
        id=ai.id,
    )
    return fixed_msg, recovered


def hit_token_limit(ai: AIMessage, max_tokens: int) -> bool:
    """The reply ended because it used all its tokens.

    vLLM 0.33 says "length" for a cut reply, tool calls or not (`resolve_finish_reason`: length always wins,
    checked against its real server in tests/conformance). The usage is checked too, for OpenAI-compatible
    servers that report a cut tool call as "tool_calls": as many completion tokens as were allowed.
    """
    used = ai.usage_metadata["output_tokens"] if ai.usage_metadata else 0
    return ai.response_metadata.get("finish_reason") == "length" or used >= max_tokens


def model_step(
    ai: AIMessage,
    *,
    node: str,
    turn: int,
    model: str,
    started: float,
    t0: float,
    ttft: float | None,
    recovered: bool,
    call: CallRecord | None = None,
    stopped: StopReason | None = None,
) -> dict[str, Any]:
    """The trace record of one model call, naming the endpoint that answered and any passed over."""
    usage: dict[str, Any] = dict(ai.usage_metadata or {})
    return Step(
        kind="model",
        node=node,
        turn=turn,
        started_at=started,
        model=ai.response_metadata.get("model_name") or model,  # a fallback endpoint may serve another
        endpoint=call.endpoint if call else None,
        skipped=call.skipped if call else [],
        duration_ms=(time.perf_counter() - t0) * 1000,
        ttft_ms=ttft,
        tokens_in=usage.get("input_tokens"),
        tokens_out=usage.get("output_tokens"),
        finish_reason=ai.response_metadata.get("finish_reason"),
        tool_calls=[tc["name"] for tc in ai.tool_calls],
        reasoning=ai.additional_kwargs.get(REASONING_KEY) or None,
        reasoning_tokens=(usage.get("output_token_details") or {}).get("reasoning"),
        thinking_ms=ai.response_metadata.get("thinking_ms"),
        answer_from_reasoning=bool(ai.response_metadata.get("answer_from_reasoning")),
        recovered=recovered,
        stopped=stopped,
    ).model_dump()


def make_plan(settings: Settings, toolbox: Toolbox, factory: ModelFactory):
    """The `plan` node: one model call with the tools bound; streams tokens; recovers text calls."""

    async def plan(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = knobs(runtime.context, settings)
        model, name = await factory(ctx, ctx.stream)
        usable = enabled_tools(await toolbox.tools(), ctx)
        messages = [SystemMessage(ctx.system_prompt), *state.messages]
        started, t0 = time.time(), time.perf_counter()
        with track_call(run_settings(settings, ctx)) as call:
            ai, ttft = await stream_model(
                with_thinking(bind_tools(model, usable), ctx),
                messages,
                stream=ctx.stream,
                writer=runtime.stream_writer,
                node="plan",
            )
            if ctx.stream and is_empty(ai):
                # vLLM's hermes parser never streams text after "<tool_call>", so a call it cannot parse
                # (e.g. Qwen3-Coder's <function=...> format) arrives as an empty reply. The non-streaming
                # response carries the same output as text, which repair_calls can recover.
                plain, _ = await factory(ctx, False)
                ai = await with_thinking(bind_tools(plain, usable), ctx).ainvoke(messages)
        ai = separate_thinking(ai)
        ai, recovered = repair_calls(ai)
        recovered = recovered or bool(ai.response_metadata.get("recovered_tool_calls"))
        if ai.tool_calls and hit_token_limit(ai, ctx.max_tokens):
            # The token limit cut the reply inside a tool call: its arguments are incomplete, so running it
            # would fail as if the model had erred. End the turn and say why instead.
            text = ai.content if isinstance(ai.content, str) else ""
            ai = AIMessage(
                content=f"{text.strip()}\n\n{CUT_CALL_FALLBACK}".strip(),
                usage_metadata=ai.usage_metadata,
                response_metadata={**ai.response_metadata, "finish_reason": "length"},
                additional_kwargs=ai.additional_kwargs,
                id=ai.id,
            )
            recovered = False
        cut = ai.response_metadata.get("finish_reason") == "length"
        step = model_step(
            ai,
            node="plan",
            turn=turn_number(state.messages),
            model=name,
            started=started,
            t0=t0,
            ttft=ttft,
            recovered=recovered,
            call=call,
            stopped="length" if cut else None,
        )
        return {"messages": [ai], "steps": [step]}

    return plan


def make_call_tool(settings: Settings, toolbox: Toolbox) -> ToolNode:
    """The `call_tool` node: LangGraph's ToolNode (concurrent calls), timed, announced and approved per call.

    MCP tools are not known when the node is built (their servers start on the first turn): a call to one
    is pointed at it here (`request.override(tool=...)`, ToolNode's way for tools it was not built with).
    """

    async def timed(request: ToolCallRequest, execute: Callable[[ToolCallRequest], Awaitable[Any]]) -> Any:
        call = request.tool_call
        writer = request.runtime.stream_writer
        ctx = knobs(request.runtime.context, settings)
        ai = next(m for m in reversed(request.state.messages) if isinstance(m, AIMessage))
        if request.tool is None and toolbox.get(call["name"]) is None:
            await toolbox.tools()  # a thread resumed in a new process: its MCP servers are not up yet
        if request.tool is None and (found := toolbox.get(call["name"])) is not None:
            request = request.override(tool=found)
        verdict = ai.response_metadata.get("approvals", {}).get(call["id"], {})
        decision = verdict.get("decision")
        if decision == "edited":
            request = request.override(tool_call={**call, "args": verdict["args"]})
            call = request.tool_call
        writer(ToolStarted(call["id"] or "", call["name"], call["args"]))
        started, t0 = time.time(), time.perf_counter()
        allowed = [t.name for t in enabled_tools(toolbox.known(), ctx)]
        invalid = ai.response_metadata.get("invalid_arguments", {})
        if call["id"] in invalid:
            content = INVALID_ARGS_TEMPLATE.format(name=call["name"], error=invalid[call["id"]])
            result: Any = ToolMessage(content, name=call["name"], tool_call_id=call["id"], status="error")
        elif call["name"] not in allowed and request.tool is not None:
            content = DISABLED_TOOL_TEMPLATE.format(name=call["name"], available=", ".join(allowed))
            result = ToolMessage(content, name=call["name"], tool_call_id=call["id"], status="error")
        elif decision in ("rejected", "denied", "superseded"):
            result = ToolMessage(verdict["message"], name=call["name"], tool_call_id=call["id"], status="error")
        else:
            result = await _limited(execute, request, settings.tool_timeout)
        duration = (time.perf_counter() - t0) * 1000
        if isinstance(result, ToolMessage):
            result.content = _capped(_text_of(result.content))
            if decision == "edited" and isinstance(result.content, str):
                notice = EDIT_NOTICE.format(args=json.dumps(call["args"], ensure_ascii=False))
                result.content = f"{notice}\n{result.content}"
            meta = (request.tool.metadata or {}) if request.tool is not None else {}
            result.response_metadata = {
                **result.response_metadata,
                "started_at": started,
                "duration_ms": duration,
                "unknown_tool": request.tool is None,
                "server": meta.get("server"),
                "decision": decision,
                "arguments": call["args"],
            }
            writer(ToolFinished(call["id"] or "", call["name"], result.status, str(result.content), duration))
        return result

    return ToolNode(toolbox.static, name="call_tool", handle_tool_errors=handle_tool_error, awrap_tool_call=timed)


def _text_of(content: Any) -> Any:
    """A tool result as text: MCP tools return content blocks; the model and the trace read their text."""
    if isinstance(content, list):
        parts = [b.get("text", "") if isinstance(b, dict) else str(b) for b in content]
        kinds = [b.get("type") for b in content if isinstance(b, dict) and b.get("type") != "text"]
        text = "\n".join(p for p in parts if p)
        if kinds:
            text += f"\n[{len(kinds)} non-text block(s) omitted: {', '.join(sorted(set(map(str, kinds))))}]"
        return text
    return content


async def _limited(
    execute: Callable[[ToolCallRequest], Awaitable[Any]], request: ToolCallRequest, timeout: float
) -> Any:
    """Run the tool call; one that outlives its limit becomes an error message the model can act on."""
    limit = timeout * TOOL_CALL_LIMIT_FACTOR
    call = request.tool_call
    try:
        async with asyncio.timeout(limit):
            return await execute(request)
    except TimeoutError:
        content = TOOL_TIMEOUT_TEMPLATE.format(name=call["name"], seconds=limit, timeout=timeout)
        return ToolMessage(content, name=call["name"], tool_call_id=call["id"], status="error")


def _capped(content: Any) -> Any:
    """A tool result cut to MAX_TOOL_RESULT_CHARS with a note, so one huge result cannot overflow the context."""
    if not isinstance(content, str) or len(content) <= MAX_TOOL_RESULT_CHARS:
        return content
    return content[:MAX_TOOL_RESULT_CHARS] + TRUNCATED_NOTE.format(total=len(content), kept=MAX_TOOL_RESULT_CHARS)


def observe(state: State) -> dict[str, Any]:
    """The `observe` node: record each tool result of the last round in the trace."""
    msgs = state.messages
    i = len(msgs)
    while i > 0 and isinstance(msgs[i - 1], ToolMessage):
        i -= 1
    before = msgs[i - 1] if i > 0 else None
    ai = before if isinstance(before, AIMessage) else AIMessage(content="")
    args = {tc["id"]: tc["args"] for tc in ai.tool_calls}
    recovered = bool(ai.response_metadata.get("recovered_tool_calls"))
    turn = turn_number(msgs)
    steps = []
    for m in msgs[i:]:
        assert isinstance(m, ToolMessage)  # the loop above stopped at the first message that is not
        failed = m.status == "error"
        steps.append(
            Step(
                kind="tool",
                node="call_tool",
                turn=turn,
                name=m.name,
                call_id=m.tool_call_id,
                arguments=m.response_metadata.get("arguments", args.get(m.tool_call_id, {})),
                status="error" if failed else "ok",
                result=None if failed else str(m.content),
                error=str(m.content) if failed else None,
                started_at=m.response_metadata.get("started_at", time.time()),
                duration_ms=m.response_metadata.get("duration_ms", 0.0),
                recovered=recovered,
                unknown_tool=bool(m.response_metadata.get("unknown_tool")),
                server=m.response_metadata.get("server"),
                decision=m.response_metadata.get("decision"),
            ).model_dump()
        )
    return {"steps": steps}


def make_answer(settings: Settings, factory: ModelFactory):
    """The `answer` node: finish the turn; after a stop, ask the model for a best answer without tools."""

    async def answer(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = knobs(runtime.context, settings)
        last = state.messages[-1] if state.messages else None
        if isinstance(last, AIMessage) and not last.tool_calls:
            return {}
        failing = repeated_failure(state.messages)
        why = stop_reason(state.messages, ctx.max_steps) or "max_steps"
        instruction = (
            REPEATED_FAILURE_PROMPT.format(call=failing)
            if failing and tool_rounds(state.messages) < ctx.max_steps
            else OUT_OF_STEPS_PROMPT.format(max_steps=ctx.max_steps)
        )
        model, name = await factory(ctx, ctx.stream)
        started, t0 = time.time(), time.perf_counter()
        with track_call(run_settings(settings, ctx)) as call:
            ai, ttft = await stream_model(
                with_thinking(model, ctx),
                [SystemMessage(ctx.system_prompt), *state.messages, HumanMessage(instruction)],
                stream=ctx.stream,
                writer=runtime.stream_writer,
                node="answer",
            )
        ai = separate_thinking(AIMessage(**{**ai.model_dump(), "tool_calls": []}))  # no tools here: prose only
        text = strip_tool_markup(ai.content if isinstance(ai.content, str) else "").strip()
        final = AIMessage(
            content=text or OUT_OF_STEPS_FALLBACK.format(max_steps=ctx.max_steps),
            usage_metadata=ai.usage_metadata,
            response_metadata=ai.response_metadata,
            additional_kwargs=ai.additional_kwargs,
            id=ai.id,
        )
        step = model_step(
            final,
            node="answer",
            turn=turn_number(state.messages),
            model=name,
            started=started,
            t0=t0,
            ttft=ttft,
            recovered=False,
            call=call,
            stopped=why,
        )
        return {"messages": [final], "steps": [step]}

    return answer
