"""Pure rendering of one turn's graph events (or stored trace records) as Gradio chat messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from graph.approval import REJECTED_WITH_REASON, SUPERSEDED
from graph.events import (
    ApprovalRequested,
    Event,
    PendingCall,
    StepRecorded,
    Thinking,
    Token,
    ToolFinished,
    ToolStarted,
    TurnEnded,
)
from graph.recovery import strip_tool_markup
from graph.trace import STOP_NOTES, Step, stop_note

RESULT_LIMIT = 2000
PLAN_TITLE = "🧠 Plan"
ERROR_TITLE = "💥 Error"
RECOVERED_SUFFIX = " · recovered from text"
RUNNING_NOTE = "*running…*"
CANCELLED_NOTE = "*Cancelled: the turn was stopped before this tool finished.*"
EMPTY_ANSWER_NOTE = "*(no answer: the model returned an empty reply)*"
STOPPED_NOTE = f"*({STOP_NOTES['user']})*"
WAITING_NOTE = "*Waiting for your decision: approve, edit or reject it in the approval panel below the chat.*"
SUPERSEDED_NOTE = "*(the waiting tool calls were not run: a new question came before a decision)*"
THINKING_TITLE = "💭 Thinking"
FROM_REASONING_NOTE = "*(the model answered only in its thinking; shown here as the answer)*"
NOT_RUN = ("rejected", "denied", "superseded")
"""Decisions that leave a call unrun (its result is the message the model read instead)."""
DECISION_WORDS = {
    "approved": "approved",
    "allowed": "allowed for this conversation",
    "edited": "edited",
    "rejected": "rejected",
    "denied": "denied",
    "superseded": "not run: a new question came first",
}

ToolStatus = Literal["waiting", "pending", "ok", "error", "cancelled"]


@dataclass
class _Tool:
    """What is known about one tool call so far."""

    call_id: str
    name: str
    args: dict[str, Any]
    status: ToolStatus = "pending"
    output: str | None = None
    duration_ms: float | None = None
    recovered: bool = False
    server: str | None = None
    decision: str | None = None
    """How approval went (approved, edited, rejected, ...); None: it ran by policy."""
    description: str = ""


@dataclass
class _Thought:
    """A thinking model's reasoning during one model call."""

    id: str
    text: str = ""
    done: bool = False
    duration_ms: float | None = None
    tokens: int | None = None


class _Children(dict[str, Any]):
    """The plan bubble's tool calls by id, remembering where each came among the thoughts (`order`)."""

    def __init__(self, order: list[tuple[str, str]]) -> None:
        super().__init__()
        self.order = order

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self:
            self.order.append(("tool", key))
        super().__setitem__(key, value)


def _thought_message(thought: _Thought, parent: str) -> gr.ChatMessage:
    title = THINKING_TITLE + (f" · {thought.tokens} tokens" if thought.tokens else "")
    metadata: dict[str, Any] = {"title": title, "id": thought.id, "parent_id": parent}
    metadata["status"] = "done" if thought.done else "pending"
    if thought.duration_ms is not None:
        metadata["duration"] = round(thought.duration_ms / 1000, 3)
    return gr.ChatMessage(role="assistant", content=thought.text.strip() or RUNNING_NOTE, metadata=metadata)  # type: ignore[arg-type]


def rejection_reason(name: str, message: str) -> str:
    """The reason a person gave when rejecting a call, read back from the message the model got ("" if none)."""
    prefix = REJECTED_WITH_REASON.split("{reason}")[0].format(name=name)
    return message[len(prefix) :].strip() if message.startswith(prefix) else ""


def decision_words(tool: _Tool) -> str:
    """The decision as a tool bubble's title says it, e.g. "approved" or "rejected: not that file"."""
    words = DECISION_WORDS.get(tool.decision or "", tool.decision or "")
    if tool.decision == "rejected" and (reason := rejection_reason(tool.name, tool.output or "")):
        words = f"rejected: {reason}"
    return words


def _fence(text: str, lang: str = "") -> str:
    """A fenced code block that survives backticks inside `text`."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


def _output_block(label: str, text: str) -> str:
    """A result or error: a code block, cut at RESULT_LIMIT characters with a note."""
    if not text.strip():
        return f"**{label}**\n\n*(empty)*"
    shown = text if len(text) <= RESULT_LIMIT else text[:RESULT_LIMIT]
    block = f"**{label}**\n\n{_fence(shown, 'json' if _is_json(text) else '')}"
    if len(text) > RESULT_LIMIT:
        block += f"\n\n*(truncated: showing the first {RESULT_LIMIT:,} of {len(text):,} characters)*"
    return block


def _tool_title(tool: _Tool) -> str:
    """🛠️ name · server · decision; a failure, a stop, a wait or a call not run says so."""
    suffix = RECOVERED_SUFFIX if tool.recovered else ""
    name = f"{tool.name} · {tool.server}" if tool.server else tool.name
    decided = f" · {decision_words(tool)}" if tool.decision else ""
    if tool.status == "waiting":
        return f"⏸️ {name} · waiting for approval"
    if tool.decision in NOT_RUN:
        return f"🚫 {name}{decided}"
    if tool.status == "error":
        return f"💥 {name} failed{suffix}{decided}"
    if tool.status == "cancelled":
        return f"⏹️ {name} cancelled{suffix}{decided}"
    return f"🛠️ {name}{suffix}{decided}"


def _tool_message(tool: _Tool, parent: str) -> gr.ChatMessage:
    parts = [_fence(json.dumps(tool.args, ensure_ascii=False, indent=2), "json")]
    if tool.status == "waiting":
        if tool.description:
            parts.insert(0, tool.description)
        parts.append(WAITING_NOTE)
    elif tool.status == "pending":
        parts.append(RUNNING_NOTE)
    elif tool.status == "cancelled":
        parts.append(CANCELLED_NOTE)
    elif tool.decision in NOT_RUN:
        parts.append(_output_block("Not run", tool.output or ""))
    else:
        parts.append(_output_block("Error" if tool.status == "error" else "Result", tool.output or ""))
    metadata: dict[str, Any] = {"title": _tool_title(tool), "id": tool.call_id, "parent_id": parent}
    if tool.status != "waiting":  # no status: Gradio shows it open, without a spinner
        metadata["status"] = "pending" if tool.status == "pending" else "done"
    if tool.duration_ms is not None and tool.status != "pending":
        metadata["duration"] = round(tool.duration_ms / 1000, 3)
    return gr.ChatMessage(role="assistant", content="\n\n".join(parts), metadata=metadata)  # type: ignore[arg-type]


def _model_line(step: Step, label: str) -> str:
    """One finished model call for the plan bubble."""
    parts = [f"**{label}**", step.model or "?"]
    if step.tokens_in is not None or step.tokens_out is not None:
        parts.append(
            f"tokens {step.tokens_in if step.tokens_in is not None else '?'} → "
            f"{step.tokens_out if step.tokens_out is not None else '?'}"
        )
    if step.ttft_ms is not None:
        parts.append(f"first token {step.ttft_ms:.0f} ms")
    parts.append(f"{step.duration_ms / 1000:.2f} s")
    if step.finish_reason:
        parts.append(f"finish: {step.finish_reason}")
    if step.tool_calls:
        parts.append("calls " + ", ".join(step.tool_calls))
    if step.recovered:
        parts.append("recovered from text")
    if step.status == "error":
        parts.append("failed")
    elif step.status == "cancelled":
        parts.append(STOP_NOTES["user"])
    return " · ".join(parts)


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.strip().splitlines())


class TurnView:
    """One turn as chat messages, built incrementally from run_turn events (and replayed for history)."""

    def __init__(self, question: str, *, turn: int, note: str = "", max_steps: int | None = None) -> None:
        self.question = question
        self.turn = turn
        self.note = note
        self.max_steps = max_steps
        self.plan_id = f"turn{turn}-plan"
        self._plan: list[str] = []  # entries of the plan bubble: model call lines and moved thinking
        self._model_calls: dict[str, int] = {}  # node -> model calls so far (for "plan #2")
        self._steps: list[Step] = []
        self._order: list[tuple[str, str]] = []  # the plan bubble's children: ("tool", call_id) / ("thought", id)
        self._tools: dict[str, _Tool] = _Children(self._order)  # call_id -> tool, in start order
        self._thoughts: dict[str, _Thought] = {}
        self._stream: list[str] = []  # text of the current model call (the answer unless it asks for tools)
        self._closed = False  # the current model call finished without tool calls
        self._recovering = False  # the last plan call's tool calls were recovered from text
        self._final: str | None = None
        self._notes: list[str] = []
        self._error: str | None = None
        self._done = False
        self._pending: tuple[PendingCall, ...] = ()  # the calls the paused turn waits on
        self._approval_error: str | None = None
        self._paused = False

    # --- events -------------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Fold one `stream_turn` event into the view; kinds it does not show are ignored."""
        match event:
            case Token(text=text):
                self._token(text)
            case Thinking(text=text):
                self._think(text)
            case ToolStarted():
                self._tool_start(event)
            case ToolFinished():
                self._tool_end(event)
            case StepRecorded(step=step):
                self._step(step)
            case ApprovalRequested():
                self._wait(event)
            case TurnEnded(result=result) if result.pending is not None:
                self._paused = True  # the turn goes on after a decision (`resume`)
            case TurnEnded(result=result):
                self.finish(result.answer, result.stopped)
            case _:
                pass

    def _open_thought(self) -> _Thought | None:
        last = self._thoughts[self._order[-1][1]] if self._order and self._order[-1][0] == "thought" else None
        return last if last is not None and not last.done else None

    def _think(self, text: str) -> None:
        thought = self._open_thought()
        if thought is None:
            thought = _Thought(id=f"turn{self.turn}-think{len(self._thoughts) + 1}")
            self._thoughts[thought.id] = thought
            self._order.append(("thought", thought.id))
        thought.text += text

    def _token(self, text: str) -> None:
        if self._closed:
            self._stream, self._closed = [], False
        self._stream.append(text)

    def _move_stream_to_plan(self) -> None:
        thinking = strip_tool_markup("".join(self._stream))
        if thinking:
            self._plan.append(_quote(thinking))
        self._stream, self._closed = [], False

    def _tool_start(self, event: ToolStarted) -> None:
        self._move_stream_to_plan()  # text streamed before a tool call is thinking, not the answer
        call_id = event.call_id or f"turn{self.turn}-tool{len(self._tools) + 1}"
        known = self._tools.get(call_id)
        if known is not None and known.status == "waiting":  # decided: it runs now (an edit, with new args)
            known.status, known.args = "pending", dict(event.args or {})
            return
        self._tools[call_id] = _Tool(
            call_id=call_id, name=event.name, args=dict(event.args or {}), recovered=self._recovering
        )

    def _wait(self, event: ApprovalRequested) -> None:
        self._move_stream_to_plan()
        for call in event.calls:
            tool = self._tools.get(call.call_id)
            if tool is None:
                tool = self._tools[call.call_id] = _Tool(call_id=call.call_id, name=call.name, args={})
            tool.status, tool.args = "waiting", dict(call.args)
            tool.server, tool.description = call.server, call.description
        self._pending, self._approval_error = event.calls, event.error

    def _tool_end(self, event: ToolFinished) -> None:
        tool = self._tools.get(event.call_id)
        if tool is None:
            tool = self._tools[event.call_id] = _Tool(call_id=event.call_id, name=event.name, args={})
        tool.status = "error" if event.status == "error" else "ok"
        tool.output = event.content
        tool.duration_ms = event.duration_ms

    def _step(self, step: Step) -> None:
        self._steps.append(step)
        if step.kind == "model" and (step.reasoning or self._open_thought()):
            if self._open_thought() is None:  # not streamed (or a replay): the trace record has it all
                self._think("")
            thought = self._open_thought()
            assert thought is not None
            thought.text = step.reasoning or thought.text
            thought.done, thought.duration_ms, thought.tokens = True, step.thinking_ms, step.reasoning_tokens
            if step.answer_from_reasoning and FROM_REASONING_NOTE not in self._notes:
                self._notes.append(FROM_REASONING_NOTE)
        if step.kind == "model":
            n = self._model_calls[step.node] = self._model_calls.get(step.node, 0) + 1
            self._plan.append(_model_line(step, f"{step.node} #{n}"))
            if step.tool_calls:
                self._move_stream_to_plan()
                self._recovering = step.recovered
            else:
                self._closed = True
            return
        call_id = step.call_id or f"turn{self.turn}-tool{len(self._tools) + 1}"
        tool = self._tools.get(call_id)
        if tool is None:
            tool = self._tools[call_id] = _Tool(call_id=call_id, name=step.name or "?", args={})
        tool.name = step.name or tool.name
        tool.args = dict(step.arguments or tool.args)
        tool.status = step.status
        tool.output = (step.result if step.status == "ok" else step.error) or ""
        tool.duration_ms = step.duration_ms
        tool.recovered = step.recovered
        tool.server = step.server or tool.server
        tool.decision = step.decision

    # --- approval -----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """The turn waits for a person's decision on `pending`."""
        return self._paused and not self._done

    @property
    def pending(self) -> tuple[PendingCall, ...]:
        """The calls the paused turn waits on (none once it goes on or ends)."""
        return self._pending if self.paused else ()

    @property
    def approval_error(self) -> str | None:
        """Why the graph could not use the last answer to this pause (it asks again)."""
        return self._approval_error if self.paused else None

    def resume(self) -> None:
        """Decisions were sent: the turn goes on (its calls run, or are answered as not run)."""
        self._paused, self._pending, self._approval_error = False, (), None
        for tool in self._tools.values():
            if tool.status == "waiting":
                tool.status = "pending"

    def supersede(self) -> None:
        """A new question came while calls waited: they are not run, and the turn ends without an answer."""
        for tool in self._tools.values():
            if tool.status == "waiting":
                tool.status, tool.decision, tool.output = "error", "superseded", SUPERSEDED
        self._paused, self._pending = False, ()
        if self._final is None:
            self._final = strip_tool_markup("".join(self._stream))
        self._end()

    # --- endings ------------------------------------------------------------------------------
    def finish(self, answer: str, stopped: str | None = None) -> None:
        """The turn ended: show the graph's final answer (markup stripped) and why it stopped early, if it did."""
        final = strip_tool_markup(answer or "")
        self._final = final or strip_tool_markup("".join(self._stream))
        if stopped:
            note = f"*({stop_note(stopped, self._steps, self.max_steps)})*"
            if note not in self._notes:
                self._notes.append(note)
        self._end()

    def stop(self) -> None:
        """The user pressed Stop: keep the partial answer, mark it stopped, cancel pending tools."""
        if self._final is None:
            self._final = strip_tool_markup("".join(self._stream))
        if STOPPED_NOTE not in self._notes:
            self._notes.append(STOPPED_NOTE)
        self._end()

    def fail(self, message: str) -> None:
        """An error ended the turn: keep the partial answer and show `message` in an error bubble."""
        if self._final is None:
            self._final = strip_tool_markup("".join(self._stream))
        self._error = message
        self._end()

    def _end(self) -> None:
        for thought in self._thoughts.values():
            thought.done = True
        for tool in self._tools.values():
            if tool.status in ("pending", "waiting"):
                tool.status = "cancelled"
        self._paused = False
        self._done = True

    # --- view ---------------------------------------------------------------------------------
    @property
    def answer(self) -> str:
        """The answer text so far (final once finished), without the stopped notes."""
        return self._final if self._final is not None else strip_tool_markup("".join(self._stream))

    @property
    def steps(self) -> list[Step]:
        """The trace records seen so far."""
        return list(self._steps)

    @property
    def duration_s(self) -> float | None:
        """Seconds from the first step's start to the last step's end, or None before any step."""
        if not self._steps:
            return None
        start = min(s.started_at for s in self._steps)
        end = max(s.started_at + s.duration_ms / 1000 for s in self._steps)
        return round(end - start, 3)

    def _plan_message(self) -> gr.ChatMessage:
        content = "\n\n".join(([self.note] if self.note else []) + self._plan) or RUNNING_NOTE
        metadata: dict[str, Any] = {"title": PLAN_TITLE, "id": self.plan_id}
        if not self.paused:  # waiting on a person: open (no status), without a spinner
            metadata["status"] = "done" if self._done else "pending"
        if (duration := self.duration_s) is not None:
            metadata["duration"] = duration
        return gr.ChatMessage(role="assistant", content=content, metadata=metadata)  # type: ignore[arg-type]

    def _answer_text(self) -> str:
        text = self.answer
        if self._done and not text and not self._notes and self._error is None:
            superseded = any(t.decision == "superseded" for t in self._tools.values())
            text = SUPERSEDED_NOTE if superseded else EMPTY_ANSWER_NOTE
        return "\n\n".join(part for part in [text, *self._notes] if part)

    def messages(self) -> list[gr.ChatMessage]:
        """The turn's messages: question, plan bubble, nested tool bubbles, answer, error."""
        out = [gr.ChatMessage(role="user", content=self.question)]
        if self._steps or self._tools or self._thoughts:
            out.append(self._plan_message())
            for kind, key in self._order:
                if kind == "thought":
                    out.append(_thought_message(self._thoughts[key], self.plan_id))
                else:
                    out.append(_tool_message(self._tools[key], self.plan_id))
        if text := self._answer_text():
            out.append(gr.ChatMessage(role="assistant", content=text))
        if self._error is not None:
            out.append(
                gr.ChatMessage(
                    role="assistant",
                    content=self._error,
                    metadata={"title": ERROR_TITLE},  # no status: Gradio shows it expanded, not hidden
                )
            )
        return out


def replay_view(
    question: str,
    answer: str,
    steps: list[Step],
    *,
    turn: int,
    stopped: str | None = None,
    note: str = "",
    max_steps: int | None = None,
    pending: ApprovalRequested | None = None,
) -> TurnView:
    """A turn rebuilt from stored trace records: finished, or paused on `pending` (read from the checkpoint)."""
    view = TurnView(question, turn=turn, note=note, max_steps=max_steps)
    for step in steps:
        view.apply(StepRecorded(step))
    if pending is not None:
        view.apply(pending)
        view._paused = True
    else:
        view.finish(answer, stopped)
    return view


def replay_turn(
    question: str,
    answer: str,
    steps: list[Step],
    *,
    turn: int,
    stopped: str | None = None,
    note: str = "",
    max_steps: int | None = None,
) -> list[gr.ChatMessage]:
    """A finished turn from stored trace records (conversation reload)."""
    return replay_view(question, answer, steps, turn=turn, stopped=stopped, note=note, max_steps=max_steps).messages()
