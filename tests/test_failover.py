"""Several endpoints configured directly (no router): failover with with_fallbacks, cool-down, trace."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from configs.settings import load_settings
from graph.context import Context
from graph.demo.server import DemoServer, Reply
from graph.failover import HEALTH
from graph.graph import build_graph
from graph.runner import run_turn

MODEL = "Qwen/Qwen2.5-7B-Instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def fresh_health():
    HEALTH.reset()
    yield
    HEALTH.reset()


@pytest.fixture
def second():
    with DemoServer() as server:
        yield server


async def ask(settings, question="What time is it in Tokyo?", stream=True):
    graph = build_graph(settings=settings)
    return await run_turn(graph, question, thread_id="t", context=Context(stream=stream, max_steps=4))


@pytest.mark.parametrize("stream", [True, False])
async def test_first_endpoint_down_the_second_answers_and_the_trace_says_why(second, stream):
    down = free_port()
    settings = load_settings(
        openai_api_base=f"http://127.0.0.1:{down}/v1,{second.base_url}", agent_model=MODEL, agent_max_retries=0
    )
    result = await ask(settings, stream=stream)
    assert "Tokyo" in result.answer
    models = [s for s in result.steps if s.kind == "model"]
    assert [m.endpoint for m in models] == [f"127.0.0.1:{second.port}"] * 2
    # The first call found the endpoint down; the second one skipped it for its cool-down.
    assert [str(s) for s in models[0].skipped] == [f"127.0.0.1:{down}: connection failed (ConnectError)"]
    assert [str(s) for s in models[1].skipped] == [
        f"127.0.0.1:{down}: cooling down after connection failed (ConnectError)"
    ]
    assert [s.reason for s in models[0].skipped + models[1].skipped] == ["connection", "cooldown"]
    assert len(second.requests) == 2


async def test_the_first_endpoint_is_used_again_after_the_cooldown(second):
    port = free_port()
    settings = load_settings(
        openai_api_base=f"http://127.0.0.1:{port}/v1,{second.base_url}",
        agent_model=MODEL,
        agent_max_retries=0,
        agent_failover_cooldown=0.2,
    )
    first_result = await ask(settings)
    assert {s.endpoint for s in first_result.steps if s.kind == "model"} == {f"127.0.0.1:{second.port}"}
    with DemoServer(port=port) as first:  # the first endpoint comes back on its address
        second.reset()
        while HEALTH.cooling(f"http://127.0.0.1:{port}/v1", settings.agent_failover_cooldown):
            await asyncio.sleep(0.05)  # the cool-down is a wall-clock period by design
        result = await ask(settings)
        models = [s for s in result.steps if s.kind == "model"]
        assert [m.endpoint for m in models] == [f"127.0.0.1:{port}"] * 2
        assert all(m.skipped == [] for m in models)
        assert len(first.requests) == 2 and second.requests == []


async def test_a_5xx_fails_over_but_a_request_error_is_not_retried_elsewhere(second):
    with DemoServer() as first:
        settings = load_settings(
            openai_api_base=f"{first.base_url},{second.base_url}", agent_model=MODEL, agent_max_retries=0
        )
        first.script(
            Reply(
                status=503,
                body={
                    "error": {"message": "overloaded", "type": "ServiceUnavailableError", "param": None, "code": 503}
                },
            )
        )
        result = await ask(settings, stream=False)
        plan = result.steps[0]
        assert plan.endpoint == f"127.0.0.1:{second.port}"
        assert [(str(s), s.reason) for s in plan.skipped] == [(f"127.0.0.1:{first.port}: HTTP 503", "http_5xx")]

        HEALTH.reset()
        first.reset(), second.reset()
        long_question = "word " * 40000  # longer than the served context: a 400 that is the request's fault
        with pytest.raises(Exception) as err:
            await ask(settings, question=long_question, stream=False)
        assert getattr(err.value, "status_code", None) == 400
        assert len(first.requests) == 1 and second.requests == []


async def test_each_endpoint_gets_only_its_own_key():
    keys = ("sk-first-ONLY", "sk-second-ONLY")
    with DemoServer() as first, DemoServer() as second:
        first.config.api_key, second.config.api_key = keys
        settings = load_settings(
            agent_endpoints=[
                {"base_url": first.base_url, "api_key": keys[0], "model": MODEL},
                {"base_url": second.base_url, "api_key": keys[1], "model": MODEL},
            ],
            agent_max_retries=0,
        )
        first.script(
            Reply(
                status=500,
                body={"error": {"message": "boom", "type": "InternalServerError", "param": None, "code": 500}},
            )
        )
        result = await ask(settings, stream=False)
        # Each server checks its own key (a wrong one is a 401): the first got past auth to its scripted
        # 500, the second answered.
        assert result.steps[0].endpoint == f"127.0.0.1:{second.port}"
        assert [str(s) for s in result.steps[0].skipped] == [f"127.0.0.1:{first.port}: HTTP 500"]
        assert len(first.requests) == 1 and len(second.requests) == 2
        trace = json.dumps(result.as_json())
        assert not any(k in trace for k in keys)


def test_doctor_checks_every_endpoint_one_row_each(vllm):
    from tests.conftest import run_cli

    down = free_port()
    proc = run_cli("doctor", "--base-url", vllm.base_url, "--base-url", f"http://127.0.0.1:{down}/v1", "--json")
    assert proc.returncode == 1, proc.stderr  # one endpoint works: degraded, not unreachable
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    first, second = report["endpoints"]
    assert first["base_url"] == vllm.base_url and first["ok"] and first["model"] == MODEL
    assert second["base_url"] == f"http://127.0.0.1:{down}/v1" and not second["ok"]
    assert second["checks"][0]["status"] == "fail" and "cannot connect" in second["checks"][0]["detail"]

    table = run_cli(
        "doctor", "--base-url", vllm.base_url, "--base-url", f"http://127.0.0.1:{down}/v1", env={"COLUMNS": "250"}
    )
    assert "1 of 2 endpoints work" in table.stdout and f"127.0.0.1:{down}" in table.stdout
    both_down = run_cli(
        "doctor", "--base-url", f"http://127.0.0.1:{down}/v1", "--base-url", f"http://127.0.0.1:{free_port()}/v1"
    )
    assert both_down.returncode == 3 and "No endpoint works" in both_down.stdout
    assert "Traceback" not in table.stderr + both_down.stderr


async def test_a_late_reader_still_gets_what_a_dying_server_sent():
    """aiohttp drops its buffered bytes when the connection closes; the transport must not (issue #11's race)."""
    import httpx

    from configs.settings import Endpoint
    from graph.failover import TrackedTransport

    events = [f'data: {{"n": {i}}}\n\n'.encode() for i in range(5)]
    closed = asyncio.Event()

    async def dying_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request (no body)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events))  # no final 0-chunk: it dies
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(dying_server, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    received, error = b"", None
    try:
        async with httpx.AsyncClient(transport=TrackedTransport(Endpoint(base_url=url))) as client:
            async with client.stream("GET", f"{url}/stream") as response:
                await closed.wait()  # the reader is busy elsewhere while the server sends it all and dies:
                for _ in range(10):  # loop turns for the client socket to deliver the bytes, then the close
                    await asyncio.sleep(0)
                try:
                    async for chunk in response.aiter_bytes():
                        received += chunk
                except httpx.TransportError as exc:
                    error = exc
    finally:
        server.close()
        await server.wait_closed()
    assert received == b"".join(events)
    assert isinstance(error, httpx.RemoteProtocolError)  # and then it says the connection broke
