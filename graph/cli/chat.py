"""`run` (one question) and `repl` (a conversation), and the printer that shows a turn as it happens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from configs.settings import Settings
from graph.cli.common import (
    ToolWarnings,
    agent_options,
    close_tools,
    endpoint,
    fail_on,
    open_toolbox,
    pick_model,
    tool_options,
)
from graph.errors import EXIT_INTERRUPTED, EXIT_USAGE, AgentError


class TurnPrinter:
    """Print a turn's events as they happen: answer tokens on stdout, tool steps on stderr."""

    def __init__(self, *, stream_answer: bool, verbose: bool = False) -> None:
        self.stream_answer = stream_answer
        self.verbose = verbose
        self.printed = ""
        self.thinking = False
        """A thinking model's reasoning is being printed (dimmed, on stderr, with -v)."""

    def show(self, event: Any) -> None:
        """Print one `graph.events` event (the rest are shown by `finish`; a pause by the approval prompt)."""
        from graph.cli.approval import DECISION_COLOURS
        from graph.events import ApprovalRequested, StepRecorded, Thinking, Token, ToolStarted

        if self.thinking and not isinstance(event, Thinking):
            click.echo(err=True)  # the end of the dimmed thinking on stderr
            self.thinking = False
        match event:
            case Thinking(text=text) if self.verbose:
                if not self.thinking:
                    self.break_line()
                    click.secho("thinking: ", err=True, dim=True, nl=False)
                click.secho(text, err=True, dim=True, nl=False)
                self.thinking = True
            case Token(text=text) if self.stream_answer:
                click.echo(text, nl=False)
                self.printed += text
            case ToolStarted(name=name, args=args):
                self.break_line()
                click.secho(f"→ {name} {json.dumps(args, ensure_ascii=False)}", err=True, fg="cyan")
            case StepRecorded(step=step) if step.kind == "tool":
                colour = DECISION_COLOURS.get(step.decision or "") or ("red" if step.status == "error" else "green")
                click.secho(f"  {step.summary()}", err=True, fg=colour)
            case StepRecorded(step=step) if self.verbose or step.recovered:
                click.secho(f"  {step.summary()}", err=True, dim=True)
            case ApprovalRequested():
                self.break_line()
            case _:
                pass

    def break_line(self) -> None:
        """End a partly printed line before stderr output."""
        if self.printed and not self.printed.endswith("\n"):
            click.echo()
            self.printed += "\n"

    def finish(self, answer: str) -> None:
        """Print the final answer if streaming did not already show it."""
        if not self.printed.strip() or answer.strip() not in self.printed:
            self.break_line()
            click.echo(answer)
        elif not self.printed.endswith("\n"):
            click.echo()


def say_stopped(result: Any, max_steps: int) -> None:
    """Say on stderr why the turn ended early, if it did (the wording every interface uses)."""
    from graph.trace import stop_note

    if result.stopped:
        click.secho(f"({stop_note(result.stopped, result.steps, max_steps)})", err=True, fg="yellow")


async def ask(
    settings: Settings,
    graph: Any,
    question: str | None,
    thread_id: str,
    *,
    context: Any,
    printer: TurnPrinter,
    resume: Any = None,
) -> Any:
    """Run one turn (or its part after a pause: `resume`), printing its events; model errors become one line."""
    from graph.events import TurnEnded
    from graph.runner import stream_turn

    turn = stream_turn(graph, question, thread_id=thread_id, context=context, resume=resume)
    try:
        async with contextlib.aclosing(turn) as events:
            async for event in events:
                printer.show(event)
                if isinstance(event, TurnEnded):
                    return event.result
    except (AgentError, asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
        raise fail_on(settings, context.model)(exc) from None
    raise RuntimeError("the turn ended without a result")  # unreachable: the stream ends with TurnEnded


Decide = Callable[[Any], dict[str, dict[str, Any]]]


class Session:
    """A conversation's resources on one event loop: the model, the checkpointer, the graph and its tools.

    The loop is an `asyncio.Runner`, so the approval prompt reads the terminal between turns (a plain
    Ctrl-C there) and Ctrl-C during a turn cancels only the turn. Closing stops every MCP server started.
    """

    def __init__(self, settings: Settings, mcp_config: Path | None, tools_modules: Sequence[str]) -> None:
        self.settings = settings
        self.toolbox = open_toolbox(settings, mcp_config, tools_modules)  # a bad config exits before anything
        self.warnings = ToolWarnings()
        self.runner = asyncio.Runner()
        self.stack = contextlib.AsyncExitStack()
        self.left: str | None = None
        """Why the last turn's calls were left waiting: "eof" or "interrupt" at the prompt (None: they were not)."""

    def __enter__(self) -> Session:
        from graph.checkpoint import open_checkpointer
        from graph.graph import build_graph

        self.warnings.show(self.toolbox)  # the tools modules' problems are known at once
        try:
            self.model = self.runner.run(pick_model(self.settings))
            saver = self.runner.run(self.stack.enter_async_context(open_checkpointer(self.settings)))
            self.graph = build_graph(settings=self.settings, toolbox=self.toolbox, checkpointer=saver)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the checkpointer, stop the MCP servers, close the model clients and the loop."""
        from graph.model import aclose_models

        try:
            self.runner.run(self.stack.aclose())
        finally:
            try:
                self.runner.run(close_tools())
                self.runner.run(aclose_models())
            finally:
                self.runner.close()

    def context(self, *, stream: bool, approve: str) -> Any:
        """The knobs of this session's turns (`approve`: ask, auto or deny, as --approve says)."""
        from graph.context import Context

        mode: Any = approve
        return Context(model=self.model, stream=stream, max_steps=self.settings.agent_max_steps, approve=mode)

    def tools(self) -> None:
        """Start the MCP servers if they have not started, and say which are unavailable."""
        self.runner.run(self.toolbox.tools())
        self.warnings.show(self.toolbox)

    def waiting(self, thread_id: str) -> Any:
        """The calls the thread's turn waits for (from the checkpoint), or None."""
        from graph.runner import pending_approval

        return self.runner.run(pending_approval(self.graph, thread_id))

    def turn(
        self,
        question: str | None,
        thread_id: str,
        *,
        context: Any,
        printer: TurnPrinter,
        decide: Decide | None = None,
        waiting: Any = None,
    ) -> Any:
        """Ask `question` (or decide on the calls `waiting`), asking `decide` at each pause, until the turn ends.

        Returns the whole turn's result (its steps and latency summed over the pauses); `result.pending` is
        set when the calls were left waiting (no `decide`, or EOF / Ctrl-C at the prompt: see `left`).
        """
        from graph.events import TurnResult

        self.left = None
        steps: list[Any] = []
        latency = 0.0
        if waiting is None:
            result = self.runner.run(
                ask(self.settings, self.graph, question, thread_id, context=context, printer=printer)
            )
            self.warnings.show(self.toolbox)  # the MCP servers started with the turn's first model call
        else:
            # Resuming in a new process: the MCP tools (and so their policies) are known once the servers run.
            self.tools()
            result = TurnResult(answer="", thread_id=thread_id, pending=waiting)
        while result.pending is not None and decide is not None:
            try:
                decisions = decide(result.pending)
            except EOFError:
                self.left = "eof"
                break
            except KeyboardInterrupt:
                self.left = "interrupt"
                break
            steps, latency = steps + result.steps, latency + result.latency_ms
            result = self.runner.run(
                ask(
                    self.settings,
                    self.graph,
                    None,
                    thread_id,
                    context=context,
                    printer=printer,
                    resume={"decisions": decisions},
                )
            )
            self.warnings.show(self.toolbox)
        result.steps = steps + result.steps
        result.latency_ms += latency
        return result


@click.command()
@click.argument("question")
@agent_options
@tool_options
@click.option(
    "--approve",
    type=click.Choice(["ask", "auto", "deny"]),
    help="Tool calls whose policy is ask: ask on the terminal (the default in one), run them (auto), or "
    "refuse them (deny, the default without a terminal; it says which were refused).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: answer, thread_id, steps, usage, latency_ms, stopped, pending (the calls "
    "left waiting for approval; empty when none).",
)
@click.option("--no-stream", is_flag=True, help="Wait for whole replies instead of streaming tokens.")
@click.option("--verbose", "-v", is_flag=True, help="Also show each model call (tokens, time to first token).")
def run(
    question: str,
    demo: bool,
    thread_id: str | None,
    max_steps: int | None,
    base_url: str | None,
    model: str | None,
    mcp_config: Path | None,
    tools_modules: tuple[str, ...],
    approve: str | None,
    as_json: bool,
    no_stream: bool,
    verbose: bool,
) -> None:
    """Ask one QUESTION ("-" reads it from stdin) and print the answer.

    \b
    A tool whose policy is ask (MCP tools that write, your own tools; see list-tools) waits for a yes:
      Run write_note? [y]es / [n]o / [e]dit / [a]lways (this conversation)
    Without a terminal such calls are refused unless --approve auto.
    """
    from graph.cli.approval import approve_mode

    if question == "-":
        from graph.batch.inputs import BatchInputError, decode

        try:  # UTF-8 with or without a BOM; anything else is one line saying how to convert it
            question = decode(sys.stdin.buffer.read(), "-")
        except BatchInputError as err:
            raise AgentError(str(err), EXIT_USAGE) from None
    if not question.strip():
        raise AgentError("The question is empty: pass it as an argument, or '-' to read stdin.", EXIT_USAGE)
    mode, defaulted = approve_mode(approve)
    with endpoint(demo, base_url, model, max_steps) as settings:
        code = _run(
            settings,
            question.strip(),
            thread_id,
            as_json=as_json,
            stream=not no_stream,
            verbose=verbose,
            approve=mode,
            defaulted=defaulted,
            mcp_config=mcp_config,
            tools_modules=tools_modules,
        )
    sys.exit(code)


def _run(
    settings: Settings,
    question: str,
    thread_id: str | None,
    *,
    as_json: bool,
    stream: bool,
    verbose: bool,
    approve: str,
    defaulted: bool,
    mcp_config: Path | None,
    tools_modules: Sequence[str],
) -> int:
    from graph.cli.approval import denied_for_approval, prompter, say_denied, say_waiting
    from graph.runner import new_thread_id

    thread_id = thread_id or new_thread_id()
    printer = TurnPrinter(stream_answer=stream and not as_json, verbose=verbose)
    with Session(settings, mcp_config, tools_modules) as session:
        decide = prompter(session.toolbox.info) if approve == "ask" else None
        context = session.context(stream=stream, approve=approve)
        result = session.turn(question, thread_id, context=context, printer=printer, decide=decide)
        denied = denied_for_approval(result.steps, session.toolbox.policy)
        config = session.toolbox.config.path or settings.agent_mcp_config
    say_denied(denied, defaulted=defaulted, config=config)
    if result.pending is not None:
        printer.break_line()
        say_waiting(result.pending, thread_id, repl=False)
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False))
    elif result.pending is None:
        printer.finish(result.answer)
        say_stopped(result, settings.agent_max_steps)
    if not as_json:
        click.secho(
            f"thread {thread_id} · {result.latency_ms / 1000:.1f}s · {result.usage['total_tokens']} tokens"
            f" · continue with --thread {thread_id}",
            err=True,
            dim=True,
        )
    return EXIT_INTERRUPTED if session.left == "interrupt" else 0


REPL_HELP = (
    "Commands: /new (fresh conversation), /tools, /approve (decide on waiting tool calls), /thread, /help, "
    "/exit. Ctrl-C stops an answer."
)


@click.command()
@agent_options
@tool_options
@click.option(
    "--approve",
    type=click.Choice(["ask", "auto", "deny"]),
    default="ask",
    show_default=True,
    help="Tool calls whose policy is ask: ask y/n/e/a before each, run them (auto), or refuse them (deny).",
)
@click.option("--no-stream", is_flag=True, help="Wait for whole replies instead of streaming tokens.")
def repl(
    demo: bool,
    thread_id: str | None,
    max_steps: int | None,
    base_url: str | None,
    model: str | None,
    mcp_config: Path | None,
    tools_modules: tuple[str, ...],
    approve: str,
    no_stream: bool,
) -> None:
    """Chat in a loop, with history, on one conversation thread.

    \b
    Before a tool whose policy is ask runs (see list-tools), it asks:
      Run write_note? [y]es / [n]o / [e]dit / [a]lways (this conversation)
    n asks for an optional reason (the model reads it); e edits the arguments as JSON ($EDITOR if set);
    a stops asking about that tool in this conversation. Calls left undecided (Ctrl-C at that prompt)
    wait in the thread: /approve, or `repl --thread ID` later, asks again.
    """
    with endpoint(demo, base_url, model, max_steps) as settings:
        _repl(settings, thread_id, not no_stream, approve, mcp_config, tools_modules)


def _repl(
    settings: Settings,
    thread_id: str | None,
    stream: bool,
    approve: str,
    mcp_config: Path | None,
    tools_modules: Sequence[str],
) -> None:
    from graph.cli.approval import prompter
    from graph.runner import new_thread_id

    history = enable_line_editing(settings.agent_checkpoint_db.parent / "repl_history")
    thread_id = thread_id or new_thread_id()
    try:
        with Session(settings, mcp_config, tools_modules) as session:
            decide = prompter(session.toolbox.info) if approve == "ask" else None
            chat = _Chat(session, stream, approve, decide)
            click.secho(f"Work Agent · {session.model} · thread {thread_id}\n{REPL_HELP}", err=True, dim=True)
            if (waiting := session.waiting(thread_id)) is not None:
                click.secho("This conversation has tool calls waiting for approval:", err=True, fg="yellow")
                if not chat.turn(None, thread_id, waiting):
                    return
            while True:
                try:
                    line = input("you> ").strip()
                except KeyboardInterrupt:
                    click.echo()
                    continue
                except EOFError:
                    click.echo()
                    break
                if not line:
                    continue
                if line in ("/exit", "/quit"):
                    break
                if line == "/new":
                    thread_id = new_thread_id()
                    click.secho(f"New conversation: thread {thread_id}", err=True, dim=True)
                elif line == "/tools":
                    from graph.cli.info import show_listing

                    session.tools()
                    show_listing(session.toolbox.listing(), session.toolbox.statuses())
                elif line == "/approve":
                    if (waiting := session.waiting(thread_id)) is None:
                        click.secho("Nothing is waiting for approval.", err=True, dim=True)
                    elif not chat.turn(None, thread_id, waiting):
                        break
                elif line == "/thread":
                    click.echo(thread_id)
                elif line.startswith("/"):
                    click.echo(REPL_HELP)
                elif not chat.turn(line, thread_id):
                    break
    finally:
        history()


def enable_line_editing(path: Any) -> Callable[[], None]:
    """Line editing and a persistent history for input(); returns the function that saves it."""
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline
        return lambda: None
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)

    def save() -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)

    return save


class _Chat:
    """One repl turn at a time: print it, ask about its pauses, report how it ended."""

    def __init__(self, session: Session, stream: bool, approve: str, decide: Decide | None) -> None:
        self.session, self.stream, self.approve, self.decide = session, stream, approve, decide

    def turn(self, question: str | None, thread_id: str, waiting: Any = None) -> bool:
        """Run a turn (or decide on `waiting`); False when the repl should end (EOF at the approval prompt)."""
        from graph.cli.approval import say_waiting

        session = self.session
        printer = TurnPrinter(stream_answer=self.stream)
        context = session.context(stream=self.stream, approve=self.approve)
        try:
            result = session.turn(
                question, thread_id, context=context, printer=printer, decide=self.decide, waiting=waiting
            )
        except KeyboardInterrupt:
            from graph.trace import STOP_NOTES

            printer.break_line()
            click.secho(f"({STOP_NOTES['user']})", err=True, fg="yellow")
            return True
        except AgentError as err:
            printer.break_line()
            err.show()
            return True
        if result.pending is not None:
            if session.left:
                click.echo(err=True)
            say_waiting(result.pending, thread_id, repl=True)
            return session.left != "eof"
        printer.finish(result.answer)
        say_stopped(result, session.settings.agent_max_steps)
        return True
