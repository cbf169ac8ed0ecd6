"""The web UI's event handlers: run a turn with live streaming, stop it, approve its calls, manage conversations."""

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
from graph.runner import StaleApproval, new_thread_id, pending_approval, stream_turn
from graph.threads import Turn, load_turns, rewind
from ui.approval import Kind, args_text, call_choices, decision_for, panel_markdown, undecided
from ui.backend import Backend, Session
from ui.render import TurnView, replay_turn, replay_view
from ui.status import status_markdown
from ui.tool_settings import enabled_tools, policy_table, problems_markdown, server_choices, tool_choices
from ui.trace_view import steps_table, timeline_figure, totals_markdown, trace_json

THINKING_CHOICES: dict[str, bool | None] = {"default": None, "on": True, "off": False}
"""The Settings → Thinking radio: what each choice sends (`Context.thinking`)."""
TRACE_DIR = Path(tempfile.gettempdir()) / "work-agent-traces"
SKIP_TRACE = (gr.skip(),) * 5
PANEL_SIZE = 7
"""The approval panel's outputs: box, text, call picker, arguments, reason, allow checkbox, inline error."""
SKIP_PANEL = (gr.skip(),) * PANEL_SIZE
SKIP_RUN = (gr.skip(),) * 4 + SKIP_TRACE + SKIP_PANEL
"""A turn handler's outputs left as they are: chat, box, sidebar, thread, trace, approval panel."""
STILL_RUNNING = "A turn is still running: press Stop first."


def replay_all(turns: list[Turn]) -> list[Any]:
    """Chat messages of a thread's finished turns, rebuilt from their trace records."""
    return [m for t in turns for m in replay_turn(t.question, t.answer, t.steps, turn=t.turn, stopped=t.stopped)]


def panel_outputs(session: Session, error: str | None = None) -> tuple[Any, ...]:
    """The approval panel for the session's paused turn: hidden when nothing waits."""
    calls = session.pending
    if not calls:
        return (
            gr.update(visible=False),
            "",
            gr.update(choices=[], value=None, visible=False),
            gr.update(value=""),
            gr.update(value=""),
            gr.update(value=False),
            "",
        )
    waiting = undecided(calls, session.decisions)
    current = waiting[0] if waiting else None
    error = error or (session.view.approval_error if session.view is not None else None)
    return (
        gr.update(visible=True),
        panel_markdown(calls, session.decisions),
        gr.update(
            choices=call_choices(calls, session.decisions),
            value=current.call_id if current else None,
            visible=len(calls) > 1,
        ),
        gr.update(value=args_text(current)),
        gr.update(value=""),
        gr.update(value=False),
        panel_error(error),
    )


def panel_error(error: str | None) -> str:
    """The panel's inline error line."""
    return f"❗ {error}" if error else ""


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

    async def on_load(self, owner: str, last_thread: str, session: Session, request: gr.Request) -> tuple[Any, ...]:
        """Page load: give this browser an id, list its conversations, check the endpoint.

        The conversation this browser had open comes back when its turn waits for an approval (the pause
        lives in the checkpoint): its calls and the approval panel show again. Otherwise a new tab is empty.
        """
        owner = owner or uuid.uuid4().hex
        who = owner_of(owner, request)
        models = await self.model_choices(None)
        status = await status_markdown(self.backend.settings)
        choices = await self.conversation_choices(who)
        restored: tuple[Any, ...] = (gr.skip(),) * 2 + SKIP_TRACE + SKIP_PANEL
        if last_thread and await self._owns(who, last_thread):
            graph = await self.backend.graph()
            if await pending_approval(graph, last_thread) is not None:
                turns = await self._show_thread(session, last_thread)
                choices = gr.update(choices=choices.get("choices"), value=last_thread)
                restored = (
                    session.display(),
                    last_thread,
                    *trace_outputs(turns, last_thread),
                    *panel_outputs(session),
                )
        return owner, choices, status, models, *restored

    async def _owns(self, who: str, thread_id: str) -> bool:
        store = await self.backend.ready()
        found = await store.get(thread_id)
        return found is not None and found.owner == who

    async def _show_thread(self, session: Session, thread_id: str) -> list[Turn]:
        """Make `thread_id` the session's conversation, as the checkpoint has it (a paused turn stays paused)."""
        graph = await self.backend.graph()
        turns = await load_turns(graph, thread_id)
        waiting = await pending_approval(graph, thread_id) if turns else None
        session.thread_id, session.turns, session.decisions = thread_id, len(turns), {}
        if waiting is not None:
            last = turns[-1]
            session.history = replay_all(turns[:-1])
            session.view = replay_view(last.question, last.answer, last.steps, turn=last.turn, pending=waiting)
        else:
            session.history, session.view = replay_all(turns), None
        return turns

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
            return (gr.skip(),) * 2 + SKIP_TRACE + SKIP_PANEL
        turns = await self._show_thread(session, thread_id)
        return session.display(), thread_id, *trace_outputs(turns, thread_id), *panel_outputs(session)

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
            return (gr.skip(),) * 3 + SKIP_TRACE + SKIP_PANEL
        opened = await self.open_thread(thread_id, session, base_url, max_steps)
        return await self.conversation_choices(who), *opened

    def new_conversation(self, session: Session) -> tuple[Any, ...]:
        session.thread_id, session.turns, session.history, session.view = "", 0, [], None
        session.decisions = {}
        return [], "", gr.update(value=None), *trace_outputs([], ""), *panel_outputs(session)

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
        chat, thread, _, *rest = self.new_conversation(session)
        choices = [(c.title, c.thread_id) for c in await store.list(who)]
        return gr.update(choices=choices, value=None), chat, thread, *rest

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
        """Ask a question on the session's thread, streaming the answer and tool steps as they happen.

        Calls that wait for approval when the question comes are not run (the runner closes them as
        superseded): the approval panel goes away.
        """
        question = (question or "").strip()
        if not question:
            yield SKIP_RUN
            return
        if session.running or session.resuming:
            gr.Warning(STILL_RUNNING)
            yield SKIP_RUN
            return
        who = owner_of(owner, request)
        session.stop_requested = False  # a Stop pressed while nothing ran is not for this question
        if session.view is not None and session.view.paused:
            session.view.supersede()
            session.history, session.view = session.display(), None
        session.decisions = {}
        session.thread_id = session.thread_id or new_thread_id()
        steps_budget = int(max_steps)
        knobs = (base_url, model, temperature, max_tokens, steps_budget, tools)
        prepared = await self._prepare(session, *knobs)
        if isinstance(prepared, str):  # shown in the chat as one line
            session.view = TurnView(question, turn=session.turns + 1, max_steps=steps_budget)
            session.view.fail(prepared)
            session.history, session.view = session.display(), None
            yield session.display(), "", gr.skip(), session.thread_id, *SKIP_TRACE, *panel_outputs(session)
            return
        store, graph, ctx, note, describe = prepared
        await store.touch(who, session.thread_id, question)
        if session.stop_requested:  # Stop was pressed before the turn could start: the question goes back
            yield session.display(), question, gr.skip(), session.thread_id, *SKIP_TRACE, *SKIP_PANEL
            return
        session.turns += 1
        view = session.view = TurnView(question, turn=session.turns, note=note, max_steps=steps_budget)
        events = stream_turn(graph, question, thread_id=session.thread_id, context=ctx, interface="ui")
        async for update in self._follow(session, who, graph, view, events, describe, clear_box=True):
            yield update

    async def _prepare(
        self,
        session: Session,
        base_url: str | None,
        model: str | None,
        temperature: float,
        max_tokens: float,
        steps_budget: int,
        tools: list[str] | None,
    ) -> tuple[Any, ...] | str:
        """The store, graph, run context, plan note and error wording of a turn; or why it cannot run."""
        settings = self.backend.settings
        try:
            store = await self.backend.ready()  # the thread store (its failures are one line too)
            settings = self.backend.settings_for(base_url)
            name = await resolve_model_name(settings, model or None)
        except Exception as exc:  # noqa: BLE001 - shown in the chat as one line
            return str(explain(exc, base_url=settings.openai_api_base, model=model or ""))
        graph = await self.backend.graph()
        listing = await self._listing(session)
        enabled = enabled_tools(listing, tools, session.shown_tools, session.disabled_servers)
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
            approval=dict(session.approval) or None,
            thinking=session.thinking,
        )

        def describe(exc: Exception) -> str:
            return str(explain(exc, base_url=settings.openai_api_base, model=name))

        return store, graph, ctx, note, describe

    async def _listing(self, session: Session) -> list[Any]:
        """Every tool with its source and policy, MCP servers started first (each once per process)."""
        box = await self.backend.toolbox()
        await box.tools()
        return box.listing(session.approval)

    async def _follow(
        self,
        session: Session,
        who: str,
        graph: Any,
        view: TurnView,
        events: AsyncGenerator[Event, None],
        describe: Callable[[Exception], str],
        *,
        clear_box: bool,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Run the turn's events in their own task (Stop cancels it), streaming the chat until it ends or pauses."""
        changed = asyncio.Event()  # the task starts before any await: `running` follows `resuming` at once
        turn = session.task = asyncio.create_task(_drive(events, view, changed, describe))
        turn.add_done_callback(partial(_settle, session))  # also when Gradio abandons this generator
        try:
            yield (
                session.display(),
                "" if clear_box else gr.skip(),
                await self.conversation_choices(who),
                session.thread_id,
                *SKIP_TRACE,
                *panel_outputs(session),  # hidden while the turn runs
            )
            while not turn.done():
                await changed.wait()
                changed.clear()
                yield session.display(), gr.skip(), gr.skip(), gr.skip(), *SKIP_TRACE, *SKIP_PANEL
        except (asyncio.CancelledError, GeneratorExit):
            # Gradio cancelled this event or closed it (the page went away, a client's timeout): stop the turn
            # too, once its partial answer is saved. Stop never goes this way (see `stop`).
            await halt(turn)
            raise
        _settle(session, turn)
        store = await self.backend.ready()
        await store.touch(who, session.thread_id, view.question)
        turns = await load_turns(graph, session.thread_id)
        yield (
            session.display(),
            gr.skip(),
            await self.conversation_choices(who),
            session.thread_id,
            *trace_outputs(turns, session.thread_id),
            *panel_outputs(session),  # shown when the turn paused for approval
        )

    # --- approval ------------------------------------------------------------------------------

    async def decide(
        self,
        kind: Kind,
        call_id: str | None,
        args: str,
        reason: str,
        allow: bool,
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
        """Approve, edit or reject a waiting call; once every waiting call is decided, the turn goes on.

        Invalid JSON in an edit is an inline error and nothing is sent. A thread that no longer waits for
        these calls (it moved on, or another tab decided) is a one-line warning, nothing runs, and the
        conversation is shown as it now is.
        """
        if session.running or session.resuming:
            gr.Warning(STILL_RUNNING)
            yield SKIP_RUN
            return
        who = owner_of(owner, request)
        calls = session.pending
        call = next((c for c in calls if c.call_id == call_id), None)
        call = call or next(iter(undecided(calls, session.decisions)), None)
        if call is None:
            async for update in self._stale(session):
                yield update
            return
        decision, error = decision_for(kind, call, args, reason, allow)
        if decision is None:
            yield (gr.skip(),) * 4 + SKIP_TRACE + (gr.skip(),) * (PANEL_SIZE - 1) + (panel_error(error),)
            return
        session.decisions[call.call_id] = decision
        if undecided(calls, session.decisions):  # the next call's turn in the panel
            yield (gr.skip(),) * 4 + SKIP_TRACE + panel_outputs(session)
            return
        decisions, session.decisions = dict(session.decisions), {}
        session.resuming = True  # a second click (or question) while this one awaits is refused
        try:
            graph = await self.backend.graph()
            waiting = await pending_approval(graph, session.thread_id)
            stale = waiting is None or {c.call_id for c in waiting.calls} != {c.call_id for c in calls}
            knobs = (base_url, model, temperature, max_tokens, int(max_steps), tools)
            prepared = None if stale else await self._prepare(session, *knobs)
        finally:
            session.resuming = False
        if prepared is None:
            async for update in self._stale(session):
                yield update
            return
        if isinstance(prepared, str):  # the endpoint is unusable: the calls keep waiting
            yield (gr.skip(),) * 4 + SKIP_TRACE + panel_outputs(session, error=prepared)
            return
        _, graph, ctx, _, describe = prepared
        assert session.view is not None  # `pending` comes from the paused view
        view = session.view
        view.resume()
        events = stream_turn(
            graph, None, thread_id=session.thread_id, context=ctx, interface="ui", resume={"decisions": decisions}
        )
        async for update in self._follow(session, who, graph, view, events, describe, clear_box=False):
            yield update

    async def _stale(self, session: Session) -> AsyncIterator[tuple[Any, ...]]:
        """The thread does not wait for what this tab shows: say so, run nothing, show the thread as it is."""
        message = str(StaleApproval(session.thread_id or "?"))
        gr.Warning(message)
        if not session.thread_id:
            yield (gr.skip(),) * 4 + SKIP_TRACE + panel_outputs(session)
            return
        turns = await self._show_thread(session, session.thread_id)
        yield (
            session.display(),
            gr.skip(),
            gr.skip(),
            session.thread_id,
            *trace_outputs(turns, session.thread_id),
            *panel_outputs(session, error=message if session.pending else None),
        )

    def decision_handler(self, kind: Kind) -> Callable[..., AsyncIterator[tuple[Any, ...]]]:
        """The click handler of one of the panel's buttons (Gradio reads its signature for the request)."""

        async def handler(
            call_id: str | None,
            args: str,
            reason: str,
            allow: bool,
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
            knobs = (base_url, model, temperature, max_tokens, max_steps, tools, request)
            async for update in self.decide(kind, call_id, args, reason, allow, session, owner, *knobs):
                yield update

        handler.__name__ = f"{kind}_call"
        return handler

    def pick_call(self, call_id: str | None, session: Session) -> tuple[Any, ...]:
        """Another waiting call picked in the panel: its arguments in the Edit box."""
        call = next((c for c in session.pending if c.call_id == call_id), None)
        return gr.update(value=args_text(call)), gr.update(value=""), gr.update(value=False), ""

    # --- tool settings -------------------------------------------------------------------------

    async def tool_settings(self, session: Session, checked: list[str] | None) -> tuple[Any, ...]:
        """The tool settings and the status area's badges, after the MCP servers started (or failed).

        Runs when the page loads and after each turn. The Enabled tools list changes only when the set of
        tools did: a tool that appeared is enabled, the user's own choices are kept.
        """
        try:
            box = await self.backend.toolbox()
            listing = await self._listing(session)
        except Exception as exc:  # noqa: BLE001 - the badge says it in one line; the turn will say it too
            return (
                gr.skip(),
                gr.skip(),
                problems_markdown([f"the tools could not be listed: {exc}"]),
                gr.skip(),
                gr.skip(),
            )
        names = [t.name for t in listing]
        tools_update: Any = gr.skip()
        if session.shown_tools is None or sorted(names) != sorted(session.shown_tools):
            before = set(session.shown_tools or [])
            checked = [n for n in names if n in (checked or []) or n not in before]
            session.shown_tools = names
            tools_update = gr.update(choices=tool_choices(listing), value=checked)
        servers = server_choices(box.statuses())
        servers_update = gr.update(
            choices=servers, value=[n for _, n in servers if n not in session.disabled_servers], visible=bool(servers)
        )
        enabled = enabled_tools(listing, checked, session.shown_tools, session.disabled_servers)
        return (
            tools_update,
            servers_update,
            problems_markdown(box.problems()),
            gr.update(choices=names),
            policy_table(listing, session.approval, enabled),
        )

    def set_thinking(self, choice: str, session: Session) -> None:
        """The Thinking switch: on, off, or the default (AGENT_THINKING, else the model's)."""
        session.thinking = THINKING_CHOICES.get(choice)

    async def set_servers(self, checked: list[str] | None, session: Session, tools: list[str] | None) -> str:
        """Servers ticked off or on: their tools leave (or rejoin) the next turns."""
        box = await self.backend.toolbox()
        every = [st.name for st in box.statuses()]
        session.disabled_servers = [n for n in every if n not in (checked or [])]
        return await self.tool_table(session, tools)

    async def tool_table(self, session: Session, tools: list[str] | None) -> str:
        """The tools table (source, policy, on or off) for this tab's settings."""
        box = await self.backend.toolbox()
        listing = box.listing(session.approval)
        return policy_table(
            listing, session.approval, enabled_tools(listing, tools, session.shown_tools, session.disabled_servers)
        )

    def policy_of(self, tool: str | None, session: Session) -> Any:
        """The policy radio for the picked tool: this tab's override, else `default`."""
        return gr.update(value=session.approval.get(tool or "", "default"))

    async def set_policy(self, tool: str | None, policy: str, session: Session, tools: list[str] | None) -> str:
        """This tab's policy for one tool (auto, ask, deny; `default` drops the override)."""
        if tool:
            if policy in ("auto", "ask", "deny"):
                session.approval[tool] = policy
            else:
                session.approval.pop(tool, None)
        return await self.tool_table(session, tools)

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
        session.turns, session.view, session.decisions = len(turns), None, {}
        session.history = replay_all(turns)

    async def last_turns(self, session: Session, base_url: str | None) -> list[Turn]:
        if not session.thread_id:
            return []
        return await load_turns(await self.backend.graph(), session.thread_id)

    async def undo(self, session: Session, base_url: str | None) -> tuple[Any, ...]:
        """Undo the last turn: it leaves the thread, and its question goes back into the box."""
        turns = await self.last_turns(session, base_url)
        if not turns or session.running:
            return (gr.skip(),) * 2 + SKIP_TRACE + SKIP_PANEL
        await self.rewind_to(len(turns) - 1, session, base_url)
        return (
            session.display(),
            turns[-1].question,
            *trace_outputs(turns[:-1], session.thread_id),
            *panel_outputs(session),
        )

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
            yield SKIP_RUN
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
            yield SKIP_RUN
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
    """The turn ended: its messages join the history (once; a newer turn's are left alone).

    A turn that paused for approval stays the session's view: the decisions resume it in place.
    """
    if session.task is turn:
        if session.view is not None and session.view.paused:
            session.task = None
        else:
            session.history, session.view, session.task = session.display(), None, None


def _role(message: Any) -> str:
    return str(message.get("role") if isinstance(message, dict) else getattr(message, "role", ""))
