"""Wire plan → approve → call_tool → observe → answer into one StateGraph (`build_graph`)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from configs.settings import Settings, get_settings
from graph.approval import make_approve, needs_review
from graph.context import Context
from graph.nodes import (
    ModelFactory,
    default_model_factory,
    knobs,
    make_answer,
    make_call_tool,
    make_plan,
    observe,
    stop_reason,
)
from graph.obs import metrics
from graph.state import InputState, State
from tools.toolbox import Toolbox, shared_toolbox


def recursion_limit(max_steps: int) -> int:
    """Supersteps a turn of `max_steps` tool rounds needs (4 per round with approval, plus plan and answer)."""
    return 4 * max_steps + 10


def wants_tools(state: State) -> Literal["call_tool", "__end__"]:
    """After `plan`: run the tools it asked for, or end: its reply is the answer.

    `answer` is only needed after a stop (step budget, repeated failure); skipping it otherwise saves a
    superstep, a checkpoint write and its events on every turn.
    """
    last = state.messages[-1]
    return "call_tool" if isinstance(last, AIMessage) and last.tool_calls else "__end__"


def routes_after_plan(toolbox: Toolbox, settings: Settings) -> Callable[..., str]:
    """After `plan`: `approve` when a call's policy is not `auto`, else straight to `call_tool` (or the end)."""

    def after_plan(state: State, runtime: Runtime[Context]) -> Literal["approve", "call_tool", "__end__"]:
        route = wants_tools(state)
        last = state.messages[-1]
        if route == "call_tool" and isinstance(last, AIMessage):
            if needs_review(last, toolbox.policy, knobs(runtime.context, settings)):
                return "approve"
        return route

    return after_plan


def explained(node: Callable[..., Awaitable[Any]], settings: Settings) -> Callable[..., Awaitable[Any]]:
    """The node, raising `AgentError` with the CLI's one-line message instead of a raw model-server error.

    For LangGraph Studio, whose run errors show the exception's text: "Cannot reach the model server at ..."
    instead of `ConnectError` and a traceback. Control flow (interrupts, cancellation) passes through.
    """

    @functools.wraps(node)
    async def guarded(state: Any, runtime: Runtime[Context]) -> Any:
        from graph.errors import AgentError, explain

        try:
            return await node(state, runtime)
        except (GraphBubbleUp, asyncio.CancelledError, AgentError):
            raise
        except Exception as exc:  # noqa: BLE001 - every other failure becomes its one line
            model = knobs(runtime.context, settings).model or settings.agent_model
            raise explain(exc, base_url=settings.openai_api_base, model=model) from None

    return guarded


def build_graph(
    *,
    settings: Settings | None = None,
    tools: Sequence[BaseTool] | None = None,
    toolbox: Toolbox | None = None,
    model_factory: ModelFactory | None = None,
    checkpointer: Any = None,
    explain_errors: bool = False,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build the agent graph. Studio compiles it without a checkpointer; the CLI and UI pass one.

    `explain_errors` makes model-server failures `AgentError`s with their one-line message (Studio); the
    CLI, UI and batch map the original exceptions themselves. The tools are `toolbox`'s, else exactly
    `tools`, else the process's shared toolbox (built-in tools, AGENT_TOOL_MODULES and the MCP servers of
    AGENT_MCP_CONFIG, started on the first turn).
    """
    settings = settings or get_settings()
    if toolbox is None:
        toolbox = Toolbox(tools) if tools is not None else shared_toolbox(settings)
    box = toolbox
    box.hub.on_change = lambda: metrics.record_mcp_servers([s.state for s in box.statuses()])
    factory = model_factory or default_model_factory(settings)

    def should_continue(state: State, runtime: Runtime[Context]) -> Literal["plan", "answer"]:
        """After `observe`: plan again, unless the step budget is spent or a failing call repeats."""
        max_steps = knobs(runtime.context, settings).max_steps
        return "answer" if stop_reason(state.messages, max_steps) else "plan"

    builder = StateGraph(State, input_schema=InputState, context_schema=Context)
    plan, answer = make_plan(settings, toolbox, factory), make_answer(settings, factory)
    if explain_errors:
        plan, answer = explained(plan, settings), explained(answer, settings)
    builder.add_node("plan", plan)
    builder.add_node("approve", make_approve(settings, toolbox))
    builder.add_node("call_tool", make_call_tool(settings, toolbox))
    builder.add_node("observe", observe)
    builder.add_node("answer", answer)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", routes_after_plan(toolbox, settings), ["approve", "call_tool", END])
    builder.add_edge("approve", "call_tool")
    builder.add_edge("call_tool", "observe")
    builder.add_conditional_edges("observe", should_continue)
    builder.add_edge("answer", END)
    compiled = builder.compile(checkpointer=checkpointer, name="Work Agent")
    graph = compiled.with_config(recursion_limit=recursion_limit(settings.agent_max_steps))
    graph.toolbox = toolbox  # type: ignore[attr-defined]  # the CLI and UI list, report and close its tools
    return graph
