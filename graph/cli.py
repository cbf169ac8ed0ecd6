"""The `work-agent` command line: run, repl, batch, report, list-tools, doctor (`python -m graph.cli --help`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from configs.settings import ConfigError, Settings, load_settings

# Heavy modules (langchain, langgraph, the demo server) are imported inside commands, so that
# `--help`, `list-tools` and mistakes in the command line answer fast.

EXIT_USAGE, EXIT_ENDPOINT = 2, 3


class CliError(click.ClickException):
    """An expected failure: one line on stderr, then exit with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        """Print `Error: <one line>` on stderr."""
        click.secho(f"Error: {self.message}", err=True, fg="red")


def stop_note(stopped: str) -> str:
    """Why a turn ended early, for the terminal."""
    if stopped == "length":
        from graph.trace import CUT_NOTE

        return CUT_NOTE
    return f"stopped early: {stopped.replace('_', ' ')}"


def endpoint_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --base-url and --model (they override OPENAI_API_BASE and AGENT_MODEL)."""
    fn = click.option("--model", "-m", help="Served model name (default: AGENT_MODEL, else the server's first).")(fn)
    fn = click.option(
        "--base-url", multiple=True, callback=_join_urls,
        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1; repeat it for failover, tried in order.",
    )(fn)
    return fn


def _join_urls(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str | None:
    """Several --base-url values become one comma-separated OPENAI_API_BASE (None when not given)."""
    return ",".join(v.strip() for v in value if v.strip()) or None


def agent_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options of commands that run the agent: endpoint, --max-steps, --demo, --thread."""
    fn = endpoint_options(fn)
    fn = click.option("--max-steps", type=int, help="Most tool rounds per question (default AGENT_MAX_STEPS).")(fn)
    fn = click.option("--thread", "thread_id", help="Conversation id: continue it, or start it under this id.")(fn)
    fn = click.option(
        "--demo", is_flag=True,
        help="Start a scripted vLLM-compatible demo server in-process (no GPU needed) and use it.",
    )(fn)
    return fn


def settings_from(**overrides: Any) -> Settings:
    """Settings from env/.env with command-line overrides; a bad value exits 2 with one line."""
    try:
        settings = load_settings(**overrides)
    except ConfigError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    from graph.logs import setup_logging

    setup_logging(settings)
    return settings


@contextlib.contextmanager
def endpoint(demo: bool, base_url: str | None, model: str | None, max_steps: int | None) -> Iterator[Settings]:
    """The settings to run with; with `--demo`, a demo server runs for the duration."""
    if max_steps is not None and max_steps < 1:
        raise CliError(f"--max-steps must be at least 1 (got {max_steps}).", EXIT_USAGE)
    if not demo:
        yield settings_from(openai_api_base=base_url, agent_model=model, agent_max_steps=max_steps)
        return
    from graph.demo_server import DemoConfig, DemoServer

    with DemoServer(DemoConfig(token_delay=0.02)) as server:
        served = server.config.served_model_names[0]
        click.secho(f"demo model (scripted, no GPU) at {server.base_url}", err=True, fg="yellow")
        yield settings_from(
            openai_api_base=server.base_url, openai_api_key="EMPTY", agent_model=model or served,
            agent_max_steps=max_steps,
        )


def fail_on(settings: Settings, model: str | None) -> Callable[[BaseException], CliError]:
    """Turn a model-server exception into a CliError with the right exit code."""
    from graph.errors import explain

    def convert(exc: BaseException) -> CliError:
        err = explain(exc, base_url=settings.openai_api_base, model=model)
        return CliError(str(err), err.exit_code)

    return convert


async def pick_model(settings: Settings) -> str:
    """The model to use; says so on stderr when it was taken from the server's list."""
    from graph.model import resolve_model_name

    try:
        name = await resolve_model_name(settings)
    except Exception as exc:  # noqa: BLE001 - mapped to one line below
        raise fail_on(settings, settings.agent_model)(exc) from None
    if not settings.agent_model:
        click.secho(f"Using model {name} (the first the server lists; set AGENT_MODEL to choose).",
                    err=True, dim=True)
    return name


class TurnPrinter:
    """Print a turn as it happens: answer tokens on stdout, tool steps on stderr."""

    def __init__(self, *, stream_answer: bool, verbose: bool = False) -> None:
        self.stream_answer = stream_answer
        self.verbose = verbose
        self.printed = ""

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "token" and self.stream_answer:
            click.echo(event["text"], nl=False)
            self.printed += event["text"]
        elif kind == "tool_start":
            self.break_line()
            args = json.dumps(event["args"], ensure_ascii=False)
            click.secho(f"→ {event['name']} {args}", err=True, fg="cyan")
        elif kind == "step":
            step = event["step"]
            if step.kind == "tool":
                click.secho(f"  {step.summary()}", err=True, fg="red" if step.status == "error" else "green")
            elif self.verbose or step.recovered:
                click.secho(f"  {step.summary()}", err=True, dim=True)

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


async def ask(settings: Settings, graph: Any, question: str, thread_id: str, *, model: str, stream: bool,
              printer: Callable[[dict[str, Any]], None]) -> Any:
    """Run one turn; model-server errors become CliError."""
    from graph.context import Context
    from graph.runner import run_turn

    try:
        return await run_turn(
            graph, question, thread_id=thread_id, context=Context(model=model, stream=stream),
            max_steps=settings.agent_max_steps, on_event=printer,
        )
    except (CliError, asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
        raise fail_on(settings, model)(exc) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="work-agent")
def cli() -> None:
    """Work Agent: a tool-calling assistant on your own vLLM server.

    \b
    Examples:
      work-agent run "What time is it in Tokyo, and what's the weather there?"
      work-agent run "查询北京的天气" --json
      work-agent repl
      work-agent batch questions.jsonl -o answers.jsonl --concurrency 32
      work-agent report answers.jsonl --html report.html
      work-agent doctor
      work-agent run --demo "北京现在几点？"   # no GPU: scripted demo model
    """


@cli.command("list-tools")
@click.option("--json", "as_json", is_flag=True, help="Print the tools as JSON.")
def list_tools(as_json: bool) -> None:
    """List the tools the agent can call, with their parameters."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from tools import TOOLS

    specs = [convert_to_openai_tool(t)["function"] for t in TOOLS]
    if as_json:
        click.echo(json.dumps(specs, ensure_ascii=False, indent=2))
        return
    for spec in specs:
        click.secho(spec["name"], bold=True)
        click.echo(f"  {spec['description'].splitlines()[0]}")
        props = spec.get("parameters", {}).get("properties", {})
        required = set(spec.get("parameters", {}).get("required", []))
        for name, prop in props.items():
            kind = prop.get("type") or "/".join(str(v) for v in prop.get("enum", []))
            flag = "" if name in required else f" (optional, default {prop.get('default')!r})"
            click.echo(f"    {name}: {kind}{flag}  {prop.get('description', '')}")


@cli.command()
@click.argument("question")
@agent_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: answer, thread_id, steps, usage, latency_ms.")
@click.option("--no-stream", is_flag=True, help="Wait for whole replies instead of streaming tokens.")
@click.option("--verbose", "-v", is_flag=True, help="Also show each model call (tokens, time to first token).")
def run(question: str, demo: bool, thread_id: str | None, max_steps: int | None, base_url: str | None,
        model: str | None, as_json: bool, no_stream: bool, verbose: bool) -> None:
    """Ask one QUESTION ("-" reads it from stdin) and print the answer."""
    if question == "-":
        from graph.batch_io import BatchInputError, decode

        try:  # UTF-8 with or without a BOM; anything else is one line saying how to convert it
            question = decode(sys.stdin.buffer.read(), "-")
        except BatchInputError as err:
            raise CliError(str(err), EXIT_USAGE) from None
    if not question.strip():
        raise CliError("The question is empty: pass it as an argument, or '-' to read stdin.", EXIT_USAGE)
    with endpoint(demo, base_url, model, max_steps) as settings:
        from graph.model import closing_models

        asyncio.run(closing_models(_run(settings, question.strip(), thread_id, as_json, not no_stream, verbose)))


async def _run(settings: Settings, question: str, thread_id: str | None, as_json: bool, stream: bool,
               verbose: bool) -> None:
    from graph.checkpoint import open_checkpointer
    from graph.graph import build_graph
    from graph.runner import new_thread_id

    name = await pick_model(settings)
    thread_id = thread_id or new_thread_id()
    printer = TurnPrinter(stream_answer=stream and not as_json, verbose=verbose)
    async with open_checkpointer(settings, error=CliError) as saver:
        graph = build_graph(settings=settings, checkpointer=saver)
        result = await ask(settings, graph, question, thread_id, model=name, stream=stream, printer=printer)
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    printer.finish(result.answer)
    if result.stopped:
        click.secho(f"({stop_note(result.stopped)})", err=True, fg="yellow")
    click.secho(f"thread {thread_id} · {result.latency_ms / 1000:.1f}s · {result.usage['total_tokens']} tokens"
                f" · continue with --thread {thread_id}", err=True, dim=True)


REPL_HELP = "Commands: /new (fresh conversation), /tools, /thread, /help, /exit. Ctrl-C stops an answer."


@cli.command()
@agent_options
@click.option("--no-stream", is_flag=True, help="Wait for whole replies instead of streaming tokens.")
def repl(demo: bool, thread_id: str | None, max_steps: int | None, base_url: str | None, model: str | None,
         no_stream: bool) -> None:
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
        saver = runner.run(stack.enter_async_context(open_checkpointer(settings, error=CliError)))
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
                    click.echo("\n".join(f"{t.name}: {t.description.splitlines()[0]}" for t in TOOLS))
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


def _repl_turn(runner: asyncio.Runner, settings: Settings, graph: Any, line: str, thread_id: str, name: str,
               stream: bool) -> None:
    printer = TurnPrinter(stream_answer=stream)
    try:
        result = runner.run(ask(settings, graph, line, thread_id, model=name, stream=stream, printer=printer))
    except KeyboardInterrupt:
        printer.break_line()
        click.secho("(stopped)", err=True, fg="yellow")
        return
    except CliError as err:
        printer.break_line()
        err.show()
        return
    printer.finish(result.answer)
    if result.stopped:
        click.secho(f"({stop_note(result.stopped)})", err=True, fg="yellow")


@cli.command()
@endpoint_options
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(base_url: str | None, model: str | None, as_json: bool) -> None:
    """Check the model server: reachable, model served, chat, tool calling, streaming, speed."""
    from graph.doctor import print_endpoints, print_report, run_all

    settings = settings_from(openai_api_base=base_url, agent_model=model)
    reports = asyncio.run(run_all(settings))
    if len(reports) == 1:
        print_report(reports[0], as_json=as_json)
    else:
        print_endpoints(reports, as_json=as_json)
    if all(r.ok for r in reports):
        sys.exit(0)
    sys.exit(1 if any(r.ok for r in reports) or not all(r.endpoint_failed for r in reports) else EXIT_ENDPOINT)


EXIT_INTERRUPTED = 130
MAX_LISTED_BAD_ROWS = 10


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--output", "-o", help="JSONL file for the answers (default: INPUT's name + .answers.jsonl).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "text"]),
              help="Input format (default: from the extension; .jsonl, .csv, .txt).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024),
              help="Questions in flight at once (default BATCH_CONCURRENCY, 16).")
@click.option("--resume", is_flag=True, help="Continue OUTPUT: skip the ids that already have a row.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), help="Seconds one question may take.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed row.")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the batch runs.")
@click.option("--metrics-file", type=click.Path(dir_okay=False),
              help="Write the final Prometheus metrics to this file when the batch ends "
                   "(node_exporter's textfile format, for batch jobs that end between scrapes).")
@click.option("--max-steps", type=int, help="Most tool rounds per question (default AGENT_MAX_STEPS).")
@endpoint_options
@click.option("--demo", is_flag=True, help="Start a scripted vLLM-compatible demo server in-process and use it.")
@click.pass_context
def batch(ctx: click.Context, input_path: str, output: str | None, fmt: str | None, concurrency: int | None,
          resume: bool, timeout: float | None, fail_fast: bool, metrics_port: int | None,
          metrics_file: str | None, max_steps: int | None,
          base_url: str | None, model: str | None, demo: bool) -> None:
    """Answer every question in INPUT (JSONL, CSV or text; "-" reads stdin), one JSONL row each.

    \b
    Rows are written (and synced) as they finish, so a run stopped at any moment loses nothing:
    run again with --resume to skip the ids that already have a row. Exit status: 0 every row ok,
    1 some rows failed, 2 usage error, 3 the model server is unreachable or refuses the requests,
    130 interrupted (Ctrl-C).
    """
    from graph.batch_io import BatchInputError, load_questions
    from graph.batch_output import check_output, default_output

    out = Path(output) if output else default_output(input_path)
    try:
        questions, blank = load_questions(input_path, fmt)
        check_output(out, input_path, resume=resume)
        done = _resumable_rows(out) if resume and out.exists() else set()
    except BatchInputError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    _say_bad_rows(questions, blank, done)
    todo = [q for q in questions if q.key not in done]
    resume_hint = f"Resume with: {_resume_command(ctx, out)}"
    if todo:
        with endpoint(demo, base_url, model, max_steps) as settings, _metrics_server(metrics_port, metrics_file):
            try:
                from graph.model import closing_models

                asyncio.run(closing_models(_batch(settings, todo, out, concurrency or settings.batch_concurrency,
                                                  timeout, fail_fast, resume_hint)))
            except KeyboardInterrupt:
                have = len(_rows_for(out, {q.key for q in questions}))
                click.secho(f"\nInterrupted: {have} of {_count(len(questions), 'question')} have a row in {out}. "
                            f"{resume_hint}", err=True, fg="yellow")
                sys.exit(EXIT_INTERRUPTED)
    else:
        click.secho(f"Nothing to do: every question already has a row in {out}.", err=True, dim=True)
    sys.exit(_print_batch_summary(out, {q.key for q in questions}))


@contextlib.contextmanager
def _metrics_server(port: int | None, path: str | None) -> Iterator[None]:
    """Serve /metrics on 127.0.0.1:`port` for the duration, and write the final values to `path`."""
    from graph.metrics import start_metrics_server, write_metrics_file

    server = None
    if port is not None:
        try:
            server = start_metrics_server(port)
        except OSError as err:
            raise CliError(f"--metrics-port {port}: cannot listen ({err.strerror}); pick a free port.",
                           EXIT_USAGE) from None
        click.secho(f"Prometheus metrics on http://127.0.0.1:{server.port}/metrics", err=True, dim=True)
    try:
        yield
    finally:
        if server is not None:
            server.stop()
        if path:
            try:
                write_metrics_file(path)
            except OSError as err:
                click.secho(f"Could not write --metrics-file {path}: {err.strerror}.", err=True, fg="yellow")


def _resumable_rows(out: Path) -> set[str]:
    """The ids that already have a row in `out`, after cutting a torn last line."""
    from graph.batch_output import read_rows, repair

    rows, torn = read_rows(out)
    if torn:
        repair(out, torn)
        click.secho(f"Repaired {out}: removed a partly written last line ({torn} bytes) left by an "
                    "interrupted run.", err=True, fg="yellow")
    click.secho(f"Resuming {out}: {len(rows)} rows already there.", err=True, dim=True)
    return {str(row["id"]) for row in rows}


def _say_bad_rows(questions: list[Any], blank: int, done: set[str]) -> None:
    """List the input rows that cannot run (they become failed rows) on stderr."""
    bad = [q for q in questions if q.problem and q.key not in done]
    for q in bad[:MAX_LISTED_BAD_ROWS]:
        click.secho(f"{q.problem} (recorded as a failed row)", err=True, fg="yellow")
    if len(bad) > MAX_LISTED_BAD_ROWS:
        click.secho(f"... and {len(bad) - MAX_LISTED_BAD_ROWS} more bad rows", err=True, fg="yellow")
    if blank:
        click.secho(f"Skipped {_count(blank, 'blank line')}.", err=True, dim=True)


def _resume_command(ctx: click.Context, out: Path) -> str:
    """The command that continues this run (same input, options and output, plus --resume)."""
    p = ctx.params
    prog = "work-agent" if Path(sys.argv[0]).name == "work-agent" else "python -m graph.cli"
    args = ["batch", p["input_path"], "-o", str(out), "--resume"]
    for flag, key in (("--format", "fmt"), ("--concurrency", "concurrency"), ("--timeout", "timeout"),
                      ("--max-steps", "max_steps"), ("--model", "model")):
        if p.get(key) is not None:
            args += [flag, str(p[key])]
    for url in (p.get("base_url") or "").split(","):
        args += ["--base-url", url] if url else []
    args += [flag for flag, key in (("--fail-fast", "fail_fast"), ("--demo", "demo")) if p.get(key)]
    stdin = " (with the same input on stdin)" if p["input_path"] == "-" else ""
    return f"{prog} {shlex.join(args)}{stdin}"


async def _batch(settings: Settings, todo: list[Any], out: Path, concurrency: int, timeout: float | None,
                 fail_fast: bool, resume_hint: str) -> None:
    from graph.batch import BatchConfig, BatchStop, Progress, run_batch
    from graph.batch_io import BatchInputError
    from graph.batch_output import RowWriter

    name = await pick_model(settings)
    cfg = BatchConfig(settings=settings, model=name, concurrency=concurrency, max_steps=settings.agent_max_steps,
                      timeout=timeout, fail_fast=fail_fast)
    click.secho(f"{_count(len(todo), 'question')} · {name} · concurrency {concurrency} · writing {out}",
                err=True, dim=True)
    created = not out.exists()
    try:
        writer = RowWriter(out)
    except BatchInputError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    progress, started = Progress(len(todo)), time.perf_counter()
    try:
        with writer:
            await run_batch(cfg, todo, writer, progress)
    except BatchStop as stop:
        if created and writer.count == 0:
            out.unlink(missing_ok=True)  # nothing ran: the same command can simply be run again
        raise CliError(f"{stop} {resume_hint}", stop.exit_code) from None
    except BatchInputError as err:  # a row could not be written (disk full): the rows before it are kept
        raise CliError(f"{err} {resume_hint}", EXIT_USAGE) from None
    finally:
        progress.close()
    took = time.perf_counter() - started
    click.secho(f"{_count(len(todo), 'question')} in {took:.1f}s ({len(todo) / took:.2f}/s) · rows in {out}",
                err=True, dim=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _rows_for(out: Path, keys: set[str]) -> list[dict[str, Any]]:
    """The rows of OUTPUT whose ids are in `keys` (this input's questions)."""
    from graph.batch_output import read_rows

    rows, _ = read_rows(out) if out.exists() else ([], 0)
    return [row for row in rows if str(row["id"]) in keys]


def _print_batch_summary(out: Path, keys: set[str]) -> int:
    """Print the summary of OUTPUT's rows for this input; the exit status (0 all ok, 1 some failed)."""
    from graph.report import print_summary, summarize

    summary = summarize(_rows_for(out, keys))
    print_summary(summary)
    return 0 if summary.failed == 0 else 1


@cli.command()
@click.argument("output", metavar="OUTPUT.jsonl", type=click.Path(dir_okay=False, exists=True))
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML report (latency histogram, per-tool table).")
def report(output: str, html_path: str | None) -> None:
    """Summarise a batch output file: ok/failed, latency, tokens, tool calls, errors."""
    from graph.batch_io import BatchInputError
    from graph.batch_output import read_rows
    from graph.report import print_summary, summarize

    try:
        rows, torn = read_rows(Path(output))
    except BatchInputError as err:
        raise CliError(str(err), EXIT_USAGE) from None
    if torn:
        click.secho(f"Ignoring a partly written last line ({torn} bytes); `batch --resume` repairs it.",
                    err=True, fg="yellow")
    if not rows:
        raise CliError(f"{output} has no rows.", EXIT_USAGE)
    summary = summarize(rows)
    print_summary(summary, title=f"Batch summary: {output}")
    if html_path:
        from graph.report_html import write_html

        try:
            write_html(summary, Path(html_path), title=f"Batch report: {Path(output).name}")
        except OSError as err:
            raise CliError(f"cannot write {html_path}: {err.strerror or err}.", EXIT_USAGE) from None
        click.secho(f"Wrote {html_path}", err=True, dim=True)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="work-agent")


if __name__ == "__main__":
    main()
