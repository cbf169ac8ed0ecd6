"""MCP tools and approval in the web UI, in Debian's Chromium: approve, edit, reject, reload, a late second tab.

The browser tests run the app as a user starts it (`python -m ui.app`) in a directory whose `mcp.json` names
two stdio servers: `notes` (tests/mcp/notes_server.py: read_note runs by its read-only hint, write_note asks)
and `broken`, which exits before the handshake. The fake vLLM server is scripted per test; tests synchronise
on page state (Playwright's auto-waiting `expect`), never on sleeps. The pure parts (the panel's text and
decisions, the paused turn's bubbles, the tool settings) are tested at the end without a browser; the
browser tests are marked `browser` and `slow` by the fixtures they use (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.demo.server import tool_call_text
from graph.events import ApprovalRequested, PendingCall, StepRecorded, ToolStarted, TurnEnded, TurnResult
from graph.trace import Step
from tests.conftest import ROOT
from tests.ui_fixtures import (  # noqa: F401 - fixtures are used by name
    UiApp,
    app_env,
    chromium,
    open_ui_pages,
    start_app,
    ui_page,
    ui_workdir,
)
from tools.toolbox import ToolInfo
from ui.approval import call_choices, decision_for, panel_markdown
from ui.render import SUPERSEDED_NOTE, WAITING_NOTE, TurnView, replay_turn, replay_view
from ui.tool_settings import enabled_tools, policy_table, problems_markdown, tool_choices
from ui.trace_view import steps_table as trace_steps_table

pytest.importorskip("playwright")
from playwright.sync_api import Locator, Page, expect  # noqa: E402

SCREENSHOT_ENV = "WORK_AGENT_APPROVAL_SCREENSHOT"
"""Set it to a path (docs/screenshots/approval.png) to keep the approval panel's picture; tests use tmp."""
STALE = "is waiting for approval any more"


@pytest.fixture(scope="module")
def notes_dir(ui_workdir: Path) -> Path:
    """Where the notes server keeps its notes (NOTES_DIR/notes/<title>.txt)."""
    return ui_workdir / "notes-data" / "notes"


@pytest.fixture(scope="module")
def ui_app(demo_server: Any, ui_workdir: Path, notes_dir: Path) -> Iterator[UiApp]:
    """The app, started in a directory whose mcp.json names the notes server and a server that cannot start."""
    python = [sys.executable, "-m", "tests.mcp.notes_server"]
    config = {
        "mcpServers": {
            "notes": {
                "command": python[0],
                "args": python[1:],
                "cwd": str(ROOT),
                "env": {"NOTES_DIR": str(notes_dir.parent), "PYTHONPATH": str(ROOT)},
            },
            "broken": {"command": python[0], "args": [*python[1:], "--fail-start"], "cwd": str(ROOT)},
        }
    }
    (ui_workdir / "mcp.json").write_text(json.dumps(config), encoding="utf-8")
    home = ui_workdir / "home"  # the servers' logs go under ~/.local/state: keep them in the test's tmp
    home.mkdir(exist_ok=True)
    app = start_app(app_env(demo_server, ui_workdir, HOME=str(home)), ui_workdir)
    try:
        yield app
    finally:
        app.stop()


# --- page helpers -----------------------------------------------------------------------------------


def ask(page: Page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def chat(page: Page) -> Locator:
    return page.locator("#chatbot")


def panel(page: Page) -> Locator:
    return page.locator("#approval")


def thought(page: Page, title: str | re.Pattern[str]) -> Locator:
    """The title row of a collapsible bubble (plan, tool step) whose title contains `title`."""
    return chat(page).locator(".thought-group .title", has_text=title)


def steps_table(page: Page) -> Locator:
    return page.get_by_role("grid", name="Steps")


def wait_idle(page: Page) -> None:
    """Until no event is updating the chat (Gradio hides the chatbot's status tracker when it is idle)."""
    page.wait_for_function(
        "() => document.querySelector('#chatbot > [data-testid=status-tracker]').classList.contains('hide')"
    )


def wait_answer(page: Page, text: str) -> None:
    """Until the model's answer `text` shows and the turn's event is over (its trace is filled at the end)."""
    expect(chat(page).locator("[data-testid=bot]").last).to_contain_text(text)
    wait_idle(page)


def wait_for_approval(page: Page, tool: str) -> None:
    """Until the turn has paused: the panel names the call and the event that showed it is over."""
    expect(panel(page)).to_be_visible()
    expect(panel(page)).to_contain_text(tool)
    wait_idle(page)


def set_args(page: Page, text: str) -> None:
    """Replace the Edit box's JSON (a CodeMirror editor) as a user does: select all, type."""
    editor = page.locator("#approval-args .cm-content")
    editor.click()
    editor.press("ControlOrMeta+a")
    editor.press("Delete")
    page.keyboard.insert_text(text)
    expect(editor).to_have_text(re.compile(re.escape(text.splitlines()[0])))


def open_plan(page: Page) -> None:
    """Open the last turn's plan bubble (collapsed once the turn is done) to see its tool bubbles."""
    thought(page, "🧠 Plan").last.click()


def open_settings(page: Page) -> None:
    page.get_by_role("button", name="Settings (apply to the next turn)").click()
    expect(page.get_by_label("Endpoint URL")).to_be_editable()


def shoot_panel(page: Page, picture: Path) -> None:
    """A picture of the conversation and the approval panel below it (fonts loaded, the chat at its top)."""
    page.set_viewport_size({"width": 1500, "height": 1300})
    page.wait_for_function("() => document.fonts.status === 'loaded'")
    page.locator("#chatbot .bubble-wrap").evaluate("el => { el.scrollTop = 0 }")
    page.evaluate("() => window.scrollTo(0, 0)")
    chat_box, panel_box = chat(page).bounding_box(), panel(page).bounding_box()
    assert chat_box and panel_box and panel_box["y"] >= chat_box["y"] + chat_box["height"] - 1  # below the chat
    top = chat_box["y"] - 8
    clip = {
        "x": chat_box["x"] - 8,
        "y": top,
        "width": chat_box["width"] + 16,
        "height": panel_box["y"] + panel_box["height"] + 8 - top,
    }
    picture.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(picture), clip=clip, full_page=True)
    assert picture.stat().st_size > 10_000


def note(notes_dir: Path, title: str) -> Path:
    return notes_dir / f"{title}.txt"


def tool_messages(vllm: Any) -> list[str]:
    """The tool results the model read in the latest chat request."""
    return [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "tool"]


def no_traceback(page: Page) -> None:
    assert "Traceback" not in page.locator("body").inner_text()


# --- tests ------------------------------------------------------------------------------------------


def test_an_mcp_tool_runs_by_its_policy_and_the_trace_names_its_server(ui_page: Page, vllm, notes_dir: Path) -> None:
    notes_dir.mkdir(parents=True, exist_ok=True)
    note(notes_dir, "plan").write_text("周一 10 点开会", encoding="utf-8")
    vllm.script(tool_call_text("read_note", {"title": "plan"}), "The plan: 周一 10 点开会.")
    ask(ui_page, "我的计划笔记里写了什么？")
    wait_answer(ui_page, "The plan: 周一 10 点开会.")
    expect(panel(ui_page)).to_be_hidden()  # read-only: it ran without asking
    open_plan(ui_page)
    bubble = thought(ui_page, "🛠️ read_note · notes")
    expect(bubble).to_be_visible()
    expect(bubble).not_to_contain_text("approved")  # ran by policy: no decision
    bubble.click()
    expect(chat(ui_page)).to_contain_text("周一 10 点开会")  # the tool's result, from the MCP server
    assert tool_messages(vllm) == ["周一 10 点开会"]
    row = steps_table(ui_page).get_by_role("row").filter(has_text="read_note")
    expect(row).to_contain_text("notes")
    expect(row).to_contain_text("auto")
    # The model was offered the MCP server's tools beside the built-in ones.
    offered = [t["function"]["name"] for t in vllm.requests[-1]["tools"]]
    assert {"get_current_time", "read_note", "write_note", "delete_note"} <= set(offered), offered
    no_traceback(ui_page)


def test_a_server_that_cannot_start_shows_a_badge_and_the_settings_list_every_tool(ui_page: Page) -> None:
    badge = ui_page.locator("#tool-status")
    expect(badge).to_contain_text("MCP server 'broken' is unavailable")
    expect(badge).to_contain_text("cannot open the notes database (permission denied)")  # what it said
    expect(badge).to_contain_text("keeps working with the other tools")
    assert "\n" not in badge.locator("p").first.inner_text().strip()  # one line per server
    expect(ui_page.locator("#status")).to_contain_text("🟢")  # the endpoint is fine all the same
    open_settings(ui_page)
    servers = ui_page.locator("#servers")
    expect(servers).to_contain_text(re.compile(r"notes · \d+ tools"))
    expect(servers).to_contain_text("broken · ⚠️ unavailable")
    expect(ui_page.get_by_label("calculate", exact=True)).to_be_checked()  # built-in tools by their name
    expect(ui_page.get_by_label("write_note (mcp notes)", exact=True)).to_be_checked()  # the others by source
    table = ui_page.locator("#tools-table")
    expect(table.get_by_role("row").filter(has_text="write_note")).to_contain_text("ask")
    expect(table.get_by_role("row").filter(has_text="read_note")).to_contain_text("auto")
    expect(table.get_by_role("row").filter(has_text="delete_note")).to_contain_text("ask")


def test_an_ask_tool_approved_runs_and_the_decision_is_recorded(ui_page: Page, vllm, notes_dir: Path, tmp_path) -> None:
    text = "买牛奶 and bread"
    vllm.script(tool_call_text("write_note", {"title": "approved", "text": text}), "Saved your note.")
    ask(ui_page, "Save a shopping note: 买牛奶 and bread")
    wait_for_approval(ui_page, "write_note · notes")
    # The call in the chat: tool, server, description and its arguments, waiting.
    waiting = thought(ui_page, "⏸️ write_note · notes · waiting for approval")
    expect(waiting).to_be_visible()
    expect(chat(ui_page)).to_contain_text("write_note from MCP server 'notes' wants to run with")
    expect(chat(ui_page)).to_contain_text('"text": "买牛奶 and bread"')
    expect(ui_page.locator("#approval-args .cm-content")).to_contain_text('"title": "approved"')  # pre-filled
    expect(ui_page.locator("#approval-call")).to_be_hidden()  # one call: nothing to pick
    assert not note(notes_dir, "approved").exists()  # nothing ran yet

    shoot_panel(ui_page, Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "approval.png"))

    ui_page.locator("#approve").click()
    wait_answer(ui_page, "Saved your note.")
    expect(panel(ui_page)).to_be_hidden()
    assert note(notes_dir, "approved").read_text(encoding="utf-8") == text
    open_plan(ui_page)
    expect(thought(ui_page, "🛠️ write_note · notes · approved")).to_be_visible()
    row = steps_table(ui_page).get_by_role("row").filter(has_text="write_note")
    expect(row).to_contain_text("approved")
    expect(row).to_contain_text("notes")
    assert tool_messages(vllm) == [f"saved 'approved' ({len(text)} characters)"]
    no_traceback(ui_page)


def test_an_edit_with_bad_json_sends_nothing_and_a_good_edit_runs_with_the_new_arguments(
    ui_page: Page, vllm, notes_dir: Path
) -> None:
    vllm.script(tool_call_text("write_note", {"title": "edited", "text": "draft"}), "Saved the edited note.")
    ask(ui_page, "Save a note called edited")
    wait_for_approval(ui_page, "write_note · notes")
    requests = len(vllm.requests)
    set_args(ui_page, '{"title": "edited", "text": "final 定稿",}')
    ui_page.locator("#edit-call").click()
    error = ui_page.locator("#approval-error")
    expect(error).to_contain_text("The arguments are not valid JSON")
    expect(error).to_contain_text("Nothing was sent")
    expect(panel(ui_page)).to_be_visible()
    wait_idle(ui_page)
    assert len(vllm.requests) == requests and not note(notes_dir, "edited").exists()  # nothing was sent

    set_args(ui_page, '{"title": "edited", "text": "final 定稿"}')
    ui_page.locator("#edit-call").click()
    wait_answer(ui_page, "Saved the edited note.")
    assert note(notes_dir, "edited").read_text(encoding="utf-8") == "final 定稿"
    expect(panel(ui_page)).to_be_hidden()
    open_plan(ui_page)
    bubble = thought(ui_page, "🛠️ write_note · notes · edited")
    expect(bubble).to_be_visible()
    bubble.click()
    expect(chat(ui_page)).to_contain_text('"text": "final 定稿"')  # the arguments it ran with
    expect(steps_table(ui_page).get_by_role("row").filter(has_text="write_note")).to_contain_text("edited")
    assert tool_messages(vllm)[-1].endswith("saved 'edited' (8 characters)")  # it ran with the edited text


def test_a_rejection_with_a_reason_runs_nothing_and_the_model_answers(ui_page: Page, vllm, notes_dir: Path) -> None:
    vllm.script(tool_call_text("write_note", {"title": "rejected", "text": "x"}), "OK, I did not save it.")
    ask(ui_page, "Save a note called rejected")
    wait_for_approval(ui_page, "write_note · notes")
    ui_page.locator("#approval-reason textarea").fill("不要保存 not now")
    ui_page.locator("#reject").click()
    wait_answer(ui_page, "OK, I did not save it.")
    expect(panel(ui_page)).to_be_hidden()
    assert not note(notes_dir, "rejected").exists()
    assert tool_messages(vllm) == ["User rejected the tool call for `write_note` with reason: 不要保存 not now"]
    open_plan(ui_page)
    expect(thought(ui_page, "🚫 write_note · notes · rejected: 不要保存 not now")).to_be_visible()
    row = steps_table(ui_page).get_by_role("row").filter(has_text="write_note")
    expect(row).to_contain_text("rejected")
    no_traceback(ui_page)


def test_several_waiting_calls_are_decided_one_by_one(ui_page: Page, vllm, notes_dir: Path) -> None:
    calls = tool_call_text("write_note", {"title": "first", "text": "1"}) + "\n"
    calls += tool_call_text("write_note", {"title": "second", "text": "2"})
    vllm.script(calls, "Saved the first one only.")
    ask(ui_page, "Save two notes")
    wait_for_approval(ui_page, "2 tool calls")
    expect(thought(ui_page, "waiting for approval")).to_have_count(2)
    expect(ui_page.locator("#approval-call")).to_be_visible()
    expect(ui_page.locator("#approval-args .cm-content")).to_contain_text('"title": "first"')
    ui_page.locator("#approve").click()
    # The first is decided (not sent yet); the panel moves on to the second.
    expect(panel(ui_page)).to_contain_text("approved")
    expect(ui_page.locator("#approval-args .cm-content")).to_contain_text('"title": "second"')
    assert not note(notes_dir, "first").exists()
    ui_page.locator("#reject").click()
    wait_answer(ui_page, "Saved the first one only.")
    assert note(notes_dir, "first").read_text(encoding="utf-8") == "1"
    assert not note(notes_dir, "second").exists()
    open_plan(ui_page)
    expect(thought(ui_page, "🛠️ write_note · notes · approved")).to_have_count(1)
    expect(thought(ui_page, "🚫 write_note · notes · rejected")).to_have_count(1)


def test_a_reload_while_a_call_waits_shows_the_panel_again_and_approving_works(
    ui_page: Page, vllm, notes_dir: Path
) -> None:
    vllm.script(tool_call_text("write_note", {"title": "reloaded", "text": "重新加载"}))
    ask(ui_page, "Save a note called reloaded")
    wait_for_approval(ui_page, "write_note · notes")
    ui_page.reload()
    expect(ui_page.locator("#status")).to_contain_text("🟢")  # the load event has run (its checks used the model)
    wait_for_approval(ui_page, "write_note · notes")  # restored from the checkpoint
    expect(thought(ui_page, "⏸️ write_note · notes · waiting for approval")).to_be_visible()
    expect(chat(ui_page)).to_contain_text("Save a note called reloaded")
    expect(ui_page.locator("#conversations input[type=radio]:checked")).to_have_count(1)  # and selected
    vllm.script("Saved it after the reload.")
    ui_page.locator("#approve").click()
    wait_answer(ui_page, "Saved it after the reload.")
    assert note(notes_dir, "reloaded").read_text(encoding="utf-8") == "重新加载"
    expect(panel(ui_page)).to_be_hidden()
    # Finished now: a further reload opens an empty tab, as for any finished conversation.
    ui_page.reload()
    expect(ui_page.locator("#status")).to_contain_text("🟢")
    expect(panel(ui_page)).to_be_hidden()
    expect(chat(ui_page)).not_to_contain_text("Save a note called reloaded")


def test_a_second_tab_that_decides_late_runs_nothing(ui_page: Page, vllm, notes_dir: Path) -> None:
    vllm.script(tool_call_text("write_note", {"title": "twice", "text": "once"}))
    ask(ui_page, "Save a note called twice")
    wait_for_approval(ui_page, "write_note · notes")
    other = ui_page.context.new_page()  # the same browser: the same conversations, and this one waiting
    other.goto(ui_page.url)
    expect(other.locator("#status")).to_contain_text("🟢")
    wait_for_approval(other, "write_note · notes")
    vllm.script("Saved it once.")
    ui_page.locator("#approve").click()
    wait_answer(ui_page, "Saved it once.")
    requests = len(vllm.requests)
    other.locator("#approve").click()  # too late: the first tab decided
    toast = other.locator(".toast-body", has_text=STALE)
    expect(toast).to_contain_text("nothing was run")
    expect(panel(other)).to_be_hidden()
    wait_answer(other, "Saved it once.")  # it shows the conversation as it now is
    assert len(vllm.requests) == requests  # no model call, no tool call
    assert note(notes_dir, "twice").read_text(encoding="utf-8") == "once"
    no_traceback(other)


def test_allow_for_this_conversation_stops_asking_there_only(ui_page: Page, vllm, notes_dir: Path) -> None:
    vllm.script(tool_call_text("write_note", {"title": "allow-a", "text": "a"}), "Saved a.")
    ask(ui_page, "Save note a")
    wait_for_approval(ui_page, "write_note · notes")
    ui_page.locator("#approval-allow input").check()
    ui_page.locator("#approve").click()
    wait_answer(ui_page, "Saved a.")
    vllm.script(tool_call_text("write_note", {"title": "allow-b", "text": "b"}), "Saved b.")
    ask(ui_page, "Save note b")
    wait_answer(ui_page, "Saved b.")  # not asked again in this conversation
    expect(panel(ui_page)).to_be_hidden()
    assert note(notes_dir, "allow-b").read_text(encoding="utf-8") == "b"
    open_plan(ui_page)
    expect(thought(ui_page, "🛠️ write_note · notes · allowed for this conversation")).to_have_count(1)
    thought(ui_page, "🧠 Plan").first.click()  # turn 1's call: allowed too (approved with the box ticked)
    expect(thought(ui_page, "🛠️ write_note · notes · allowed for this conversation")).to_have_count(2)

    # Another conversation asks again. Leaving it and coming back through the sidebar brings the panel back.
    ui_page.get_by_role("button", name="➕ New conversation").click()
    vllm.script(tool_call_text("write_note", {"title": "allow-c", "text": "c"}))
    ask(ui_page, "Save note c")
    wait_for_approval(ui_page, "write_note · notes")
    ui_page.get_by_role("button", name="➕ New conversation").click()
    expect(panel(ui_page)).to_be_hidden()
    ui_page.locator("#conversations label", has_text="Save note c").click()
    wait_for_approval(ui_page, "write_note · notes")
    vllm.script("Not saved.")
    ui_page.locator("#reject").click()
    wait_answer(ui_page, "Not saved.")
    assert not note(notes_dir, "allow-c").exists()


def test_a_new_question_while_a_call_waits_closes_it_unrun(ui_page: Page, vllm, notes_dir: Path) -> None:
    vllm.script(tool_call_text("write_note", {"title": "superseded", "text": "x"}))
    ask(ui_page, "Save a note called superseded")
    wait_for_approval(ui_page, "write_note · notes")
    vllm.script("Hello! 你好!")
    ask(ui_page, "Never mind, just say hello")
    wait_answer(ui_page, "Hello! 你好!")
    expect(panel(ui_page)).to_be_hidden()
    assert not note(notes_dir, "superseded").exists()
    expect(thought(ui_page, "waiting for approval")).to_have_count(0)
    thought(ui_page, "🧠 Plan").first.click()
    expect(thought(ui_page, "🚫 write_note · notes · not run: a new question came first")).to_be_visible()
    history = vllm.requests[-1]["messages"]
    assert [m["content"] for m in history if m["role"] == "tool"] == [
        "Not run: the user asked something else instead of deciding on this call."
    ]


def test_tool_settings_a_policy_override_and_a_server_turned_off(ui_page: Page, vllm, notes_dir: Path) -> None:
    open_settings(ui_page)
    ui_page.locator("#policy-tool input").click()
    ui_page.get_by_role("option", name="write_note", exact=True).click()
    ui_page.locator("#policy-pick").get_by_label("auto", exact=True).check()
    table = ui_page.locator("#tools-table")
    expect(table.get_by_role("row").filter(has_text="write_note")).to_contain_text("auto (yours)")
    vllm.script(tool_call_text("write_note", {"title": "auto", "text": "no questions"}), "Saved without asking.")
    ask(ui_page, "Save a note called auto")
    wait_answer(ui_page, "Saved without asking.")
    expect(panel(ui_page)).to_be_hidden()
    assert note(notes_dir, "auto").read_text(encoding="utf-8") == "no questions"

    ui_page.locator("#servers label", has_text="notes ·").locator("input").uncheck()
    expect(table.get_by_role("row").filter(has_text="read_note")).to_contain_text("off")
    vllm.script("No notes tools today.")
    ask(ui_page, "What time is it?")
    wait_answer(ui_page, "No notes tools today.")
    offered = [t["function"]["name"] for t in vllm.requests[-1]["tools"]]
    assert offered == ["get_current_time", "get_city_weather", "calculate"]


@pytest.fixture(autouse=True)
def _clean_notes(notes_dir: Path) -> Iterator[None]:
    yield
    shutil.rmtree(notes_dir, ignore_errors=True)


def test_an_invalid_mcp_config_stops_the_ui_with_one_line(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "mcp.json").write_text('{"mcpServers": {"notes": {"command": }}}', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENT_CHECKPOINT_DB": str(tmp_path / "t.sqlite")}
    proc = subprocess.run(
        [sys.executable, "-m", "ui.app", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("Error: MCP config") and "is not valid JSON (line 1" in proc.stderr


# --- the pure parts, without a browser ------------------------------------------------------------------

T0 = 1_700_000_000.0
WRITE = PendingCall(
    "call-w",
    "write_note",
    {"title": "t", "text": "你好"},
    description='write_note from MCP server \'notes\' wants to run with {"title": "t", "text": "你好"}',
    server="notes",
)
DELETE = PendingCall(
    "call-d",
    "delete_note",
    {"title": "t"},
    description='delete_note from MCP server \'notes\' (marked destructive) wants to run with {"title": "t"}',
    server="notes",
)


def _plan_step() -> Step:
    return Step(kind="model", turn=1, node="plan", started_at=T0, duration_ms=40.0, tool_calls=["write_note"])


def _tool_step(decision: str | None, *, error: str | None = None, result: str | None = None) -> Step:
    return Step(
        kind="tool",
        turn=1,
        node="call_tool",
        started_at=T0 + 0.1,
        duration_ms=5.0,
        name="write_note",
        call_id="call-w",
        arguments={"title": "t", "text": "你好"},
        status="error" if error else "ok",
        error=error,
        result=result,
        server="notes",
        decision=decision,
    )


def _paused_view() -> TurnView:
    view = TurnView("save it", turn=1)
    view.apply(StepRecorded(_plan_step()))
    view.apply(ApprovalRequested((WRITE,), "int-1"))
    view.apply(TurnEnded(TurnResult(answer="", thread_id="th", pending=ApprovalRequested((WRITE,)))))
    return view


def _by_id(view: TurnView, id_: str) -> Any:
    return next(m for m in view.messages() if m.metadata.get("id") == id_)


def test_a_paused_turn_shows_the_waiting_call_open_and_no_answer() -> None:
    view = _paused_view()
    assert view.paused and view.pending == (WRITE,)
    msgs = view.messages()
    assert [m.metadata.get("title") for m in msgs] == [None, "🧠 Plan", "⏸️ write_note · notes · waiting for approval"]
    plan, bubble = msgs[1], msgs[2]
    assert "status" not in plan.metadata and "status" not in bubble.metadata  # open, without a spinner
    assert bubble.metadata["parent_id"] == "turn1-plan"
    assert bubble.content.startswith(WRITE.description)
    assert '"text": "你好"' in bubble.content and WAITING_NOTE in bubble.content


def test_after_the_decision_the_bubble_names_server_and_decision() -> None:
    view = _paused_view()
    view.resume()
    assert not view.paused and view.pending == ()
    view.apply(ToolStarted("call-w", "write_note", {"title": "t", "text": "edited"}))
    running = _by_id(view, "call-w")
    assert running.metadata["status"] == "pending" and '"text": "edited"' in running.content
    view.apply(StepRecorded(_tool_step("edited", result="saved 't'")))
    view.apply(TurnEnded(TurnResult(answer="Saved.", thread_id="th")))
    done = _by_id(view, "call-w")
    assert done.metadata["title"] == "🛠️ write_note · notes · edited" and done.metadata["status"] == "done"
    assert view.messages()[-1].content == "Saved."


@pytest.mark.parametrize(
    ("step", "title"),
    [
        (_tool_step("approved", result="ok"), "🛠️ write_note · notes · approved"),
        (_tool_step("allowed", result="ok"), "🛠️ write_note · notes · allowed for this conversation"),
        (
            _tool_step("rejected", error="User rejected the tool call for `write_note` with reason: 不要 now"),
            "🚫 write_note · notes · rejected: 不要 now",
        ),
        (
            _tool_step("rejected", error="User rejected the tool call for `write_note` with id call-w. The tool..."),
            "🚫 write_note · notes · rejected",
        ),
        (_tool_step("denied", error="Error: write_note is not allowed here"), "🚫 write_note · notes · denied"),
        (_tool_step(None, error="it failed"), "💥 write_note · notes failed"),
    ],
)
def test_tool_bubble_titles_from_the_trace(step: Step, title: str) -> None:
    msgs = replay_turn("q", "answer", [_plan_step(), step], turn=1)
    bubble = next(m for m in msgs if m.metadata.get("id") == "call-w")
    assert bubble.metadata["title"] == title
    if step.decision in ("rejected", "denied"):
        assert "**Not run**" in bubble.content


def test_a_superseded_turn_says_why_it_has_no_answer() -> None:
    view = _paused_view()
    view.supersede()
    assert not view.paused and view.pending == ()
    bubble = _by_id(view, "call-w")
    assert bubble.metadata["title"] == "🚫 write_note · notes · not run: a new question came first"
    assert view.messages()[-1].content == SUPERSEDED_NOTE
    # The same turn read back from the thread (the runner recorded the superseded call) says the same.
    stored = _tool_step("superseded", error="Not run: the user asked something else instead of deciding on this call.")
    assert replay_turn("save it", "", [_plan_step(), stored], turn=1)[-1].content == SUPERSEDED_NOTE


def test_replay_with_the_checkpoints_pause_rebuilds_the_paused_turn() -> None:
    view = replay_view("save it", "", [_plan_step()], turn=1, pending=ApprovalRequested((WRITE,), error="bad id"))
    assert view.paused and view.pending == (WRITE,) and view.approval_error == "bad id"
    assert [m.metadata.get("title") for m in view.messages()][-1] == "⏸️ write_note · notes · waiting for approval"


def test_panel_text_for_one_call_and_for_several() -> None:
    one = panel_markdown([WRITE], {})
    assert "**write_note · notes** waits for your decision" in one and "destructive" not in one
    assert "**destructive**" in panel_markdown([DELETE], {})
    decided = {"call-w": {"type": "reject", "message": "不要"}}
    several = panel_markdown([WRITE, DELETE], decided)
    assert "**2 tool calls**" in several
    assert "- ✔️ `write_note · notes`: rejected: 不要" in several
    assert "- ⏳ delete_note from MCP server 'notes' (marked destructive)" in several
    assert several.endswith("Now deciding: **delete_note · notes**")
    assert call_choices([WRITE, DELETE], decided) == [("delete_note · notes", "call-d")]
    assert panel_markdown([], {}) == ""


@pytest.mark.parametrize(
    ("kind", "args", "reason", "allow", "decision"),
    [
        ("approve", "", "", True, {"type": "approve", "allow_for_thread": True}),
        ("reject", "", "  not now ", False, {"type": "reject", "message": "not now"}),
        (
            "edit",
            '{"title": "t", "text": "改"}',
            "",
            False,
            {"type": "edit", "edited_action": {"name": "write_note", "args": {"title": "t", "text": "改"}}},
        ),
    ],
)
def test_decisions_from_the_panel(kind: Any, args: str, reason: str, allow: bool, decision: dict) -> None:
    assert decision_for(kind, WRITE, args, reason, allow) == (decision, None)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ('{"title": "t",}', "not valid JSON (line 1, column 15"),
        ("", "not valid JSON (line 1, column 1"),
        ('["t"]', "must be a JSON object"),
    ],
)
def test_an_edit_that_is_not_a_json_object_is_an_inline_error(args: str, error: str) -> None:
    decision, message = decision_for("edit", WRITE, args, "", False)
    assert decision is None and message is not None and error in message and "Nothing was sent" in message
    assert "\n" not in message


def _info(name: str, source: str = "built-in", server: str | None = None, policy: Any = "auto") -> ToolInfo:
    return ToolInfo(name, source, server, policy, "")


LISTING = [
    _info("read_note", "mcp notes", "notes"),
    _info("calculate"),
    _info("word_count", "module mytools", policy="ask"),
    _info("write_note", "mcp notes", "notes", "ask"),
]


def test_tool_choices_are_grouped_by_source() -> None:
    assert tool_choices(LISTING) == [
        ("calculate", "calculate"),
        ("word_count (module mytools)", "word_count"),
        ("read_note (mcp notes)", "read_note"),
        ("write_note (mcp notes)", "write_note"),
    ]


def test_enabled_tools_checked_new_ones_and_servers_off() -> None:
    shown = ["calculate", "word_count"]  # the list before the notes server started
    assert enabled_tools(LISTING, ["calculate"], shown, []) == ["read_note", "calculate", "write_note"]
    assert enabled_tools(LISTING, ["calculate"], shown, ["notes"]) == ["calculate"]
    assert enabled_tools(LISTING, ["calculate", "read_note"], None, []) == ["read_note", "calculate"]
    assert enabled_tools(LISTING, [], None, []) == []


def test_the_tools_table_marks_overrides_and_tools_left_out() -> None:
    table = policy_table(LISTING, {"write_note": "ask"}, ["calculate", "write_note"])
    assert "| `write_note` | mcp notes | ✋ ask (yours) |  |" in table
    assert "| `read_note` | mcp notes | ▶️ auto | off |" in table


def test_problem_badges_are_one_line_each_and_hide_registered_secrets() -> None:
    from configs.secrets import register_secret

    register_secret("ghp-badge-secret-123")
    badge = problems_markdown(["MCP server 'gh' is unavailable: said\n  token ghp-badge-secret-123 is bad"])
    first = badge.split("\n\n")[0]
    assert first == "⚠️ MCP server 'gh' is unavailable: said token *** is bad"
    assert "keeps working with the other tools" in badge
    assert problems_markdown([]) == ""


def test_the_trace_table_gets_server_and_decision_columns_when_a_turn_has_them() -> None:
    headers, rows = trace_steps_table([_plan_step(), _tool_step("approved", result="ok")])
    assert headers[-2:] == ["server", "decision"]
    assert rows[0][-2:] == ["", ""] and rows[1][-2:] == ["notes", "approved"]
    plain_headers, _ = trace_steps_table([_plan_step()])
    assert "server" not in plain_headers


class _Request:
    username = None


def test_two_clicks_at_once_resume_the_paused_turn_once(vllm, tmp_path: Path, monkeypatch) -> None:
    """A double click (two decide events of one tab at once) runs the call once; the other click is refused."""
    import asyncio
    import concurrent.futures
    import warnings

    from configs.settings import load_settings
    from ui.backend import Backend, Session
    from ui.handlers import STILL_RUNNING, Handlers

    notes = tmp_path / "notes-data"
    config = {
        "mcpServers": {
            "notes": {
                "command": sys.executable,
                "args": ["-m", "tests.mcp.notes_server"],
                "cwd": str(ROOT),
                "env": {"NOTES_DIR": str(notes)},
            }
        }
    }
    (tmp_path / "double-mcp.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setenv("AGENT_MCP_CONFIG", str(tmp_path / "double-mcp.json"))  # this test's own shared toolbox
    monkeypatch.setenv("HOME", str(tmp_path))  # the server's log

    async def scenario() -> tuple[list[str], str, int]:
        backend = Backend(load_settings())
        handlers, session = Handlers(backend), Session()
        try:
            await handlers.tool_settings(session, None)  # the page's load event: the servers start
            knobs = (None, None, 0.2, 512, 8, session.shown_tools, _Request())
            vllm.script(tool_call_text("write_note", {"title": "once", "text": "一次"}), "Saved once.")
            [_ async for _ in handlers.run("Save a note called once", session, "owner", *knobs)]
            (call,) = session.pending
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")

                async def click() -> None:
                    async for _ in handlers.decide("approve", call.call_id, "", "", False, session, "owner", *knobs):
                        pass

                await asyncio.gather(click(), click())
            shown = "\n".join(str(m.metadata.get("title") or m.content) for m in session.display())
            return [str(w.message) for w in caught], shown, len(vllm.requests)
        finally:
            await backend.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own event loop
        warned, shown, requests = pool.submit(asyncio.run, scenario()).result(timeout=90)
    assert warned == [STILL_RUNNING]
    assert (notes / "notes" / "once.txt").read_text(encoding="utf-8") == "一次"
    assert shown.count("🛠️ write_note · notes · approved") == 1 and shown.count("Saved once.") == 1, shown
    assert requests == 2  # the question's model call and the one after the approved call
