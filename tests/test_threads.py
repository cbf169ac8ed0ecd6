"""Threads read back as turns, and rewound for retry/edit/undo without losing history."""

from __future__ import annotations

from configs.settings import get_settings
from graph.checkpoint import open_checkpointer
from graph.context import Context
from graph.graph import build_graph
from graph.runner import run_turn
from graph.threads import load_turns, rewind


async def test_load_rewind_and_continue(vllm):
    settings = get_settings()
    async with open_checkpointer(settings) as saver:
        graph = build_graph(settings=settings, checkpointer=saver)

        async def ask(q: str) -> None:
            await run_turn(graph, q, thread_id="t", context=Context())

        await ask("What time is it in Tokyo?")
        await ask("查询北京的天气")
        await ask("hello")
        turns = await load_turns(graph, "t")
        assert [t.question for t in turns] == ["What time is it in Tokyo?", "查询北京的天气", "hello"]
        assert [s.name for s in turns[0].steps if s.kind == "tool"] == ["get_current_time"]
        assert [s.name for s in turns[1].steps if s.kind == "tool"] == ["get_city_weather"]
        assert all(t.answer for t in turns)

        assert await rewind(graph, "t", 1)
        assert [t.question for t in await load_turns(graph, "t")] == ["What time is it in Tokyo?"]
        await ask("calculate 6*7")
        turns = await load_turns(graph, "t")
        assert [t.question for t in turns] == ["What time is it in Tokyo?", "calculate 6*7"]
        assert [s.turn for s in turns[1].steps] == [2] * len(turns[1].steps) and turns[1].steps
        users = [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "user"]
        assert users == ["What time is it in Tokyo?", "calculate 6*7"]

        assert await rewind(graph, "t", 0)
        assert await load_turns(graph, "t") == []
        assert not await rewind(graph, "t", 3)
