"""`run` (one question) and `repl` (a conversation), and the printer that shows a turn as it happens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from configs.settings import Settings
from graph.cli.common import agent_options, endpoint, fail_on, pick_model
from graph.errors import EXIT_USAGE, AgentError


class TurnPrinter:
    """Print a turn's events as they happen: answer tokens on stdout, tool steps on stderr."""

    def __init__(self, *, stream_answer: bool, verbose: bool = False) -> None:
        self.stream_answer = stream_answer
        self.verbose = verbose
        self.printed = ""

    def show(self, event: Any) -> None:
        """Print one `graph.events` event (the rest are shown by `finish`)."""
        from graph.events import StepRecorded, Token, ToolStarted

        match event:
            case Token(text=text) if self.stream_answer:
                click.echo(text, nl=False)
                self.printed += text
            case ToolStarted(name=name, args=args):
                self.break_line()
                click.secho(f"→ {name} {json.dumps(args, ensure_ascii=False)}", err=True, fg="cyan")
            case StepRecorded(step=step) if step.kind == "tool":
                click.secho(f"  {step.summary()}", err=True, fg="red" if step.status == "error" else "green")
            case StepRecorded(step=step) if self.verbose or step.recovered:
                click.secho(f"  {step.summary()}", err=True, dim=True)
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
    settings: Settings, graph: Any, question: str, thread_id: str, *, model: str, stream: bool, printer: TurnPrinter
) -> Any:
    """Run one turn, printing its events; model-server errors become one-line errors."""
    from graph.context import Context
    from graph.events import TurnEnded
    from graph.runner import stream_turn

    context = Context(model=model, stream=stream, max_steps=settings.agent_max_steps)
    try:
        async with contextlib.aclosing(stream_turn(graph, question, thread_id=thread_id, context=context)) as events:
            async for event in events:
                printer.show(event)
                if isinstance(event, TurnEnded):
                    return event.result
    except (AgentError, asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
        raise fail_on(settings, model)(exc) from None
    raise RuntimeError("the turn ended without a result")  # unreachable: the stream ends with TurnEnded


@click.command()
@click.argument("question")
@agent_options
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: answer, thread_id, steps, usage, latency_ms."
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
    as_json: bool,
    no_stream: bool,
    verbose: bool,
) -> None:
    """Ask one QUESTION ("-" reads it from stdin) and print the answer."""
    if question == "-":
        from graph.batch.inputs import BatchInputError, decode

        try:  # UTF-8 with or without a BOM; anything else is one line saying how to convert it
            question = decode(sys.stdin.buffer.read(), "-")
        except BatchInputError as err:
            raise AgentError(str(err), EXIT_USAGE) from None
    if not question.strip():
        raise AgentError("The question is empty: pass it as an argument, or '-' to read stdin.", EXIT_USAGE)
    with endpoint(demo, base_url, model, max_steps) as settings:
        from graph.model import closing_models

        asyncio.run(closing_models(_run(settings, question.strip(), thread_id, as_json, not no_stream, verbose)))


async def _run(
    settings: Settings, question: str, thread_id: str | None, as_json: bool, stream: bool, verbose: bool
) -> None:
    from graph.checkpoint import open_checkpointer
    from graph.graph import build_graph
    from graph.runner import new_thread_id

    name = await pick_model(settings)
    thread_id = thread_id or new_thread_id()
    printer = TurnPrinter(stream_answer=stream and not as_json, verbose=verbose)
    async with open_checkpointer(settings) as saver:
        graph = build_graph(settings=settings, checkpointer=saver)
        result = await ask(settings, graph, question, thread_id, model=name, stream=stream, printer=printer)
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    printer.finish(result.answer)
    say_stopped(result, settings.agent_max_steps)
    click.secho(
        f"thread {thread_id} · {result.latency_ms / 1000:.1f}s · {result.usage['total_tokens']} tokens"
        f" · continue with --thread {thread_id}",
        err=True,
        dim=True,
    )


REPL_HELP = "Commands: /new (fresh conversation), /tools, /thread, /help, /exit. Ctrl-C stops an answer."


@click.command()
@agent_options
@click.option("--no-stream", is_flag=True, help="Wait for whole replies instead of streaming tokens.")
def repl(
    demo: bool, thread_id: str | None, max_steps: int | None, base_url: str | None, model: str | None, no_stream: bool
) -> None:
    """Chat in a loop, with history, on one conversation thread."""
    with endpoint(demo, base_url, model, max_steps) as settings:
        _repl(settings, thread_id, not no_stream)


def _repl(settings: Settings, thread_id: str | None, stream: bool) -> None:
    from contextlib import AsyncExitStack

    from graph.checkpoint import open_checkpointer
    from graph.graph import build_graph
    from graph.runner import new_thread_id
    from tools import TOOLS

    history = enable_line_editing(settings.agent_checkpoint_db.parent / "repl_history")
    thread_id = thread_id or new_thread_id()
    stack = AsyncExitStack()
    # One event loop for the whole session: Ctrl-C cancels only the running turn (asyncio.Runner).
    with asyncio.Runner() as runner:
        name = runner.run(pick_model(settings))
        saver = runner.run(stack.enter_async_context(open_checkpointer(settings)))
        graph = build_graph(settings=settings, checkpointer=saver)
        click.secho(f"Work Agent · {name} · thread {thread_id}\n{REPL_HELP}", err=True, dim=True)
        try:
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
                    from graph.cli.info import show_tools

                    show_tools(TOOLS)
                elif line == "/thread":
                    click.echo(thread_id)
                elif line.startswith("/"):
                    click.echo(REPL_HELP)
                else:
                    _repl_turn(runner, settings, graph, line, thread_id, name, stream)
        finally:
            runner.run(stack.aclose())
            from graph.model import aclose_models

            runner.run(aclose_models())
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


def _repl_turn(
    runner: asyncio.Runner, settings: Settings, graph: Any, line: str, thread_id: str, name: str, stream: bool
) -> None:
    printer = TurnPrinter(stream_answer=stream)
    try:
        result = runner.run(ask(settings, graph, line, thread_id, model=name, stream=stream, printer=printer))
    except KeyboardInterrupt:
        from graph.trace import STOP_NOTES

        printer.break_line()
        click.secho(f"({STOP_NOTES['user']})", err=True, fg="yellow")
        return
    except AgentError as err:
        printer.break_line()
        err.show()
        return
    printer.finish(result.answer)
    say_stopped(result, settings.agent_max_steps)
