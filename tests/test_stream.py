"""stream_turn: the typed events of a turn in order, stops that keep their partial answer, the step budget."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from configs.settings import get_settings
from graph.checkpoint import open_checkpointer
from graph.context import Context
from graph.demo.server import Reply, tool_call_text
from graph.events import StepRecorded, Token, ToolFinished, ToolStarted, TurnEnded
from graph.graph import build_graph
from graph.runner import CANCELLED_TOOL, stream_turn
from graph.threads import load_turns
from tools import TOOLS

PRESENTATIONAL = ("(stopped)", "*(", "stopped early")


def kind(event: object) -> str:
    return type(event).__name__


async def wait_for(condition, timeout: float = 10.0) -> None:
    """Poll until `condition()` is true (the scripted server and the stream run on this loop)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def graph(vllm):
    settings = get_settings()
    async with open_checkpointer(settings) as saver:
        yield build_graph(settings=settings, tools=TOOLS, checkpointer=saver)


async def collect(graph, question: str, *, thread: str = "s", **ctx) -> list:
    events = []
    async for event in stream_turn(graph, question, thread_id=thread, context=Context(**ctx)):
        events.append(event)
    return events


async def test_parallel_tool_turn_yields_events_in_order(vllm, graph):
    events = await collect(graph, "What time is it in Tokyo, and what's the weather there?")
    kinds = [kind(e) for e in events]
    # plan asks for two tools at once; both start before either finishes is not guaranteed (the clock is
    # instant), but every start precedes its own finish, which precedes its trace record.
    plan_step = kinds.index("StepRecorded")
    assert isinstance(events[plan_step], StepRecorded) and events[plan_step].step.tool_calls == [
        "get_current_time",
        "get_city_weather",
    ]
    starts = [i for i, e in enumerate(events) if isinstance(e, ToolStarted)]
    assert len(starts) == 2 and all(i > plan_step for i in starts)
    for start in starts:
        call_id = events[start].call_id
        finish = next(i for i, e in enumerate(events) if isinstance(e, ToolFinished) and e.call_id == call_id)
        record = next(i for i, e in enumerate(events) if isinstance(e, StepRecorded) and e.step.call_id == call_id)
        assert start < finish < record
    # the answer's tokens come after both tool records, and the turn ends with TurnEnded, once
    last_tool_record = max(i for i, e in enumerate(events) if isinstance(e, StepRecorded) and e.step.kind == "tool")
    answer_tokens = [i for i, e in enumerate(events) if isinstance(e, Token) and i > last_tool_record]
    assert answer_tokens and kinds[-1] == "TurnEnded" and kinds.count("TurnEnded") == 1
    result = events[-1].result
    assert "".join(events[i].text for i in answer_tokens).strip() == result.answer.strip()
    assert [s.kind for s in result.steps] == ["model", "tool", "tool", "model"]
    assert result.stopped is None


async def test_step_budget_is_recorded_by_the_graph_on_the_answer_step(vllm, graph):
    vllm.script(*[tool_call_text("calculate", {"expression": f"{i}+1"}) for i in range(2)], "Best: 3.")
    events = await collect(graph, "keep calculating", max_steps=2)
    result = events[-1].result
    assert isinstance(events[-1], TurnEnded) and result.stopped == "max_steps"
    answer = [e.step for e in events if isinstance(e, StepRecorded) and e.step.node == "answer"]
    assert len(answer) == 1 and answer[0].stopped == "max_steps"
    assert [s.stopped for s in result.steps if s.node != "answer"] == [None] * (len(result.steps) - 1)
    (turn,) = await load_turns(graph, "s")
    assert turn.stopped == "max_steps" and turn.answer == "Best: 3."


async def test_stop_mid_token_keeps_the_partial_answer_and_nothing_presentational(vllm, graph):
    vllm.config.token_delay = 0.05
    vllm.script(Reply(text="word " * 200))
    seen: list = []
    async with aclosing(stream_turn(graph, "talk a lot", thread_id="m", context=Context())) as events:
        async for event in events:
            seen.append(event)
            if sum(isinstance(e, Token) for e in seen) >= 3:
                break  # like Gradio closing the generator at a yield: aclosing closes the stream
    await wait_for(lambda: vllm.disconnects >= 1)  # the model request was closed
    partial = "".join(e.text for e in seen if isinstance(e, Token)).strip()
    state = await graph.aget_state({"configurable": {"thread_id": "m"}})
    ai = [m for m in state.values["messages"] if isinstance(m, AIMessage)]
    assert [m.content for m in ai] == [partial]  # the partial answer, as streamed, and nothing else
    assert not any(mark in m.content for m in ai for mark in PRESENTATIONAL)
    stop = state.values["steps"][-1]
    assert stop["kind"] == "model" and stop["status"] == "cancelled" and stop["stopped"] == "user"
    (turn,) = await load_turns(graph, "m")
    assert turn.stopped == "user" and turn.answer == partial
    vllm.config.token_delay = 0.0
    nxt = await collect(graph, "short question", thread="m")
    assert isinstance(nxt[-1], TurnEnded) and nxt[-1].result.answer
    sent = [m for m in vllm.requests[-1]["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in sent] == [partial]


async def test_stop_mid_tool_cancels_the_call_and_records_it(vllm):
    release = asyncio.Event()
    started = asyncio.Event()

    @tool
    async def get_city_weather(city: str) -> str:
        """Get the weather. Args: city: city name."""
        started.set()
        await release.wait()  # never set: the stop cancels it
        return "sunny"

    settings = get_settings()
    async with open_checkpointer(settings) as saver:
        graph = build_graph(settings=settings, tools=[get_city_weather], checkpointer=saver)
        task = asyncio.create_task(collect(graph, "查询北京的天气", thread="t"))
        await asyncio.wait_for(started.wait(), timeout=10)
        task.cancel()  # like Ctrl-C in the REPL, or Gradio cancelling the handler
        with pytest.raises(asyncio.CancelledError):
            await task
        state = await graph.aget_state({"configurable": {"thread_id": "t"}})
        messages = state.values["messages"]
        tool_msgs = [m for m in messages if isinstance(m, ToolMessage)]
        assert [(m.name, m.content, m.status) for m in tool_msgs] == [("get_city_weather", CANCELLED_TOOL, "error")]
        stop = state.values["steps"][-1]
        assert (stop["kind"], stop["name"], stop["status"], stop["stopped"]) == (
            "tool",
            "get_city_weather",
            "cancelled",
            "user",
        )
        assert not any(isinstance(m, AIMessage) and not m.tool_calls for m in messages)  # no made-up answer
        (turn,) = await load_turns(graph, "t")
        assert turn.stopped == "user"
        nxt = await collect(graph, "hello", thread="t")
        assert isinstance(nxt[-1], TurnEnded) and nxt[-1].result.answer


async def test_a_failing_turn_raises_and_ends_without_turn_ended(vllm, graph):
    import openai

    vllm.script(Reply(text="This answer will break", error_after_tokens=2))
    seen: list = []
    with pytest.raises(openai.APIError):
        async for event in stream_turn(graph, "break please", thread_id="e", context=Context()):
            seen.append(event)
    assert not any(isinstance(e, TurnEnded) for e in seen)
