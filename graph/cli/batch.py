"""`batch` (a whole file of questions) and `report` (the summary of a batch output)."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from configs.settings import Settings
from graph.cli.common import (
    ToolWarnings,
    _count,
    close_tools,
    endpoint,
    endpoint_options,
    open_toolbox,
    pick_model,
    thinking_option,
    tool_options,
)
from graph.errors import EXIT_INTERRUPTED, EXIT_USAGE, AgentError

if TYPE_CHECKING:
    from tools.toolbox import Toolbox

MAX_LISTED_BAD_ROWS = 10
DENIED_ROWS = (
    "work-agent: {calls} needed a person's approval and were refused ({names}; see each row's denied_calls). "
    "To run them, pass --allow {first} (a name or pattern, repeatable) or --approve auto."
)
HTML_NOT_OVER = "--html {path}: that file exists and is not an .html page; pass another path for the report."


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--output",
    "-o",
    help="JSONL file for the answers (default: INPUT's whole file name + .answers.jsonl, next to it: "
    "q.csv -> q.csv.answers.jsonl; stdin -> stdin.answers.jsonl).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "text"]),
    help="Input format (default: from the extension; .jsonl, .csv, .txt).",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 1024),
    help="Questions in flight at once (default BATCH_CONCURRENCY, 16).",
)
@click.option("--resume", is_flag=True, help="Continue OUTPUT: skip the ids that already have a row.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), help="Seconds one question may take.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed row.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the batch runs.",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    help="Write the final Prometheus metrics to this file when the batch ends "
    "(node_exporter's textfile format, for batch jobs that end between scrapes).",
)
@click.option("--max-steps", type=int, help="Most tool rounds per question (default AGENT_MAX_STEPS).")
@click.option(
    "--approve",
    type=click.Choice(["deny", "auto"]),
    default="deny",
    show_default=True,
    help="Tool calls whose policy is ask: a batch never waits for a person, so they are refused (deny, listed "
    "in each row's denied_calls) or run (auto).",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="PATTERN",
    help="Run the tools matching this name or shell-style pattern without asking, e.g. --allow write_note "
    "--allow 'git_*' (repeatable).",
)
@endpoint_options
@thinking_option
@tool_options
@click.option("--demo", is_flag=True, help="Start a scripted vLLM-compatible demo server in-process and use it.")
@click.pass_context
def batch(
    ctx: click.Context,
    input_path: str,
    output: str | None,
    fmt: str | None,
    concurrency: int | None,
    resume: bool,
    timeout: float | None,
    fail_fast: bool,
    metrics_port: int | None,
    metrics_file: str | None,
    max_steps: int | None,
    approve: str,
    allow: tuple[str, ...],
    base_url: str | None,
    model: str | None,
    mcp_config: Path | None,
    tools_modules: tuple[str, ...],
    demo: bool,
) -> None:
    """Answer every question in INPUT (JSONL, CSV or text; "-" reads stdin), one JSONL row each.

    \b
    Rows are written (and synced) as they finish, so a run stopped at any moment loses nothing:
    run again with --resume to skip the ids that already have a row. Exit status: 0 every row ok,
    1 some rows failed, 2 usage error, 3 the model server is unreachable or refuses the requests,
    130 interrupted (Ctrl-C).

    \b
    Nobody approves tool calls in a batch: a tool whose policy is ask (see list-tools) is refused,
    and named in the row's denied_calls, unless --allow PATTERN or --approve auto lets it run.
    """
    from graph.batch.inputs import BatchInputError, load_questions
    from graph.batch.outputs import check_old_default, check_output, default_output

    out = Path(output) if output else default_output(input_path)
    try:
        questions, blank = load_questions(input_path, fmt)
        if resume and not output:
            check_old_default(input_path)
        check_output(out, input_path, resume=resume)
        done = _resumable_rows(out) if resume and out.exists() else set()
    except BatchInputError as err:
        raise AgentError(str(err), EXIT_USAGE) from None
    _say_bad_rows(questions, blank, done)
    todo = [q for q in questions if q.key not in done]
    resume_hint = f"Resume with: {_resume_command(ctx, out)}"
    if todo:
        with endpoint(demo, base_url, model, max_steps) as settings, _metrics_server(metrics_port, metrics_file):
            toolbox = open_toolbox(settings, mcp_config, tools_modules)  # a bad config exits before any row
            try:
                from graph.model import closing_models

                asyncio.run(
                    closing_models(
                        _batch(
                            settings,
                            todo,
                            out,
                            concurrency or settings.batch_concurrency,
                            timeout,
                            fail_fast,
                            resume_hint,
                            tools=(toolbox, approve, allow),
                        )
                    )
                )
            except KeyboardInterrupt:
                have = len(_rows_for(out, {q.key for q in questions}))
                click.secho(
                    f"\nInterrupted: {have} of {_count(len(questions), 'question')} have a row in {out}. {resume_hint}",
                    err=True,
                    fg="yellow",
                )
                sys.exit(EXIT_INTERRUPTED)
    else:
        click.secho(f"Nothing to do: every question already has a row in {out}.", err=True, dim=True)
    sys.exit(_print_batch_summary(out, {q.key for q in questions}))


@contextlib.contextmanager
def _metrics_server(port: int | None, path: str | None) -> Iterator[None]:
    """Serve /metrics on 127.0.0.1:`port` for the duration, and write the final values to `path`."""
    from graph.obs.metrics import start_metrics_server, write_metrics_file

    server = None
    if port is not None:
        try:
            server = start_metrics_server(port)
        except OSError as err:
            raise AgentError(
                f"--metrics-port {port}: cannot listen ({err.strerror}); pick a free port.", EXIT_USAGE
            ) from None
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
    from graph.batch.outputs import read_rows, repair

    rows, torn = read_rows(out)
    if torn:
        repair(out, torn)
        click.secho(
            f"Repaired {out}: removed a partly written last line ({torn} bytes) left by an interrupted run.",
            err=True,
            fg="yellow",
        )
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
    for flag, key in (
        ("--format", "fmt"),
        ("--concurrency", "concurrency"),
        ("--timeout", "timeout"),
        ("--max-steps", "max_steps"),
        ("--model", "model"),
        ("--mcp-config", "mcp_config"),
    ):
        if p.get(key) is not None:
            args += [flag, str(p[key])]
    if p.get("approve") == "auto":
        args += ["--approve", "auto"]
    for flag, key in (("--allow", "allow"), ("--tools-module", "tools_modules")):
        for value in p.get(key) or ():
            args += [flag, value]
    for url in (p.get("base_url") or "").split(","):
        args += ["--base-url", url] if url else []
    args += [flag for flag, key in (("--fail-fast", "fail_fast"), ("--demo", "demo")) if p.get(key)]
    stdin = " (with the same input on stdin)" if p["input_path"] == "-" else ""
    return f"{prog} {shlex.join(args)}{stdin}"


async def _batch(
    settings: Settings,
    todo: list[Any],
    out: Path,
    concurrency: int,
    timeout: float | None,
    fail_fast: bool,
    resume_hint: str,
    *,
    tools: tuple[Toolbox, str, tuple[str, ...]],
) -> None:
    try:
        await _batch_rows(settings, todo, out, concurrency, timeout, fail_fast, resume_hint, tools=tools)
    finally:
        await close_tools()  # every MCP server started for the rows, also after Ctrl-C or an error


async def _batch_rows(
    settings: Settings,
    todo: list[Any],
    out: Path,
    concurrency: int,
    timeout: float | None,
    fail_fast: bool,
    resume_hint: str,
    *,
    tools: tuple[Toolbox, str, tuple[str, ...]],
) -> None:
    from graph.batch.inputs import BatchInputError
    from graph.batch.outputs import RowWriter, run_record
    from graph.batch.run import BatchConfig, Progress, run_batch

    toolbox, approve, allow = tools
    warnings = ToolWarnings()
    warnings.show(toolbox)
    name = await pick_model(settings)
    await toolbox.tools()  # start the MCP servers before the first row, so their problems are known up front
    warnings.show(toolbox)
    cfg = BatchConfig(
        settings=settings,
        model=name,
        concurrency=concurrency,
        max_steps=settings.agent_max_steps,
        timeout=timeout,
        fail_fast=fail_fast,
        approve="auto" if approve == "auto" else "deny",
        allow=allow,
        toolbox=toolbox,
    )
    click.secho(
        f"{_count(len(todo), 'question')} · {name} · concurrency {concurrency} · writing {out}", err=True, dim=True
    )
    created = not out.exists()
    try:
        writer = RowWriter(
            out,
            run=run_record(
                model=name,
                endpoints=[ep.label for ep in settings.endpoints()],
                concurrency=concurrency,
                max_steps=cfg.max_steps,
                timeout=timeout,
            ),
        )
    except BatchInputError as err:
        raise AgentError(str(err), EXIT_USAGE) from None
    progress, started = Progress(len(todo)), time.perf_counter()
    try:
        with writer:
            await run_batch(cfg, todo, writer, progress)
    except AgentError as stop:  # the batch cannot go on: the endpoint is gone or refuses, or --fail-fast
        if created and writer.count == 0:
            out.unlink(missing_ok=True)  # nothing ran: the same command can simply be run again
        raise AgentError(f"{stop} {resume_hint}", stop.exit_code) from None
    except BatchInputError as err:  # a row could not be written (disk full): the rows before it are kept
        raise AgentError(f"{err} {resume_hint}", EXIT_USAGE) from None
    finally:
        progress.close()
        warnings.show(toolbox)  # a server that crashed during the rows
    took = time.perf_counter() - started
    click.secho(
        f"{_count(len(todo), 'question')} in {took:.1f}s ({len(todo) / took:.2f}/s) · rows in {out}", err=True, dim=True
    )


def _rows_for(out: Path, keys: set[str]) -> list[dict[str, Any]]:
    """The rows of OUTPUT whose ids are in `keys` (this input's questions)."""
    from graph.batch.outputs import read_rows

    rows, _ = read_rows(out) if out.exists() else ([], 0)
    return [row for row in rows if str(row["id"]) in keys]


def _print_batch_summary(out: Path, keys: set[str]) -> int:
    """Print the summary of OUTPUT's rows for this input; the exit status (0 all ok, 1 some failed)."""
    from graph.batch.report import print_summary, summarize

    summary = summarize(_rows_for(out, keys))
    print_summary(summary)
    if summary.denied:
        names = list(summary.denied)
        click.secho(
            DENIED_ROWS.format(
                calls=_count(sum(summary.denied.values()), "tool call"), names=", ".join(names), first=names[0]
            ),
            err=True,
            fg="yellow",
        )
    return 0 if summary.failed == 0 else 1


@click.command()
@click.argument("output", metavar="OUTPUT.jsonl", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    help="Also write a self-contained HTML report: the run's model, endpoints, date and settings, "
    "the summary, a latency histogram, the tools, the errors and every row (searchable).",
)
def report(output: str, html_path: str | None) -> None:
    """Summarise a batch output file: run settings, ok/failed, latency, tokens, tool calls, errors."""
    from graph.batch.inputs import BatchInputError
    from graph.batch.outputs import read_rows
    from graph.batch.report import print_summary, summarize

    try:
        rows, torn = read_rows(Path(output))
    except BatchInputError as err:
        raise AgentError(str(err), EXIT_USAGE) from None
    if torn:
        click.secho(
            f"Ignoring a partly written last line ({torn} bytes); `batch --resume` repairs it.", err=True, fg="yellow"
        )
    if not rows:
        raise AgentError(f"{output} has no rows.", EXIT_USAGE)
    page = Path(html_path) if html_path else None
    if page and page.exists() and (page.suffix.lower() not in (".html", ".htm") or page.samefile(output)):
        raise AgentError(HTML_NOT_OVER.format(path=html_path), EXIT_USAGE)  # never overwrite the rows or an input
    summary = summarize(rows)
    print_summary(summary, title=f"Batch summary: {output}", run=True)
    if page:
        from graph.batch.report_html import write_html

        try:
            write_html(summary, rows, page, title=f"Batch report: {Path(output).name}")
        except OSError as err:
            raise AgentError(f"cannot write {html_path}: {err.strerror or err}.", EXIT_USAGE) from None
        click.secho(f"Wrote {html_path}", err=True, dim=True)
