"""ui.render: hand-built run_turn event sequences become the expected Gradio chat messages."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import gradio as gr
import pytest

from graph.events import StepRecorded, Token, ToolFinished, ToolStarted
from graph.trace import Step
from ui.render import RESULT_LIMIT, TurnView, replay_turn

T0 = 1_700_000_000.0
MODEL = "Qwen/Qwen2.5-7B-Instruct"
NOTE = f"{MODEL} · temperature 0.2 · max steps 8 · tools: get_current_time, get_city_weather"
PLAN = {"title": "🧠 Plan", "id": "turn1-plan"}


def model_step(
    at: float, ms: float, *, calls: list[str] | None = None, node: str = "plan", recovered: bool = False
) -> Step:
    return Step(
        kind="model",
        turn=1,
        node=node,
        started_at=T0 + at,
        duration_ms=ms,
        model=MODEL,
        ttft_ms=48.0,
        tokens_in=700,
        tokens_out=45,
        finish_reason="tool_calls" if calls else "stop",
        tool_calls=calls or [],
        recovered=recovered,
    )


def tool_step(
    call_id: str,
    name: str,
    args: dict[str, Any],
    at: float,
    ms: float,
    *,
    result: str | None = None,
    error: str | None = None,
    recovered: bool = False,
) -> Step:
    return Step(
        kind="tool",
        turn=1,
        node="call_tool",
        started_at=T0 + at,
        duration_ms=ms,
        name=name,
        call_id=call_id,
        arguments=args,
        status="error" if error else "ok",
        result=result,
        error=error,
        recovered=recovered,
    )


def tokens(text: str, node: str = "plan") -> list[Token]:
    return [Token(part, node) for part in text.split("|")]


def start(step: Step) -> ToolStarted:
    return ToolStarted(step.call_id or "", step.name or "", step.arguments or {})


def end(step: Step) -> ToolFinished:
    return ToolFinished(
        step.call_id or "",
        step.name or "",
        "error" if step.error else "success",
        step.error or step.result or "",
        step.duration_ms,
    )


def steps(*records: Step) -> list[StepRecorded]:
    return [StepRecorded(s) for s in records]


WEATHER = tool_step("call-1", "get_city_weather", {"city": "Paris"}, 0.6, 250.0, result='{"temp_c": 21}')
PLAN1 = model_step(0.0, 500.0, calls=["get_city_weather"])
PLAN2 = model_step(0.9, 400.0)


def weather_turn(view: TurnView) -> None:
    """A whole one-tool turn, in the order run_turn reports it."""
    for event in [
        *tokens("Let me |check."),
        *steps(PLAN1),
        start(WEATHER),
        end(WEATHER),
        *steps(WEATHER),
        *tokens("It is |21 °C in Paris."),
        *steps(PLAN2),
    ]:
        view.apply(event)


def bubbles(view: TurnView) -> list[gr.ChatMessage]:
    return [m for m in view.messages() if m.metadata.get("parent_id")]


def by_id(view: TurnView, id_: str) -> gr.ChatMessage:
    return next(m for m in view.messages() if m.metadata.get("id") == id_)


def plain(messages: list[gr.ChatMessage]) -> list[tuple[str, str, str | None, str | None]]:
    return [(m.role, str(m.content), m.metadata.get("title"), m.metadata.get("status")) for m in messages]


def assert_serialisable(messages: list[gr.ChatMessage]) -> None:
    for m in messages:
        json.dumps(dataclasses.asdict(m), ensure_ascii=False)
    gr.Chatbot().postprocess(messages)


def test_first_message_is_the_question_and_nothing_else_before_events() -> None:
    view = TurnView("What time is it?", turn=1, note=NOTE)
    assert plain(view.messages()) == [("user", "What time is it?", None, None)]


def test_single_tool_call_pending_then_done_nested_under_plan() -> None:
    view = TurnView("Weather in Paris?", turn=1, note=NOTE)
    for event in [*tokens("Let me |check."), *steps(PLAN1), start(WEATHER)]:
        view.apply(event)
    msgs = view.messages()
    assert [m.role for m in msgs] == ["user", "assistant", "assistant"]  # no answer bubble yet
    plan, tool = msgs[1], msgs[2]
    assert plan.metadata == {**PLAN, "status": "pending", "duration": 0.5}
    assert tool.metadata == {
        "title": "🛠️ get_city_weather",
        "id": "call-1",
        "parent_id": "turn1-plan",
        "status": "pending",
    }
    assert '"city": "Paris"' in tool.content and tool.content.startswith("```json")

    view.apply(end(WEATHER))
    tool = by_id(view, "call-1")
    assert tool.metadata["status"] == "done" and tool.metadata["duration"] == 0.25
    assert tool.metadata["title"] == "🛠️ get_city_weather"
    assert "**Result**" in tool.content and '{"temp_c": 21}' in tool.content

    view.apply(steps(WEATHER)[0])
    assert by_id(view, "call-1").metadata["status"] == "done"
    assert len(bubbles(view)) == 1


def test_whole_turn_messages_and_plan_content() -> None:
    view = TurnView("Weather in Paris?", turn=1, note=NOTE)
    weather_turn(view)
    view.finish("It is 21 °C in Paris.")
    msgs = view.messages()
    assert [m.metadata.get("title") for m in msgs] == [None, "🧠 Plan", "🛠️ get_city_weather", None]
    plan = msgs[1]
    assert plan.metadata == {**PLAN, "status": "done", "duration": 1.3}
    assert plan.content.startswith(NOTE)
    assert "**plan #1** · Qwen/Qwen2.5-7B-Instruct · tokens 700 → 45 · first token 48 ms" in plan.content
    assert "finish: tool_calls" in plan.content and "calls get_city_weather" in plan.content
    assert "**plan #2**" in plan.content and "finish: stop" in plan.content
    assert msgs[-1] == gr.ChatMessage(role="assistant", content="It is 21 °C in Paris.")
    assert view.answer == "It is 21 °C in Paris."
    assert_serialisable(msgs)


def test_text_before_tool_call_moves_into_the_plan_bubble() -> None:
    view = TurnView("Weather in Paris?", turn=1)
    for event in tokens("Let me |check."):
        view.apply(event)
    assert view.messages()[-1].content == "Let me check."  # streams as a provisional answer
    view.apply(steps(PLAN1)[0])
    msgs = view.messages()
    assert "> Let me check." in msgs[1].content
    assert all(m.content != "Let me check." for m in msgs)
    assert view.answer == ""


def test_text_moves_to_plan_on_tool_start_even_without_a_step_first() -> None:
    view = TurnView("q", turn=1)
    for event in [*tokens("Thinking…"), start(WEATHER)]:
        view.apply(event)
    msgs = view.messages()
    assert "> Thinking…" in msgs[1].content and len(msgs) == 3


def test_answer_tokens_accumulate_in_one_message() -> None:
    view = TurnView("Hi", turn=1)
    for event in tokens("Hel|lo, |world"):
        view.apply(event)
    msgs = view.messages()
    assert plain(msgs) == [("user", "Hi", None, None), ("assistant", "Hello, world", None, None)]
    view.apply(steps(model_step(0, 100))[0])
    view.finish("Hello, world")
    msgs = view.messages()
    assert [m.metadata.get("title") for m in msgs] == [None, "🧠 Plan", None]
    assert msgs[-1].content == "Hello, world"


def test_answer_node_tokens_after_tools() -> None:
    view = TurnView("q", turn=1)
    for event in [*steps(PLAN1), start(WEATHER), end(WEATHER), *steps(WEATHER), *tokens("Best |effort", "answer")]:
        view.apply(event)
    assert view.messages()[-1].content == "Best effort"


def test_chinese_question_and_answer_pass_through() -> None:
    view = TurnView("北京现在几点？", turn=1)
    clock = tool_step(
        "c1", "get_current_time", {"timezone": "Asia/Shanghai"}, 0.5, 5, result="2025-01-01 08:00 北京时间"
    )
    for event in [
        *steps(model_step(0, 400, calls=["get_current_time"])),
        start(clock),
        end(clock),
        *steps(clock),
        *tokens("北京现在是|早上八点。"),
    ]:
        view.apply(event)
    view.finish("北京现在是早上八点。")
    msgs = view.messages()
    assert msgs[0].content == "北京现在几点？"
    assert msgs[-1].content == "北京现在是早上八点。"
    assert '"timezone": "Asia/Shanghai"' in msgs[2].content and "北京时间" in msgs[2].content
    assert "北京" in json.dumps(dataclasses.asdict(msgs[0]), ensure_ascii=False)
    assert_serialisable(msgs)


def test_parallel_calls_pending_side_by_side_in_start_order() -> None:
    paris = tool_step("call-p", "get_city_weather", {"city": "Paris"}, 0.6, 300, result="21")
    tokyo = tool_step("call-t", "get_city_weather", {"city": "东京"}, 0.6, 100, result="18")
    view = TurnView("Paris and Tokyo?", turn=1)
    for event in [*steps(model_step(0, 500, calls=["get_city_weather"] * 2)), start(paris), start(tokyo)]:
        view.apply(event)
    assert [(m.metadata["id"], m.metadata["status"]) for m in bubbles(view)] == [
        ("call-p", "pending"),
        ("call-t", "pending"),
    ]
    view.apply(end(tokyo))  # the second one finishes first
    assert [(m.metadata["id"], m.metadata["status"]) for m in bubbles(view)] == [
        ("call-p", "pending"),
        ("call-t", "done"),
    ]
    view.apply(end(paris))
    for event in steps(paris, tokyo):
        view.apply(event)
    assert [(m.metadata["id"], m.metadata["status"]) for m in bubbles(view)] == [("call-p", "done"), ("call-t", "done")]
    assert all(m.metadata["parent_id"] == "turn1-plan" for m in bubbles(view))


def test_failed_tool_shows_error() -> None:
    bad = tool_step(
        "call-x",
        "get_city_weather",
        {"city": "Atlantis"},
        0.5,
        80,
        error="Error: no city named Atlantis. Check the spelling.",
    )
    view = TurnView("Weather in Atlantis?", turn=1)
    for event in [*steps(model_step(0, 400, calls=["get_city_weather"])), start(bad), end(bad)]:
        view.apply(event)
    tool = by_id(view, "call-x")
    assert tool.metadata["title"] == "💥 get_city_weather failed"
    assert tool.metadata["status"] == "done"
    assert "**Error**" in tool.content and "no city named Atlantis" in tool.content
    view.apply(steps(bad)[0])
    assert by_id(view, "call-x").metadata["title"].startswith("💥")


def test_recovered_tool_title() -> None:
    rec = tool_step("recovered-abc", "get_current_time", {}, 0.5, 3, result="12:00", recovered=True)
    view = TurnView("time?", turn=1)
    view.apply(steps(model_step(0, 400, calls=["get_current_time"], recovered=True))[0])
    view.apply(start(rec))
    assert by_id(view, "recovered-abc").metadata["title"] == "🛠️ get_current_time · recovered from text"
    view.apply(end(rec))
    view.apply(steps(rec)[0])
    assert by_id(view, "recovered-abc").metadata["title"] == "🛠️ get_current_time · recovered from text"


def test_recovered_flag_from_step_alone() -> None:
    rec = tool_step("r1", "get_current_time", {}, 0.5, 3, result="12:00", recovered=True)
    view = TurnView("time?", turn=1)
    for event in [start(rec), end(rec)]:
        view.apply(event)
    assert "recovered" not in by_id(view, "r1").metadata["title"]
    view.apply(steps(rec)[0])
    assert by_id(view, "r1").metadata["title"].endswith(" · recovered from text")


def test_long_result_is_truncated_with_a_note() -> None:
    big = tool_step("b1", "fetch", {}, 0.1, 10, result="x" * (RESULT_LIMIT + 500))
    view = TurnView("q", turn=1)
    view.apply(steps(big)[0])
    content = by_id(view, "b1").content
    assert "x" * RESULT_LIMIT in content and "x" * (RESULT_LIMIT + 1) not in content
    assert f"{RESULT_LIMIT:,} of {RESULT_LIMIT + 500:,} characters" in content


def test_backticks_in_result_do_not_break_the_fence() -> None:
    tricky = tool_step("t1", "echo", {}, 0.1, 1, result="```\nnot the end\n```")
    view = TurnView("q", turn=1)
    view.apply(steps(tricky)[0])
    assert "````\n```\nnot the end\n```\n````" in by_id(view, "t1").content


def test_finish_replaces_streamed_text_and_strips_tool_markup() -> None:
    view = TurnView("q", turn=1)
    for event in tokens("Draft |answer"):
        view.apply(event)
    view.finish('Final answer. <tool_call>{"name": "x", "arguments": {}}</tool_call>')
    assert view.messages()[-1].content == "Final answer."
    assert all("<tool_call>" not in str(m.content) for m in view.messages())


def test_finish_with_nothing_shows_a_note() -> None:
    view = TurnView("q", turn=1)
    view.apply(steps(model_step(0, 100))[0])
    view.finish("")
    assert view.messages()[-1].content.startswith("*(no answer")
    assert view.answer == ""


def test_finish_with_empty_answer_keeps_streamed_text() -> None:
    view = TurnView("q", turn=1)
    for event in tokens("streamed"):
        view.apply(event)
    view.finish("")
    assert view.messages()[-1].content == "streamed"


@pytest.mark.parametrize(
    ("stopped", "max_steps", "note"),
    [
        (
            "max_steps",
            3,
            "*(stopped early: used all 3 tool steps (raise AGENT_MAX_STEPS or --max-steps); "
            "the answer is a best effort)*",
        ),
        (
            "max_steps",
            None,
            "*(stopped early: used its one tool step (raise AGENT_MAX_STEPS or --max-steps); "
            "the answer is a best effort)*",
        ),
        (
            "repeated_failure",
            None,
            "*(stopped early: a tool call kept failing (no details); the answer is a best effort)*",
        ),
    ],
)
def test_budget_stop_adds_an_italic_note(stopped: str, max_steps: int | None, note: str) -> None:
    view = TurnView("q", turn=1, max_steps=max_steps)
    weather_turn(view)
    view.finish("Sorry, I could not finish.", stopped)
    assert view.messages()[-1].content == f"Sorry, I could not finish.\n\n{note}"
    assert view.answer == "Sorry, I could not finish."
    assert view.messages()[1].metadata["status"] == "done"


def test_user_stop_keeps_partial_answer_and_cancels_pending_tools() -> None:
    view = TurnView("q", turn=1)
    for event in [*steps(PLAN1), start(WEATHER)]:
        view.apply(event)
    view.stop()
    msgs = view.messages()
    assert msgs[1].metadata["status"] == "done"
    tool = by_id(view, "call-1")
    assert tool.metadata["title"] == "⏹️ get_city_weather cancelled" and tool.metadata["status"] == "done"
    assert "Cancelled" in tool.content
    assert msgs[-1].content == "*(stopped)*"
    assert_serialisable(msgs)


def test_user_stop_mid_answer() -> None:
    view = TurnView("q", turn=1)
    for event in [*steps(PLAN1), start(WEATHER), end(WEATHER), *steps(WEATHER), *tokens("It is |21")]:
        view.apply(event)
    view.stop()
    assert view.messages()[-1].content == "It is 21\n\n*(stopped)*"
    assert view.answer == "It is 21"
    assert by_id(view, "call-1").metadata["title"] == "🛠️ get_city_weather"


def test_fail_shows_an_error_bubble_and_keeps_the_partial_answer() -> None:
    view = TurnView("q", turn=1)
    for event in [*steps(PLAN1), start(WEATHER), end(WEATHER), *steps(WEATHER), *tokens("It is")]:
        view.apply(event)
    view.fail("The model server stopped answering: check that vLLM is running (`work-agent doctor`).")
    msgs = view.messages()
    assert msgs[1].metadata["status"] == "done"
    assert msgs[-2] == gr.ChatMessage(role="assistant", content="It is")
    assert msgs[-1].metadata == {"title": "💥 Error"}  # no status: shown expanded
    assert msgs[-1].content.startswith("The model server stopped answering")
    assert_serialisable(msgs)


def test_fail_before_anything_has_no_plan_bubble() -> None:
    view = TurnView("q", turn=1)
    view.fail("Cannot reach the model server at http://127.0.0.1:8000/v1: start it with ./run_vllm.sh.")
    assert [m.metadata.get("title") for m in view.messages()] == [None, "💥 Error"]


def test_replay_from_steps_equals_live_rendering() -> None:
    live = TurnView("Weather in Paris and 东京?", turn=2, note=NOTE)
    paris = tool_step("call-p", "get_city_weather", {"city": "Paris"}, 0.6, 300, result="21")
    tokyo = tool_step("call-t", "get_city_weather", {"city": "东京"}, 0.6, 100, error="Error: timeout")
    trace = [model_step(0, 500, calls=["get_city_weather"] * 2), paris, tokyo, model_step(1.0, 300)]
    trace = [s.model_copy(update={"turn": 2}) for s in trace]
    for event in [
        *steps(trace[0]),
        start(paris),
        start(tokyo),
        end(tokyo),
        end(paris),
        *steps(*trace[1:3]),
        *tokens("Paris 21 °C; 东京 unknown."),
        *steps(trace[3]),
    ]:
        live.apply(event)
    live.finish("Paris 21 °C; 东京 unknown.")
    question, answer = "Weather in Paris and 东京?", "Paris 21 °C; 东京 unknown."
    replayed = replay_turn(question, answer, trace, turn=2, note=NOTE)
    assert plain(replayed) == plain(live.messages())
    assert [m.metadata for m in replayed] == [m.metadata for m in live.messages()]
    assert replayed[1].metadata["id"] == "turn2-plan"
    assert_serialisable(replayed)


def test_replay_of_budget_stopped_turn() -> None:
    msgs = replay_turn("q", "Sorry.", [PLAN1, WEATHER], turn=1, stopped="max_steps")
    assert [m.metadata.get("status") for m in msgs] == [None, "done", "done", None]
    assert msgs[-1].content == (
        "Sorry.\n\n*(stopped early: used its one tool step (raise AGENT_MAX_STEPS or "
        "--max-steps); the answer is a best effort)*"
    )


def test_step_records_from_stored_dicts_and_unknown_events() -> None:
    view = TurnView("q", turn=1)
    view.apply(StepRecorded(Step.model_validate(WEATHER.model_dump())))
    view.apply(object())  # a kind of event this view does not show
    assert by_id(view, "call-1").metadata["status"] == "done"
