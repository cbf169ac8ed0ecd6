"""A thinking model's reasoning: kept (streamed and not), shown apart from the answer, never sent back,
and the known failure modes of thinking models behind vLLM (#15)."""

from __future__ import annotations

import json

import pytest

from configs.settings import get_settings
from graph.checkpoint import open_checkpointer
from graph.context import Context
from graph.demo.server import DemoConfig, Reply, tool_call_text
from graph.events import Thinking, Token, TurnEnded
from graph.graph import build_graph
from graph.runner import stream_turn
from graph.thinking import ThinkSplitter, split_think_tags
from tools import TOOLS


async def ask(question: str, *, thread: str = "t1", stream: bool = True, events: list | None = None):
    settings = get_settings()
    async with open_checkpointer(settings) as saver:
        graph = build_graph(settings=settings, tools=TOOLS, checkpointer=saver)
        async for event in stream_turn(graph, question, thread_id=thread, context=Context(stream=stream)):
            if events is not None:
                events.append(event)
            if isinstance(event, TurnEnded):
                return event.result
    raise AssertionError("no TurnEnded")


def qwen3(vllm, *, parser: bool = True) -> None:
    vllm.config = DemoConfig(served_model_names=["Qwen/Qwen3-8B"], reasoning_parser="qwen3" if parser else None)


def sent_texts(vllm) -> str:
    """Everything the agent sent to the model, as one JSON string."""
    return json.dumps([r.get("messages") for r in vllm.requests], ensure_ascii=False)


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_is_kept_in_the_trace_and_never_sent_back(vllm, stream):
    qwen3(vllm)
    vllm.script(
        "<think>The user wants Tokyo's time: call the clock.</think>\n\n"
        + tool_call_text("get_current_time", {"timezone": "Asia/Tokyo"}),
        "<think>今天是东京的晚上。</think>\n\nIt is evening in Tokyo.",
    )
    events: list = []
    result = await ask("What time is it in Tokyo?", stream=stream, events=events)
    assert result.answer == "It is evening in Tokyo."
    plan, _tool, final = result.steps
    assert plan.reasoning == "The user wants Tokyo's time: call the clock." and plan.tool_calls == ["get_current_time"]
    assert final.reasoning == "今天是东京的晚上。"
    assert plan.reasoning_tokens and plan.reasoning_tokens > 0  # usage.completion_tokens_details
    thinking = "".join(e.text for e in events if isinstance(e, Thinking))
    tokens = "".join(e.text for e in events if isinstance(e, Token))
    if stream:
        assert "call the clock" in thinking and "东京" in thinking and plan.thinking_ms is not None
    else:
        assert thinking == ""  # nothing streams; the trace still has it
    assert "call the clock" not in tokens and "think>" not in tokens
    # a later turn sends the history without the reasoning
    vllm.script("Anything else?")
    await ask("thanks", stream=stream)
    assert "call the clock" not in sent_texts(vllm) and "东京的晚上" not in sent_texts(vllm)


async def test_think_tags_in_the_content_without_a_reasoning_parser_are_split_out(vllm):
    qwen3(vllm, parser=False)
    vllm.script("<think>\nSimple arithmetic, no tool needed.\n</think>\n\n2 + 2 = 4.")
    events: list = []
    result = await ask("2+2?", events=events)
    assert result.answer == "2 + 2 = 4."
    assert result.steps[-1].reasoning == "Simple arithmetic, no tool needed."
    tokens = "".join(e.text for e in events if isinstance(e, Token))
    assert "<think>" not in tokens and "Simple arithmetic" not in tokens and tokens.strip() == "2 + 2 = 4."
    assert "Simple arithmetic" in "".join(e.text for e in events if isinstance(e, Thinking))


async def test_a_reply_that_is_only_reasoning_becomes_the_answer_marked(vllm):
    qwen3(vllm)
    vllm.script(Reply(text="<think>The capital of France is Paris."))  # never closes the thinking
    result = await ask("Capital of France?")
    assert result.answer == "The capital of France is Paris."
    assert result.steps[-1].answer_from_reasoning is True


async def test_a_tool_call_written_inside_the_reasoning_is_recovered(vllm):
    qwen3(vllm)
    xml = "<function=get_current_time>\n<parameter=timezone>\nEurope/Paris\n</parameter>\n</function>"
    vllm.script(Reply(text=f"<think>I will call the clock. {xml}"), "It is noon in Paris.")
    result = await ask("Time in Paris?")
    tool = next(s for s in result.steps if s.kind == "tool")
    assert (tool.name, tool.arguments, tool.recovered) == ("get_current_time", {"timezone": "Europe/Paris"}, True)
    assert result.answer == "It is noon in Paris."
    assert "<function=" not in (result.steps[0].reasoning or "")


def test_think_splitter_holds_partial_tags_and_splits_whole_replies():
    splitter = ThinkSplitter()
    pieces = [splitter.feed(p) for p in ["\n<th", "ink>\nLet me ", "think</th", "ink>\n\nThe answer", " is 4."]]
    pieces.append(splitter.flush())
    assert "".join(t for t, _ in pieces) == "\nLet me think" and "".join(a for _, a in pieces) == "The answer is 4."
    plain = ThinkSplitter()
    assert [plain.feed("Hello"), plain.feed(" <b>world</b>")] == [("", "Hello"), ("", " <b>world</b>")]
    assert split_think_tags("thinking...</think>Answer") == ("thinking...", "Answer")
    assert split_think_tags("<think>cut off") == ("cut off", "")
    assert split_think_tags("no tags") == ("", "no tags")


def test_cli_prints_thinking_dimmed_on_stderr_only_with_verbose(capsys):
    from graph.cli.chat import TurnPrinter
    from graph.trace import Step

    step = Step(kind="model", turn=1, node="plan", started_at=0, duration_ms=900, reasoning="hmm", thinking_ms=500)
    for verbose in (False, True):
        printer = TurnPrinter(stream_answer=True, verbose=verbose)
        for event in (Thinking("Let me ", "plan"), Thinking("think.", "plan"), Token("42", "plan")):
            printer.show(event)
        printer.finish("42")
        out, err = capsys.readouterr()
        assert out.strip() == "42"  # stdout is the answer only
        assert ("thinking: Let me think." in err) is verbose
    assert "thought 0.5s" in step.summary()


def test_ui_view_nests_a_thinking_step_with_its_duration_and_replays_it():
    from graph.events import StepRecorded
    from graph.trace import Step
    from ui.render import THINKING_TITLE, TurnView, replay_turn

    step = Step(
        kind="model",
        turn=1,
        node="plan",
        started_at=0,
        duration_ms=900,
        reasoning="想一想。",
        thinking_ms=1500,
        reasoning_tokens=7,
    )
    view = TurnView("q", turn=1)
    view.apply(Thinking("想", "plan"))
    live = [m for m in view.messages() if (m.metadata or {}).get("title", "").startswith(THINKING_TITLE)]
    assert live and live[0].metadata["status"] == "pending" and live[0].content == "想"
    view.apply(StepRecorded(step))
    view.finish("answer")
    (done,) = [m for m in view.messages() if (m.metadata or {}).get("title", "").startswith(THINKING_TITLE)]
    assert done.content == "想一想。" and done.metadata["status"] == "done" and done.metadata["duration"] == 1.5
    assert "7 tokens" in done.metadata["title"] and done.metadata["parent_id"] == view.plan_id
    replayed = replay_turn("q", "answer", [step], turn=1)
    assert [m.content for m in replayed if (m.metadata or {}).get("title", "").startswith(THINKING_TITLE)] == [
        "想一想。"
    ]
    assert replayed[-1].content == "answer"


@pytest.mark.parametrize(
    ("parser", "status", "says"),
    [("qwen3", "ok", "reasoning parser keeps it apart"), (None, "warn", "no reasoning parser")],
)
async def test_doctor_says_whether_the_model_thinks_and_the_server_splits_it(vllm, parser, status, says):
    from graph.doctor import run_checks

    vllm.config = DemoConfig(reasoning_parser=parser)
    vllm.script("<think>A greeting.</think>OK")
    report = await run_checks(get_settings(), quick=True)
    (row,) = [c for c in report.checks if c.name == "thinking"]
    assert row.status == status and says in row.detail
    if parser is None:
        assert "--reasoning-parser qwen3" in row.fix


async def test_doctor_sees_no_thinking_from_a_model_that_does_not_think(vllm):
    from graph.doctor import run_checks

    vllm.script("OK")
    report = await run_checks(get_settings(), quick=True)
    (row,) = [c for c in report.checks if c.name == "thinking"]
    assert row.status == "ok" and "no thinking" in row.detail


@pytest.mark.parametrize(("thinking", "sent"), [(None, None), (False, False), (True, True)])
async def test_thinking_switch_is_sent_only_when_set(vllm, thinking, sent):
    qwen3(vllm)
    vllm.script("<think>hm</think>Hi." if thinking is not False else "Hi.")
    settings = get_settings()
    graph = build_graph(settings=settings, tools=TOOLS)
    async for event in stream_turn(graph, "hi", thread_id="t", context=Context(thinking=thinking)):
        if isinstance(event, TurnEnded):
            assert event.result.answer == "Hi."
    (request,) = vllm.requests
    kwargs = request.get("chat_template_kwargs")
    assert (kwargs or {}).get("enable_thinking") == sent if sent is not None else kwargs is None


def test_no_think_flag_and_agent_thinking_reach_the_server(vllm):
    from tests.conftest import run_cli

    vllm.script("Hi.", "Hi again.")
    assert run_cli("run", "hi", "--no-think").returncode == 0
    assert run_cli("run", "hi", env={"AGENT_THINKING": "true"}).returncode == 0
    first, second = vllm.requests
    assert first["chat_template_kwargs"] == {"enable_thinking": False}
    assert second["chat_template_kwargs"] == {"enable_thinking": True}
