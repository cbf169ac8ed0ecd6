"""The web UI in a real browser: Debian's Chromium drives `python -m ui.app` against the fake vLLM server.

One app process and one Chromium per module; every test opens its own browser context (fresh localStorage,
so a new conversation owner) and the fake server is reset per test (`vllm` fixture). Tests synchronise on
page state (Playwright's auto-waiting `expect`) and on server state polled with a deadline, never on sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from graph.demo.server import DemoConfig, Reply, tool_call_text
from tests.ui_fixtures import (  # noqa: F401 - fixtures are used by name
    UiApp,
    app_env,
    chromium,
    free_port,
    open_page,
    open_ui_pages,
    ui_app,
    ui_page,
    ui_workdir,
    wait_until,
)

pytest.importorskip("playwright")
from playwright.sync_api import Locator, Page, expect  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def down_app(demo_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiApp]:
    """A second app whose OPENAI_API_BASE is a closed port (the model server is down).

    Started (not awaited) with the module so its slow import overlaps the main app's start-up.
    """
    workdir = tmp_path_factory.mktemp("ui-down")
    closed = f"http://127.0.0.1:{free_port()}/v1"
    app = UiApp(app_env(demo_server, workdir, OPENAI_API_BASE=closed), workdir).start()
    try:
        yield app
    finally:
        app.stop()


# --- page helpers -----------------------------------------------------------------------------------


def ask(page: Page, question: str) -> None:
    """Type a question and press Enter, as a user does."""
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def chat(page: Page) -> Locator:
    return page.locator("#chatbot")


def turn_picker(page: Page) -> Locator:
    """The trace panel's "Turn" dropdown: it shows "Turn N: question" once turn N has finished."""
    return page.get_by_label("Turn", exact=True)


def wait_idle(page: Page) -> None:
    """Until no event is updating the chat (Gradio hides the chatbot's status tracker when it is idle).

    Only meaningful once something shows the event has started, e.g. its first output is visible.
    """
    page.wait_for_function(
        "() => document.querySelector('#chatbot > [data-testid=status-tracker]').classList.contains('hide')"
    )


def wait_turn(page: Page, n: int) -> None:
    """Until turn `n` of the open conversation is finished (the trace panel is filled at the very end)."""
    page.wait_for_function(
        """n => {
            const picker = document.querySelector('input[aria-label="Turn"]');
            const tracker = document.querySelector('#chatbot > [data-testid=status-tracker]');
            return picker && picker.value.startsWith(`Turn ${n}:`) && tracker.classList.contains('hide');
        }""",
        arg=n,
    )


def thought(page: Page, title: str) -> Locator:
    """The title row of a collapsible bubble (plan, tool step, error) whose title contains `title`."""
    return chat(page).locator(".thought-group .title", has_text=title)


def expand(page: Page, title: str, *, last: bool = False) -> None:
    """Open a collapsed bubble by clicking its title (the only such bubble, or the latest one)."""
    rows = thought(page, title)
    if last:
        rows = rows.last
    else:
        expect(rows).to_have_count(1)
    rows.click()


def steps_table(page: Page) -> Locator:
    return page.get_by_role("grid", name="Steps")


def timeline(page: Page) -> Locator:
    return page.locator(".js-plotly-plot").first


def sidebar_titles(page: Page) -> Locator:
    return page.locator("#conversations label")


def open_accordion(page: Page, label: str) -> None:
    page.get_by_role("button", name=re.compile(re.escape(label))).click()


def user_questions(request: dict[str, Any]) -> list[str]:
    """The user messages of one chat request to the fake server (the thread's history plus the new one)."""
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def _db(app: UiApp) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{app.env['AGENT_CHECKPOINT_DB']}?mode=ro", uri=True, timeout=5)


def stored_turns(app: UiApp, thread_id: str) -> int:
    """Checkpoints the app's checkpoint file holds for a thread (server state)."""
    with contextlib.closing(_db(app)) as db:
        return db.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?", (thread_id,)).fetchone()[0]


def stored_title(app: UiApp, thread_id: str) -> str | None:
    """The thread's title in the app's conversation list (server state)."""
    with contextlib.closing(_db(app)) as db:
        row = db.execute("SELECT title FROM conversations WHERE thread_id = ?", (thread_id,)).fetchone()
    return row[0] if row else None


def no_traceback(page: Page) -> None:
    assert "Traceback" not in page.locator("body").inner_text()


# --- tests ------------------------------------------------------------------------------------------


def test_chinese_weather_question_shows_tool_step_answer_and_trace(ui_page: Page, vllm) -> None:
    ask(ui_page, "查询北京的天气")
    wait_turn(ui_page, 1)
    expect(chat(ui_page)).to_contain_text("查询结果如下")  # the answer, in Chinese
    expect(chat(ui_page)).to_contain_text("北京")
    # Tool steps sit inside the plan bubble; both start collapsed once the turn is done.
    expand(ui_page, "🧠 Plan")
    expect(thought(ui_page, "🛠️ get_city_weather")).to_be_visible()
    expect(chat(ui_page)).not_to_contain_text('"city": "北京"')
    expand(ui_page, "🛠️ get_city_weather")
    expect(chat(ui_page)).to_contain_text('"city": "北京"')  # the arguments
    expect(chat(ui_page)).to_contain_text("Result")
    expect(chat(ui_page)).to_contain_text("°C")  # the tool's result
    # The trace panel: the steps table and the timeline of this turn.
    expect(steps_table(ui_page)).to_contain_text("get_city_weather")
    expect(steps_table(ui_page)).to_contain_text("model")
    expect(timeline(ui_page)).to_contain_text("Turn timeline")
    expect(timeline(ui_page)).to_contain_text("tool · get_city_weather")
    expect(ui_page.get_by_text(re.compile(r"3 steps"))).to_be_visible()
    no_traceback(ui_page)


def test_thinking_model_shows_a_thinking_step_apart_from_the_answer(ui_page: Page, vllm) -> None:
    # vLLM with --reasoning-parser qwen3: the thinking arrives as `reasoning`, the answer as content.
    vllm.config = DemoConfig(reasoning_parser="qwen3")
    vllm.script(
        "<think>用户想知道北京的时间，我应该调用时钟。</think>\n\n"
        + tool_call_text("get_current_time", {"timezone": "Asia/Shanghai"}),
        "<think>The clock answered; now reply briefly.</think>\n\n北京现在是晚上八点。",
    )
    ask(ui_page, "北京现在几点？")
    wait_turn(ui_page, 1)
    expect(chat(ui_page)).to_contain_text("北京现在是晚上八点。")
    expand(ui_page, "🧠 Plan")
    thinking = thought(ui_page, "💭 Thinking")
    expect(thinking).to_have_count(2)  # one per model call, nested in the plan beside the tool step
    expect(thought(ui_page, "🛠️ get_current_time")).to_be_visible()
    expect(chat(ui_page)).not_to_contain_text("我应该调用时钟")  # collapsed until opened
    thinking.first.click()
    expect(chat(ui_page)).to_contain_text("我应该调用时钟")
    answer = chat(ui_page).locator(".message-row").last
    expect(answer).to_contain_text("北京现在是晚上八点")
    expect(answer).not_to_contain_text("now reply briefly")  # never part of the answer
    no_traceback(ui_page)


def test_thinking_switch_in_the_settings_reaches_the_server(ui_page: Page, vllm) -> None:
    vllm.config = DemoConfig(reasoning_parser="qwen3")
    vllm.script("No thinking this time.", "<think>Now I think.</think>\n\nThinking again.")
    ui_page.get_by_role("button", name="Settings (apply to the next turn)").click()
    ui_page.locator("#thinking").get_by_label("off", exact=True).check()
    ask(ui_page, "hi")
    wait_turn(ui_page, 1)
    expect(chat(ui_page)).to_contain_text("No thinking this time.")
    ui_page.locator("#thinking").get_by_label("on", exact=True).check()
    ask(ui_page, "hi again")
    wait_turn(ui_page, 2)
    expect(chat(ui_page)).to_contain_text("Thinking again.")
    asked = [r for r in vllm.requests if any(m.get("content") in ("hi", "hi again") for m in r.get("messages", []))]
    sent = [r.get("chat_template_kwargs") for r in asked]  # (the status badge's own checks are left out)
    assert sent == [{"enable_thinking": False}, {"enable_thinking": True}]


def test_parallel_question_shows_two_tool_steps_under_the_plan_and_screenshot(ui_page: Page, vllm, tmp_path) -> None:
    ask(ui_page, "What time is it in Tokyo, and what's the weather there?")
    wait_turn(ui_page, 1)
    expect(chat(ui_page)).to_contain_text("Here's what I found")
    expand(ui_page, "🧠 Plan")
    # Both tool bubbles are nested in the plan bubble (one model call asked for both).
    nested = chat(ui_page).locator(".thought-group .children > .thought-group > .title")
    expect(nested).to_have_count(2)
    expect(nested.nth(0)).to_contain_text("🛠️ get_current_time")
    expect(nested.nth(1)).to_contain_text("🛠️ get_city_weather")
    expect(chat(ui_page)).to_contain_text("calls get_current_time, get_city_weather")
    calls = [m for m in vllm.requests[-1]["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert [[c["function"]["name"] for c in m["tool_calls"]] for m in calls] == [
        ["get_current_time", "get_city_weather"]
    ]  # one model call, two tool calls

    # The same in Chinese, on the same thread: this finished turn and its trace make a full-page picture (in
    # tmp_path: docs/screenshot.png is made on purpose by scripts/screenshot.py, never by a test run).
    thought(ui_page, "🧠 Plan").click()  # fold turn 1 away again
    expect(nested).to_have_count(0)
    ask(ui_page, "东京现在几点？天气怎么样？")
    wait_turn(ui_page, 2)
    expect(chat(ui_page)).to_contain_text("查询结果如下")
    expand(ui_page, "🧠 Plan", last=True)
    expect(nested).to_have_count(2)
    expand(ui_page, "🛠️ get_city_weather", last=True)
    expect(chat(ui_page)).to_contain_text('"city": "东京"')
    thought(ui_page, "🛠️ get_city_weather").last.click()  # fold it again: the picture shows plan and answer
    expect(chat(ui_page)).not_to_contain_text('"city": "东京"')
    expect(timeline(ui_page)).to_contain_text("tool · get_current_time")
    expect(steps_table(ui_page)).to_contain_text("get_city_weather")
    # Before the picture: fonts loaded (the CJK and emoji fallbacks), the bubbles' slide-open animations over.
    ui_page.wait_for_function("() => document.fonts.status === 'loaded'")
    ui_page.wait_for_function("() => !document.querySelector('#chatbot .content[style*=\"overflow: hidden\"]')")
    ui_page.set_viewport_size({"width": 1600, "height": 1000})  # wider chat: the whole turn fits its box
    chat(ui_page).locator("[data-testid=user]").last.evaluate(
        "el => { const wrap = el.closest('.bubble-wrap'); wrap.scrollTop = el.closest('.message-row').offsetTop - 36 }"
    )
    ui_page.evaluate("() => window.scrollTo(0, 0)")
    screenshot = tmp_path / "screenshot.png"
    ui_page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 20_000


def test_stop_during_a_slow_stream_keeps_the_partial_answer(ui_page: Page, vllm) -> None:
    vllm.config.token_delay = 0.2
    vllm.script(Reply(text="word " * 300))
    ask(ui_page, "Tell me a long story")
    expect(chat(ui_page)).to_contain_text("word word")  # some of the answer is streaming in
    ui_page.locator("#stop").click()
    expect(chat(ui_page)).to_contain_text("(stopped)")
    wait_until(lambda: vllm.disconnects >= 1, timeout=10, what="the fake server to see the stream closed")
    shown = chat(ui_page).inner_text()
    assert shown.count("word") < 300  # the stream really was cut short
    # The page stays usable: a follow-up question gets an answer, on the same thread.
    vllm.config.token_delay = 0.0
    ask(ui_page, "What time is it in Tokyo?")
    wait_turn(ui_page, 2)
    expect(chat(ui_page)).to_contain_text("Current time (get_current_time)")
    expect(chat(ui_page)).to_contain_text("(stopped)")  # the stopped turn is still shown above
    history = vllm.requests[-1]["messages"]
    assert user_questions(vllm.requests[-1]) == ["Tell me a long story", "What time is it in Tokyo?"]
    # The thread keeps the partial answer as the model wrote it: "(stopped)" is only shown, never saved.
    partial = [m for m in history if m["role"] == "assistant" and (m.get("content") or "").startswith("word word")]
    assert len(partial) == 1 and "(stopped)" not in partial[0]["content"], history
    no_traceback(ui_page)


class _Request:
    username = None


def test_stop_between_two_updates_ends_the_turn(vllm) -> None:
    """Stop as Gradio delivers it when the turn's generator is suspended at a yield (a timing race in the browser).

    Gradio's `/cancel` route cancels the event's task and then calls `aclose()` on the generator
    (`gradio.utils.safe_aclose_iterator`); while Gradio is post-processing an update, the generator sits at
    its `yield`, so it gets GeneratorExit rather than CancelledError. This drives that path deterministically.
    """
    from configs.settings import load_settings
    from tools import TOOLS
    from ui.backend import Backend, Session
    from ui.handlers import Handlers

    async def scenario() -> tuple[bool, int, str]:
        backend = Backend(load_settings())
        handlers, session = Handlers(backend), Session()
        vllm.config.token_delay = 0.05
        vllm.script(Reply(text="word " * 200))
        knobs = (None, None, 0.2, 256, 8, [t.name for t in TOOLS], _Request())
        turn = handlers.run("Tell me a long story", session, "owner", *knobs)
        try:
            async for _ in turn:
                if session.view is not None and session.view.answer.count("word") >= 3:
                    break  # the generator is now parked at its yield
            await handlers.stop(session)  # the Stop button's own handler
            await turn.aclose()  # then Gradio closes the cancelled event's generator
            deadline = asyncio.get_running_loop().time() + 1
            while vllm.disconnects < 1 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            running, disconnects = session.running, vllm.disconnects
            vllm.config.token_delay = 0.0
            follow_up = [out async for out in handlers.run("What time is it in Tokyo?", session, "owner", *knobs)]
            shown = str(follow_up[-1][0]) if follow_up else ""
            return running, disconnects, shown
        finally:
            leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)
            await backend.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # own event loop, apart from Playwright's
        running, disconnects, shown = pool.submit(asyncio.run, scenario()).result(timeout=60)
    assert not running, "the stopped turn is still marked running"
    assert disconnects >= 1, "the model stream was not closed"
    assert "Current time (get_current_time)" in shown, "the follow-up question got no answer"


def test_reload_lists_the_conversation_and_restores_it(ui_page: Page, vllm) -> None:
    ask(ui_page, "What's the weather in Paris?")
    wait_turn(ui_page, 1)
    expect(chat(ui_page)).to_contain_text("Paris")
    ui_page.reload()
    expect(ui_page.locator("#status")).to_contain_text("🟢")
    expect(chat(ui_page)).not_to_contain_text("Here's what I found")  # a fresh tab starts empty
    expect(sidebar_titles(ui_page)).to_have_text(["What's the weather in Paris?"])
    sidebar_titles(ui_page).first.click()
    expect(chat(ui_page)).to_contain_text("What's the weather in Paris?")
    expect(chat(ui_page)).to_contain_text("Here's what I found")
    expect(chat(ui_page)).to_contain_text("Weather (get_city_weather)")
    expand(ui_page, "🧠 Plan")
    expand(ui_page, "🛠️ get_city_weather")
    expect(chat(ui_page)).to_contain_text('"city": "Paris"')
    wait_turn(ui_page, 1)  # the trace panel follows the opened conversation


@pytest.fixture(scope="module")
def down_page(chromium: Any, down_app: UiApp) -> Iterator[Page]:
    """One page on the app whose model server is down (nothing is stored there, so tests can share it)."""
    page = open_page(chromium, down_app.wait_ready().url)
    try:
        yield page
    finally:
        page.context.close()


def test_endpoint_down_status_badge_and_one_line_error(down_page: Page, down_app: UiApp) -> None:
    page, closed = down_page, down_app.env["OPENAI_API_BASE"]
    page.get_by_role("button", name="➕ New conversation").click()
    status = page.locator("#status")
    expect(status).to_contain_text("🔴")
    expect(status).to_contain_text("cannot connect")
    expect(status).to_contain_text("./run_vllm.sh")
    expect(status).to_contain_text("OPENAI_API_BASE")
    ask(page, "What time is it in Tokyo?")
    error = chat(page).locator(".thought-group", has=page.locator(".title", has_text="💥 Error")).first
    expect(error.locator(".content")).to_be_visible()  # the error bubble is open: no click needed
    expect(error).to_contain_text(f"Cannot reach the model server at {closed}")
    assert "\n" not in error.locator(".content").inner_text().strip()  # one line
    no_traceback(page)
    # The app keeps running: the page still answers (with the same error) and the process is alive.
    ask(page, "北京现在几点？")
    expect(chat(page)).to_contain_text("北京现在几点？")
    expect(thought(page, "💥 Error")).to_have_count(2)
    no_traceback(page)
    assert down_app.alive()
    assert "Traceback" not in down_app.log()


def test_endpoint_error_is_visible_without_clicking(down_page: Page) -> None:
    page = down_page
    page.get_by_role("button", name="➕ New conversation").click()
    expect(thought(page, "💥 Error")).to_have_count(0)
    ask(page, "What time is it in Tokyo?")
    expect(thought(page, "💥 Error")).to_be_visible()
    message = chat(page).locator(".thought-group .content", has_text="Cannot reach the model server")
    expect(message).to_be_visible(timeout=1500)


def test_two_browser_sessions_at_once_see_only_their_own_conversation(open_ui_pages, vllm) -> None:
    vllm.config.token_delay = 0.01  # each turn streams for a second or two: long enough to overlap
    alice, bob = open_ui_pages(2)
    alice.locator("#question textarea").fill("What time is it in Tokyo?")
    bob.locator("#question textarea").fill("查询北京的天气")
    alice.locator("#question textarea").press("Enter")  # both submitted back to back
    bob.locator("#question textarea").press("Enter")
    wait_turn(alice, 1)
    wait_turn(bob, 1)
    expect(chat(alice)).to_contain_text("Current time (get_current_time)")
    expect(chat(bob)).to_contain_text("查询结果如下")
    for page, own, other in (
        (alice, "What time is it in Tokyo?", "查询北京的天气"),
        (bob, "查询北京的天气", "What time is it in Tokyo?"),
    ):
        expect(chat(page)).to_contain_text(own)
        expect(chat(page)).not_to_contain_text(other)
        expect(sidebar_titles(page)).to_have_text([own])
    # Each request to the model carried only its own session's question.
    assert sorted(
        tuple(user_questions(r))
        for r in vllm.requests
        if r.get("tools") and len(r["tools"]) == 3 and r["messages"][-1]["role"] == "user"
    ) == [("What time is it in Tokyo?",), ("查询北京的天气",)]


def test_retry_undo_edit_rename_and_delete(ui_page: Page, vllm, ui_app: UiApp) -> None:
    ask(ui_page, "What time is it in Tokyo?")
    wait_turn(ui_page, 1)
    expect(chat(ui_page)).to_contain_text("Current time (get_current_time)")

    # Retry: the same question again, the old answer replaced (the thread rewound, not appended to).
    vllm.script(Reply(text="Retried: it is tea time in Tokyo."))
    chat(ui_page).get_by_role("button", name="Retry").click()
    expect(chat(ui_page)).to_contain_text("Retried: it is tea time in Tokyo.")
    wait_idle(ui_page)
    expect(chat(ui_page)).not_to_contain_text("Current time (get_current_time)")
    expect(chat(ui_page).locator("[data-testid=user]")).to_have_count(1)
    assert user_questions(vllm.requests[-1]) == ["What time is it in Tokyo?"]
    wait_turn(ui_page, 1)

    # Edit the question: the turn is asked again with the new text.
    chat(ui_page).get_by_role("button", name="Edit").click()
    chat(ui_page).locator("textarea.edit-textarea").fill("What time is it in Paris?")
    chat(ui_page).get_by_role("button", name="Submit").click()
    expect(chat(ui_page)).to_contain_text("Europe/Paris")
    wait_idle(ui_page)
    expect(chat(ui_page)).not_to_contain_text("tea time")
    expect(chat(ui_page).locator("[data-testid=user]")).to_have_text(["What time is it in Paris?"])
    wait_until(
        lambda: user_questions(vllm.requests[-1]) == ["What time is it in Paris?"],
        timeout=10,
        what="the edited question to replace the original one in the thread",
    )
    wait_turn(ui_page, 1)

    # A second turn, then undo it: it leaves the chat and its question goes back into the box.
    ask(ui_page, "What is (17 * 23) ^ 2?")
    wait_turn(ui_page, 2)
    expect(chat(ui_page)).to_contain_text("152881")
    chat(ui_page).get_by_role("button", name="Undo").click()
    expect(chat(ui_page)).not_to_contain_text("152881")
    expect(ui_page.locator("#question textarea")).to_have_value("What is (17 * 23) ^ 2?")
    expect(chat(ui_page)).to_contain_text("What time is it in Paris?")
    ask(ui_page, "北京现在几点？")
    expect(chat(ui_page)).to_contain_text("Asia/Shanghai")
    wait_turn(ui_page, 2)
    assert user_questions(vllm.requests[-1]) == ["What time is it in Paris?", "北京现在几点？"]

    # Rename and delete from the sidebar.
    expect(sidebar_titles(ui_page)).to_have_text(["What time is it in Tokyo?"])
    open_accordion(ui_page, "Rename · delete · open by id")
    ui_page.get_by_label("New title").fill("Clocks 时钟")
    ui_page.get_by_role("button", name="Rename", exact=True).click()
    expect(sidebar_titles(ui_page)).to_have_text(["Clocks 时钟"])
    thread_id = ui_page.locator("#conversations input[type=radio]").get_attribute("value")
    assert thread_id and stored_title(ui_app, thread_id) == "Clocks 时钟"
    assert stored_turns(ui_app, thread_id) > 0
    ui_page.get_by_role("button", name="🗑️ Delete this conversation").click()
    expect(sidebar_titles(ui_page)).to_have_count(0)
    expect(chat(ui_page)).not_to_contain_text("What time is it in Paris?")
    # Deleted for good, not just hidden: the list entry and the thread's checkpoints are gone.
    wait_until(
        lambda: stored_turns(ui_app, thread_id) == 0 and stored_title(ui_app, thread_id) is None,
        timeout=10,
        what="the conversation to leave the checkpoint file",
    )


def test_undo_refreshes_the_trace_panel(ui_page: Page, vllm) -> None:
    ask(ui_page, "What time is it in Tokyo?")
    wait_turn(ui_page, 1)
    ask(ui_page, "What is (17 * 23) ^ 2?")
    wait_turn(ui_page, 2)
    chat(ui_page).get_by_role("button", name="Undo").click()
    expect(chat(ui_page)).not_to_contain_text("152881")
    wait_idle(ui_page)
    expect(turn_picker(ui_page)).to_have_value(re.compile(r"^Turn 1:"), timeout=3000)
    expect(steps_table(ui_page)).not_to_contain_text("calculate", timeout=1000)


def test_settings_apply_to_the_next_turn(ui_page: Page, vllm) -> None:
    open_accordion(ui_page, "Settings (apply to the next turn)")
    ui_page.get_by_label("calculate", exact=True).uncheck()
    expect(ui_page.get_by_label("calculate", exact=True)).not_to_be_checked()
    steps = ui_page.get_by_label("Max steps")
    steps.fill("3")
    steps.press("Tab")
    ask(ui_page, "What is (17 * 23) ^ 2?")
    wait_turn(ui_page, 1)
    offered = [t["function"]["name"] for t in vllm.requests[-1]["tools"]]
    assert offered == ["get_current_time", "get_city_weather"]
    expect(chat(ui_page)).to_contain_text("Sorry, I can't look that up right now")
    expand(ui_page, "🧠 Plan")
    expect(chat(ui_page)).to_contain_text("max steps 3 · tools: get_current_time, get_city_weather")


def test_cli_conversation_opens_by_id_and_continues(ui_page: Page, vllm, ui_app) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "graph.cli", "run", "What time is it in Tokyo?", "--thread", "cli-thread-1"],
        cwd=ui_app.workdir,
        env=ui_app.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    open_accordion(ui_page, "Rename · delete · open by id")
    ui_page.get_by_label("Thread id").fill("cli-thread-1")
    ui_page.get_by_role("button", name="Open", exact=True).click()
    expect(sidebar_titles(ui_page)).to_have_text(["What time is it in Tokyo?"])
    expect(chat(ui_page)).to_contain_text("What time is it in Tokyo?")
    expect(chat(ui_page)).to_contain_text("Current time (get_current_time)")
    wait_turn(ui_page, 1)
    ask(ui_page, "And the weather there?")
    wait_turn(ui_page, 2)
    expect(chat(ui_page)).to_contain_text("Weather (get_city_weather)")
    expect(chat(ui_page)).to_contain_text("Tokyo")
    assert user_questions(vllm.requests[-1]) == ["What time is it in Tokyo?", "And the weather there?"]
