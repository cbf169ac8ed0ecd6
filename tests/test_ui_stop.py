"""Stop in the web UI, 20 times in a row in Debian's Chromium: the page never shows an error and keeps working.

One app process (`python -m ui.app`) and one Chromium for the module. The stops alternate between a fresh
page, a page whose endpoint URL was just changed in Settings (to a second scripted server), a stop in the
middle of the streamed answer and one while a slow tool call is pending (its weather lookup goes to a server
that never answers). After every Stop: no error pill or error toast anywhere, the partial answer stays with
its "(stopped)" note, the question box is usable, the request really was closed (the server counts the
disconnect), and the next question gets its whole answer. Everything waits on page or server state, never
on sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import socketserver
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.demo.server import DemoServer, Reply, tool_call_text
from graph.runner import CANCELLED_TOOL
from tests.ui_fixtures import (  # noqa: F401 - fixtures are used by name
    UiApp,
    app_env,
    chromium,
    open_page,
    start_app,
    ui_workdir,
    wait_until,
)

pytest.importorskip("playwright")
from playwright.sync_api import Locator, Page, expect  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STOPS = 20
KINDS = ("fresh page", "settings change", "mid-token", "mid-tool")
TOKEN_DELAY_S = 0.1  # the slow answer: one word a token, 300 of them take far longer than a Stop needs
ANSWER_WORDS = 300
STOPPED = "(stopped)"
ERROR_STATE_JS = """() => Array.from(document.querySelectorAll(
    '[data-testid=status-tracker] .error, .toast-body.error, .toast-body.warning'
)).map(e => e.innerText.trim() || e.className)"""


class HangingGeocoder:
    """A weather lookup that never answers: it counts the requests and the clients that give up on them."""

    def __init__(self) -> None:
        self.arrived = 0
        self.disconnects = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._hang(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/search"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hanging-geocoder", daemon=True)

    def _hang(self, sock: socket.socket) -> None:
        sock.settimeout(0.1)
        received = b""
        while b"\r\n\r\n" not in received and not self._stopping.is_set():
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                return
            received += chunk
        with self._lock:
            self.arrived += 1
        while not self._stopping.is_set():  # no answer, ever: wait for the client to close the connection
            try:
                if sock.recv(4096) == b"":
                    with self._lock:
                        self.disconnects += 1
                    return
            except TimeoutError:
                continue
            except OSError:  # reset by the client: it went away too
                with self._lock:
                    self.disconnects += 1
                return

    def __enter__(self) -> HangingGeocoder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def geocoder() -> Iterator[HangingGeocoder]:
    with HangingGeocoder() as server:
        yield server


@pytest.fixture(scope="module")
def second_vllm() -> Iterator[DemoServer]:
    """The scripted server the Settings panel switches the endpoint URL to."""
    with DemoServer() as server:
        yield server


@pytest.fixture(scope="module")
def stop_app(demo_server: Any, geocoder: HangingGeocoder, ui_workdir: Path) -> Iterator[UiApp]:
    """The app as a user starts it, on the session's scripted server; its weather lookups hang."""
    app = start_app(app_env(demo_server, ui_workdir, WEATHER_GEOCODING_URL=geocoder.url), ui_workdir)
    try:
        yield app
    finally:
        app.stop()


# --- page helpers -----------------------------------------------------------------------------------


def chat(page: Page) -> Locator:
    return page.locator("#chatbot")


def last_answer(page: Page) -> Locator:
    return chat(page).locator("[data-testid=bot]").last


def ask(page: Page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def wait_idle(page: Page) -> None:
    """Until no event is updating the chat (Gradio hides the chat's status tracker then)."""
    page.wait_for_function(
        "() => document.querySelector('#chatbot > [data-testid=status-tracker]').classList.contains('hide')"
    )


def wait_turn(page: Page, n: int) -> None:
    """Until the page shows turn `n` as over (the trace panel names it) and no event is updating the chat."""
    page.wait_for_function(
        """n => {
            const picker = document.querySelector('input[aria-label="Turn"]');
            const tracker = document.querySelector('#chatbot > [data-testid=status-tracker]');
            return picker && picker.value.startsWith(`Turn ${n}:`) && tracker.classList.contains('hide');
        }""",
        arg=n,
    )


def open_settings(page: Page) -> None:
    """Open the Settings panel. Its fields are created when it first opens, and a value typed in the same
    instant can be lost (a person is never that quick), so the page opens it when it loads, before the turn."""
    page.get_by_role("button", name="Settings (apply to the next turn)").click()
    expect(page.get_by_label("Endpoint URL")).to_be_editable()


def change_endpoint(page: Page, url: str) -> None:
    """Type a new endpoint URL in the (open) Settings panel, as a user does: it applies to the next turn."""
    field = page.get_by_label("Endpoint URL")
    field.fill(url)
    field.press("Tab")
    expect(field).to_have_value(url)


def assert_usable(page: Page, when: str) -> None:
    """No error pill or error/warning toast anywhere, and the question box takes input."""
    shown = page.evaluate(ERROR_STATE_JS)
    assert shown == [], f"{when}: the page shows an error state: {shown}"
    box = page.locator("#question textarea")
    expect(box).to_be_enabled()
    expect(box).to_be_editable()


def user_questions(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


# --- the test -------------------------------------------------------------------------------------


@pytest.mark.timeout(600)  # 40 turns in one browser: about a minute on an idle machine, several when it is busy
def test_twenty_stops_in_a_row_leave_the_page_usable(
    chromium: Any,
    stop_app: UiApp,
    vllm: DemoServer,
    second_vllm: DemoServer,
    geocoder: HangingGeocoder,
) -> None:
    second_vllm.reset()
    servers = (vllm, second_vllm)
    page: Page | None = None
    server, turns = vllm, 0
    try:
        for i in range(STOPS):
            kind = KINDS[i % len(KINDS)]
            when = f"stop {i + 1} ({kind})"
            if page is None or kind == "fresh page":
                if page is not None:
                    page.context.close()
                page = open_page(chromium, stop_app.url)
                open_settings(page)
                server, turns = vllm, 0
            if kind == "settings change":
                server = servers[1 - servers.index(server)]
                change_endpoint(page, server.base_url)
            question = f"Stop me {i + 1}" if kind != "mid-tool" else f"What's the weather in Slowtown{i + 1}?"
            if kind == "mid-tool":
                pending = geocoder.disconnects
                server.config.token_delay = 0.0
                server.script(Reply(text=tool_call_text("get_city_weather", {"city": f"Slowtown{i + 1}"})))
                arrived = geocoder.arrived
                ask(page, question)
                wait_until(
                    lambda before=arrived: geocoder.arrived > before, what=f"{when}: the tool's lookup to be pending"
                )
            else:
                pending = server.disconnects
                opening = f"Story{i + 1}:"
                server.config.token_delay = TOKEN_DELAY_S
                server.script(Reply(text=" ".join([opening, *["once"] * ANSWER_WORDS])))
                ask(page, question)
                # Some of the answer is on the page (how much varies from stop to stop), the rest still to come.
                expect(chat(page)).to_contain_text(f"{opening}{' once' * (2 + 7 * i % 5)} ")
            page.locator("#stop").click()

            # The Stop is done: the turn's event is over, its partial answer shown stopped, its request closed.
            expect(last_answer(page)).to_contain_text(STOPPED)
            wait_idle(page)
            if kind == "mid-tool":
                wait_until(
                    lambda before=pending: geocoder.disconnects > before,
                    timeout=10,
                    what=f"{when}: the pending tool call to close its request",
                )
            else:
                shown = last_answer(page).inner_text()
                assert shown.startswith(opening) and shown.count("once") < ANSWER_WORDS, f"{when}: not partial"
                wait_until(
                    lambda fake=server, before=pending: fake.disconnects > before,
                    timeout=10,
                    what=f"{when}: the scripted server to see the stream closed",
                )
            assert_usable(page, when)
            turns += 1
            wait_turn(page, turns)  # the trace panel shows the stopped turn's records
            if kind == "mid-tool":
                expect(page.get_by_role("grid", name="Steps")).to_contain_text("cancelled")

            # The next question gets its whole answer, on the same thread, after the stopped turn.
            server.config.token_delay = 0.0
            server.script(Reply(text=f"Follow-up {i + 1} is complete. 第{i + 1}个问题回答完毕。"))
            ask(page, f"Are you still there? {i + 1}")
            turns += 1
            wait_turn(page, turns)
            expect(last_answer(page)).to_contain_text(f"第{i + 1}个问题回答完毕。")
            expect(last_answer(page)).not_to_contain_text(STOPPED)
            history = server.requests[-1]["messages"]
            assert user_questions(server.requests[-1])[-2:] == [question, f"Are you still there? {i + 1}"], when
            if kind == "mid-tool":  # the cancelled call was saved for the model to see
                assert any(m["role"] == "tool" and CANCELLED_TOOL in m["content"] for m in history), when
            else:  # the partial answer was saved as it was streamed, without the page's note
                partial = [
                    m for m in history if m["role"] == "assistant" and (m.get("content") or "").startswith(opening)
                ]
                assert len(partial) == 1 and STOPPED not in partial[0]["content"], when
            assert_usable(page, f"{when}, after the next question")
    finally:
        if page is not None:
            page.context.close()
        for each in servers:
            each.config.token_delay = 0.0
    log = stop_app.log()
    assert "Traceback" not in log and "Task exception was never retrieved" not in log, log[-3000:]


# --- the handler on its own (no browser) -----------------------------------------------------------


class _Request:
    username = None


def _in_own_loop(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run `scenario` on its own event loop, apart from Playwright's."""

    async def guarded() -> Any:
        try:
            return await scenario()
        finally:
            from graph.model import aclose_models

            await aclose_models()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, guarded()).result(timeout=60)


async def _poll(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_stop_ends_a_turn_whose_event_nobody_drives_any_more(vllm: DemoServer) -> None:
    """Gradio can drop a turn's generator while it waits at a yield, without closing it: Stop still ends it."""
    from configs.settings import load_settings
    from graph.threads import load_turns
    from tools import TOOLS
    from ui.backend import Backend, Session
    from ui.handlers import Handlers

    knobs = (None, None, 0.2, 1024, 8, [t.name for t in TOOLS], _Request())

    async def scenario() -> None:
        backend = Backend(load_settings())
        handlers, session = Handlers(backend), Session()
        vllm.config.token_delay = 0.05
        vllm.script(Reply(text="word " * 200))
        abandoned = handlers.run("Tell me a long story", session, "owner", *knobs)
        try:
            async for _ in abandoned:
                if session.view is not None and session.view.answer.count("word") >= 3:
                    break  # parked at its yield, and never resumed nor closed (as Gradio leaves it)
            await handlers.stop(session)
            assert not session.running, "the stopped turn is still running"
            shown = str(session.display()[-1])
            assert STOPPED in shown and "word word word" in shown, shown
            await _poll(lambda: vllm.disconnects >= 1, "the model stream to be closed")
            stored = (await load_turns(await backend.graph(), session.thread_id))[-1]
            assert stored.answer.startswith("word word") and stored.stopped == "user", stored
            vllm.config.token_delay = 0.0
            follow_up = [out async for out in handlers.run("What time is it in Tokyo?", session, "owner", *knobs)]
            assert "Current time (get_current_time)" in str(follow_up[-1][0])
        finally:
            await abandoned.aclose()
            await backend.close()

    _in_own_loop(scenario)


def test_stop_before_the_turn_starts_gives_the_question_back(vllm: DemoServer) -> None:
    """A Stop that comes before the turn could start asks nothing; one pressed while idle is forgotten."""
    from configs.settings import load_settings
    from tools import TOOLS
    from ui.backend import Backend, Session
    from ui.handlers import Handlers

    knobs = (None, None, 0.2, 1024, 8, [t.name for t in TOOLS], _Request())

    async def scenario() -> None:
        backend = Backend(load_settings())
        handlers, session = Handlers(backend), Session()
        graph = backend.graph

        async def graph_then_stop() -> Any:  # Stop arrives while the turn is being set up
            built = await graph()
            await handlers.stop(session)
            return built

        try:
            backend.graph = graph_then_stop  # type: ignore[method-assign]
            outs = [out async for out in handlers.run("What time is it in Paris?", session, "owner", *knobs)]
            backend.graph = graph  # type: ignore[method-assign]
            assert outs[-1][1] == "What time is it in Paris?", "the question did not go back into the box"
            assert session.display() == [] and not session.running
            assert vllm.requests == [], "the stopped question still went to the model"
            await handlers.stop(session)  # nothing is running: nothing to stop, and nothing left pending
            outs = [out async for out in handlers.run("What time is it in Tokyo?", session, "owner", *knobs)]
            assert "Current time (get_current_time)" in str(outs[-1][0])
        finally:
            await backend.close()

    _in_own_loop(scenario)
