"""The web UI's event handlers: run a turn with live streaming, stop it, and manage conversations."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from configs.settings import ConfigError
from graph.context import Context
from graph.errors import explain
from graph.events import Event
from graph.model import list_models, resolve_model_name
from graph.runner import new_thread_id, stream_turn
from graph.threads import Turn, load_turns, rewind
from ui.backend import Backend, Session
from ui.render import TurnView, replay_turn
from ui.status import status_markdown
from ui.trace_view import steps_table, timeline_figure, totals_markdown, trace_json

TRACE_DIR = Path(tempfile.gettempdir()) / "work-agent-traces"
SKIP_TRACE = (gr.skip(),) * 5


def replay_all(turns: list[Turn]) -> list[Any]:
    """Chat messages of a thread's finished turns, rebuilt from their trace records."""
    return [m for t in turns for m in replay_turn(t.question, t.answer, t.steps, turn=t.turn, stopped=t.stopped)]


def owner_of(owner: str, request: gr.Request | None) -> str:
    """Whose conversations these are: the logged-in user, else this browser's random id."""
    user = getattr(request, "username", None) if request is not None else None
    return f"user:{user}" if user else owner


def trace_outputs(turns: list[Turn], thread_id: str, selected: int | None = None) -> tuple[Any, ...]:
    """Values of the trace panel (turn picker, plot, table, totals, download) for one turn."""
    if not turns:
        headers, _ = steps_table([])
        return (
            gr.update(choices=[], value=None),
            timeline_figure([]),
            gr.update(value=[], headers=headers),
            "No turns yet.",
            gr.update(value=None),
        )
    turn = next((t for t in turns if t.turn == selected), turns[-1])
    headers, rows = steps_table(turn.steps)
    TRACE_DIR.mkdir(parents=True, exist_ok=True)
    path = TRACE_DIR / f"trace-{thread_id}-turn{turn.turn}.json"
    path.write_text(trace_json(turn.steps, turn=turn.turn, thread_id=thread_id), encoding="utf-8")
    choices = [(f"Turn {t.turn}: {t.question[:40]}", t.turn) for t in turns]
    return (
        gr.update(choices=choices, value=turn.turn),
        timeline_figure(turn.steps),
        gr.update(value=rows, headers=headers),
        totals_markdown(turn.steps),
        gr.update(value=str(path)),
    )


class Handlers:
    """Handlers bound to the process-wide Backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # --- conversations -------------------------------------------------------------------------

    async def conversation_choices(self, owner: str) -> Any:
        store = await self.backend.ready()
        return gr.update(choices=[(c.title, c.thread_id) for c in await store.list(owner)])

    async def on_load(self, owner: str, request: gr.Request) -> tuple[Any, ...]:
        """Page load: give this browser an id, list its conversations, check the endpoint."""
        owner = owner or uuid.uuid4().hex
        who = owner_of(owner, request)
        models = await self.model_choices(None)
        return owner, await self.conversation_choices(who), await status_markdown(self.backend.settings), models

    async def model_choices(self, base_url: str | None) -> Any:
        settings = self.backend.settings_for(base_url)
        try:
            served = await list_models(settings)
        except Exception:  # noqa: BLE001 - the status badge explains what is wrong
            served = []
        wanted = settings.agent_model
        choices = served or ([wanted] if wanted else [])
        return gr.update(choices=choices, value=wanted if wanted in choices else (choices[0] if choices else None))

    async def refresh_status(self, base_url: str | None) -> tuple[str, Any]:
        try:
            settings = self.backend.settings_for(base_url)
        except ConfigError as err:
            return f"🔴 {err}", gr.skip()
        return await status_markdown(settings), await self.model_choices(base_url)

    async def open_thread(
        self, thread_id: str | None, session: Session, base_url: str | None, max_steps: float | None
    ) -> tuple[Any, ...]:
        """Show a stored conversation (sidebar click, reload, or an id from the CLI)."""
        if not thread_id:
            return (gr.skip(),) * 2 + SKIP_TRACE
        turns = await load_turns(await self.backend.graph(), thread_id)
        session.thread_id, session.turns, session.view = thread_id, len(turns), None
        session.history = replay_all(turns)
        return session.display(), thread_id, *trace_outputs(turns, thread_id)

    async def claim_thread(
        self,
        thread_id: str,
        owner: str,
        session: Session,
        base_url: str | None,
        max_steps: float | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Open a thread by id (e.g. `work-agent run --thread ID`) and add it to this browser's list."""
        thread_id = (thread_id or "").strip()
        store = await self.backend.ready()
        who = owner_of(owner, request)
        turns = await load_turns(await self.backend.graph(), thread_id)
        if not thread_id or not turns or not await store.claim(who, thread_id, turns[0].question):
            gr.Warning(f"No conversation {thread_id!r} that you can open.")
            return (gr.skip(),) * 3 + SKIP_TRACE
        opened = await self.open_thread(thread_id, session, base_url, max_steps)
        return await self.conversation_choices(who), *opened

    def new_conversation(self, session: Session) -> tuple[Any, ...]:
        session.thread_id, session.turns, session.history, session.view = "", 0, [], None
        return [], "", gr.update(value=None), *trace_outputs([], "")

    async def rename(self, title: str, owner: str, session: Session, request: gr.Request) -> Any:
        store = await self.backend.ready()
        who = owner_of(owner, request)
        if session.thread_id and title.strip() and await store.rename(who, session.thread_id, title):
            return await self.conversation_choices(who)
        gr.Warning("Open a conversation and type a title first.")
        return gr.skip()

    async def delete(self, owner: str, session: Session, request: gr.Request) -> tuple[Any, ...]:
        store = await self.backend.ready()
        who = owner_of(owner, request)
        if session.thread_id and await store.delete(who, session.thread_id):
            await self.backend.delete_thread(session.thread_id)
        chat, thread, _, *trace = self.new_conversation(session)
        choices = [(c.title, c.thread_id) for c in await store.list(who)]
        return gr.update(choices=choices, value=None), chat, thread, *trace

    # --- turns ---------------------------------------------------------------------------------

    async def run(
        self,
        question: str,
        session: Session,
        owner: str,
        base_url: str | None,
        model: str | None,
        temperature: float,
        max_tokens: float,
        max_steps: float,
        tools: list[str],
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Ask a question on the session's thread, streaming the answer and tool steps as they happen."""
        question = (question or "").strip()
        if not question:
            yield (gr.skip(),) * 4 + SKIP_TRACE
            return
        if session.running:
            gr.Warning("A turn is still running: press Stop first.")
            yield (gr.skip(),) * 4 + SKIP_TRACE
            return
        who = owner_of(owner, request)
        session.stop_requested = False  # a Stop pressed while nothing ran is not for this question
        session.thread_id = session.thread_id or new_thread_id()
        steps_budget = int(max_steps)
        settings = self.backend.settings
        try:
            store = await self.backend.ready()  # the thread store (its failures are one line too)
            settings = self.backend.settings_for(base_url)
            name = await resolve_model_name(settings, model or None)
        except Exception as exc:  # noqa: BLE001 - shown in the chat as one line
            name = model or ""
            session.view = TurnView(question, turn=session.turns + 1, max_steps=steps_budget)
            session.view.fail(str(explain(exc, base_url=settings.openai_api_base, model=name)))
            session.history, session.view = session.display(), None
            yield session.display(), "", gr.skip(), session.thread_id, *SKIP_TRACE
            return
        enabled = list(tools or [])
        note = (
            f"{name} · temperature {temperature:g} · max tokens {int(max_tokens)} · max steps {steps_budget}"
            f" · tools: {', '.join(enabled) or 'none'} · endpoint {settings.openai_api_base}"
        )
        ctx = Context(
            model=name,
            temperature=float(temperature),
            max_tokens=int(max_tokens),
            max_steps=steps_budget,
            tools=enabled,
            stream=True,
            base_url="" if settings is self.backend.settings else settings.openai_api_base,
        )
        graph = await self.backend.graph()
        await store.touch(who, session.thread_id, question)
        if session.stop_requested:  # Stop was pressed before the turn could start: the question goes back
            yield session.display(), question, gr.skip(), session.thread_id, *SKIP_TRACE
            return
        session.turns += 1
        view = session.view = TurnView(question, turn=session.turns, note=note, max_steps=steps_budget)
        changed = asyncio.Event()
        events = stream_turn(graph, question, thread_id=session.thread_id, context=ctx, interface="ui")
        turn = session.task = asyncio.create_task(
            _drive(events, view, changed, lambda exc: str(explain(exc, base_url=settings.openai_api_base, model=name)))
        )
        turn.add_done_callback(partial(_settle, session))  # also when Gradio abandons this generator
        try:
            yield session.display(), "", await self.conversation_choices(who), session.thread_id, *SKIP_TRACE
            while not turn.done():
                await changed.wait()
                changed.clear()
                yield session.display(), gr.skip(), gr.skip(), gr.skip(), *SKIP_TRACE
        except (asyncio.CancelledError, GeneratorExit):
            # Gradio cancelled this event or closed it (the page went away, a client's timeout): stop the turn
            # too, once its partial answer is saved. Stop never goes this way (see `stop`).
            await halt(turn)
            raise
        _settle(session, turn)
        await store.touch(who, session.thread_id, question)
        turns = await load_turns(graph, session.thread_id)
        yield (
            session.display(),
            gr.skip(),
            await self.conversation_choices(who),
            session.thread_id,
            *trace_outputs(turns, session.thread_id),
        )

    async def stop(self, session: Session) -> None:
        """Stop the running turn (the Stop button): cancel its task and wait until its partial answer is saved.

        Cancelling the task closes the request to the model server (vLLM frees the slot) and cancels running
        tools; the turn's event then ends by itself, showing the partial answer marked stopped and its trace.
        A question that has not started its turn yet is not asked. Stop does not cancel the turn's Gradio
        event (`cancels=`): Gradio's generator wrapper does not pass the close on to the handler (the turn
        would run on until garbage-collected), and the page can keep an error state when its /cancel answer
        arrives before the cancelled event's last message.
        """
        if session.task is not None:
            await halt(session.task)
        else:
            session.stop_requested = True

    async def rewind_to(self, keep_turns: int, session: Session, base_url: str | None) -> None:
        graph = await self.backend.graph()
        if session.thread_id:
            await rewind(graph, session.thread_id, keep_turns)
        turns = await load_turns(graph, session.thread_id) if session.thread_id else []
        session.turns, session.view = len(turns), None
        session.history = replay_all(turns)

    async def last_turns(self, session: Session, base_url: str | None) -> list[Turn]:
        if not session.thread_id:
            return []
        return await load_turns(await self.backend.graph(), session.thread_id)

    async def undo(self, session: Session, base_url: str | None) -> tuple[Any, ...]:
        """Undo the last turn: it leaves the thread, and its question goes back into the box."""
        turns = await self.last_turns(session, base_url)
        if not turns or session.running:
            return (gr.skip(),) * 2 + SKIP_TRACE
        await self.rewind_to(len(turns) - 1, session, base_url)
        return session.display(), turns[-1].question, *trace_outputs(turns[:-1], session.thread_id)

    async def retry(
        self,
        session: Session,
        owner: str,
        base_url: str | None,
        model: str | None,
        temperature: float,
        max_tokens: float,
        max_steps: float,
        tools: list[str],
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Ask the last question again."""
        turns = await self.last_turns(session, base_url)
        if not turns or session.running:
            yield (gr.skip(),) * 4 + SKIP_TRACE
            return
        await self.rewind_to(len(turns) - 1, session, base_url)
        async for update in self.run(
            turns[-1].question, session, owner, base_url, model, temperature, max_tokens, max_steps, tools, request
        ):
            yield update

    async def edit(
        self,
        edit: gr.EditData,
        session: Session,
        owner: str,
        base_url: str | None,
        model: str | None,
        temperature: float,
        max_tokens: float,
        max_steps: float,
        tools: list[str],
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Edit a question: the conversation continues from just before it, with the new text."""
        if session.running:
            yield (gr.skip(),) * 4 + SKIP_TRACE
            return
        index = edit.index if isinstance(edit.index, int) else edit.index[0]
        earlier = [m for m in session.display()[:index] if _role(m) == "user"]
        await self.rewind_to(len(earlier), session, base_url)
        async for update in self.run(
            str(edit.value), session, owner, base_url, model, temperature, max_tokens, max_steps, tools, request
        ):
            yield update


async def _drive(
    events: AsyncGenerator[Event, None], view: TurnView, changed: asyncio.Event, describe: Callable[[Exception], str]
) -> None:
    """Run one turn to its end, folding its events into `view`: its own task, so that Stop can cancel it."""
    try:
        async with aclosing(events):
            async for event in events:
                view.apply(event)
                changed.set()
    except asyncio.CancelledError:  # Stop: stream_turn has saved the partial answer and closed the request
        view.stop()
        raise
    except Exception as exc:  # noqa: BLE001 - shown in the chat as one line
        view.fail(describe(exc))
    finally:
        changed.set()


async def halt(turn: asyncio.Task[None]) -> None:
    """Cancel a running turn once (a second cancel would cut its save short) and wait until it has ended."""
    if not turn.done() and not turn.cancelling():
        turn.cancel()
    await asyncio.wait([turn])


def _settle(session: Session, turn: asyncio.Task[None]) -> None:
    """The turn ended: its messages join the history (once; a newer turn's are left alone)."""
    if session.task is turn:
        session.history, session.view, session.task = session.display(), None, None


def _role(message: Any) -> str:
    return str(message.get("role") if isinstance(message, dict) else getattr(message, "role", ""))
