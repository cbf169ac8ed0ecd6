"""The UI's `/ask` endpoint through `gradio_client`, against the real app process and the fake vLLM server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.demo.server import Reply
from tests.ui_fixtures import UiApp, app_env, start_app, ui_workdir  # noqa: F401 - fixtures are used by name

gradio_client = pytest.importorskip("gradio_client")
from gradio_client.exceptions import AppError  # noqa: E402

CLIENT_KEY = "sk-ui-api-test-client-key-7f3a9c"
"""The API key the app sends (OPENAI_API_KEY); it must never appear in an error."""
SERVER_KEY = "vllm-server-side-key-41d2"


@pytest.fixture(scope="module")
def ui_app(demo_server: Any, ui_workdir: Path) -> Iterator[UiApp]:
    """The app, started as a user does, with an API key configured for the model server."""
    app = start_app(app_env(demo_server, ui_workdir, OPENAI_API_KEY=CLIENT_KEY), ui_workdir)
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def client(ui_app: UiApp) -> Any:
    return gradio_client.Client(ui_app.url, verbose=False, analytics_enabled=False)


def ask(client: Any, question: str, thread_id: str = "") -> dict[str, Any]:
    return client.predict(question, thread_id, api_name="/ask")


def tool_steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in result["steps"] if s["kind"] == "tool"]


def user_questions(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def test_english_parallel_question(client, vllm) -> None:
    result = ask(client, "What time is it in Tokyo, and what's the weather there?")
    assert set(result) >= {"answer", "thread_id", "steps", "usage", "latency_ms", "stopped"}
    assert result["answer"].startswith("Here's what I found")
    assert "Tokyo" in result["answer"] and "<tool_call>" not in result["answer"]
    tools = tool_steps(result)
    assert [(s["name"], s["arguments"], s["status"]) for s in tools] == [
        ("get_current_time", {"timezone": "Asia/Tokyo"}, "ok"),
        ("get_city_weather", {"city": "Tokyo"}, "ok"),
    ]
    assert all(s["result"] for s in tools)
    assert [s["kind"] for s in result["steps"]] == ["model", "tool", "tool", "model"]
    assert result["usage"]["total_tokens"] > 0 and result["latency_ms"] > 0
    assert result["thread_id"] and result["stopped"] is None


def test_chinese_question(client, vllm) -> None:
    result = ask(client, "查询北京的天气")
    assert result["answer"].startswith("查询结果如下")
    assert "北京" in result["answer"]
    [tool] = tool_steps(result)
    assert tool["name"] == "get_city_weather" and tool["arguments"] == {"city": "北京"}
    assert "°C" in tool["result"]
    assert user_questions(vllm.requests[-1]) == ["查询北京的天气"]


def test_thread_id_continues_the_conversation(client, vllm) -> None:
    first = ask(client, "What time is it in Paris?")
    second = ask(client, "And the weather there?", first["thread_id"])
    assert second["thread_id"] == first["thread_id"]
    assert "Paris" in second["answer"]
    assert [s["name"] for s in tool_steps(second)] == ["get_city_weather"]
    assert user_questions(vllm.requests[-1]) == ["What time is it in Paris?", "And the weather there?"]
    third = ask(client, "What time is it in Paris?")  # no thread id: a new conversation
    assert third["thread_id"] != first["thread_id"]
    assert user_questions(vllm.requests[-1]) == ["What time is it in Paris?"]


@pytest.mark.parametrize("failure", ["unauthorized", "server error"])
def test_endpoint_failure_is_one_line_without_the_key(client, vllm, ui_app, failure: str) -> None:
    if failure == "unauthorized":
        vllm.config.api_key = SERVER_KEY  # vLLM started with another --api-key
        expected = "refused the API key (401 Unauthorized)"
    else:
        vllm.script(
            Reply(
                status=500, body={"error": {"message": "EngineCore died", "type": "InternalServerError", "code": 500}}
            )
        )
        expected = "The model server failed while answering"
    with pytest.raises(AppError) as caught:
        ask(client, "What time is it in Tokyo?")
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message.strip()
    assert CLIENT_KEY not in message and SERVER_KEY not in message
    assert "Traceback" not in message
    assert CLIENT_KEY not in ui_app.log()
    # The app keeps serving.
    vllm.config.api_key = None
    assert ask(client, "What time is it in Tokyo?")["answer"].startswith("Here's what I found")


NOTE_TOOLS = '''"""Tools of the /approve tests: one that writes (asked about), one that only reads."""

from pathlib import Path


def save_note(title: str, text: str) -> str:
    """Save a note.

    Args:
        title: The note's title.
        text: What the note says.
    """
    Path(f"{title}.note").write_text(text, encoding="utf-8")
    return f"saved {title}"
'''


@pytest.fixture(scope="module")
def approval_client(demo_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """An app whose tools include `save_note` (a user's tool: asked about before it runs)."""
    workdir = tmp_path_factory.mktemp("ui-api-approve")
    (workdir / "note_tools.py").write_text(NOTE_TOOLS, encoding="utf-8")
    app = start_app(app_env(demo_server, workdir, AGENT_TOOL_MODULES="note_tools"), workdir)
    try:
        yield gradio_client.Client(app.url, verbose=False, analytics_enabled=False), workdir
    finally:
        app.stop()


def test_approve_endpoint_resumes_a_paused_turn_with_edit_and_reject(approval_client, vllm) -> None:
    from graph.demo.server import tool_call_text

    client, workdir = approval_client
    vllm.script(tool_call_text("save_note", {"title": "plan", "text": "买牛奶"}), "Saved your note.")
    paused = ask(client, "记一条笔记：买牛奶")
    assert paused["answer"] == "" and [c["name"] for c in paused["pending"]] == ["save_note"]
    assert not (workdir / "plan.note").exists()  # nothing runs before the decision
    call_id = paused["pending"][0]["tool_call_id"]
    edit = {"type": "edit", "edited_action": {"name": "save_note", "args": {"title": "plan", "text": "买面包"}}}
    done = client.predict(paused["thread_id"], json.dumps({"decisions": {call_id: edit}}), api_name="/approve")
    assert done["answer"] == "Saved your note." and done["pending"] == []
    assert (workdir / "plan.note").read_text(encoding="utf-8") == "买面包"
    assert [(s["name"], s["decision"]) for s in tool_steps(done)] == [("save_note", "edited")]

    vllm.script(tool_call_text("save_note", {"title": "other", "text": "x"}), "I did not save it.")
    paused = ask(client, "save another", paused["thread_id"])
    reject = json.dumps({"decisions": [{"type": "reject", "message": "not now"}]})
    done = client.predict(paused["thread_id"], reject, api_name="/approve")
    assert done["answer"] == "I did not save it." and not (workdir / "other.note").exists()
    (step,) = tool_steps(done)
    assert step["decision"] == "rejected" and "not now" in step["error"]


def test_approve_endpoint_refuses_stale_and_malformed_decisions(approval_client, vllm) -> None:
    client, _ = approval_client
    vllm.script("Hello!")
    result = ask(client, "hi")
    with pytest.raises(AppError, match="nothing on conversation .* is waiting for approval"):
        client.predict(result["thread_id"], '{"decisions": [{"type": "approve"}]}', api_name="/approve")
    with pytest.raises(AppError, match="decisions must be JSON"):
        client.predict(result["thread_id"], "{approve", api_name="/approve")
