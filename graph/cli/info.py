"""`list-tools` and `doctor`: what the agent can call (and who approves it), and whether the endpoint works."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graph.cli.common import (
    ToolWarnings,
    close_tools,
    endpoint,
    endpoint_options,
    open_toolbox,
    redacted,
    settings_from,
    tool_options,
)
from graph.errors import EXIT_ENDPOINT

if TYPE_CHECKING:
    from tools.mcp import ServerStatus
    from tools.toolbox import Toolbox, ToolInfo

TOOL_INDENT, PARAM_INDENT, PARAM_TEXT_INDENT = 2, 4, 6
MIN_TEXT_WIDTH = 20  # a very narrow terminal still gets readable lines


@click.command("list-tools")
@tool_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"tools": [...], "servers": [...]}: each tool\'s name, description, parameters, source, '
    "server and policy; each MCP server's state, tools and error.",
)
def list_tools(as_json: bool, mcp_config: Path | None, tools_modules: tuple[str, ...]) -> None:
    """List every tool the agent can call: where it comes from, its approval policy, its whole description
    and its parameters; then each MCP server and whether it is ready.

    \b
    Sources: built-in, module NAME (--tools-module, AGENT_TOOL_MODULES), entry point NAME, mcp SERVER.
    Policies: auto (runs), ask (a person approves it first), deny (never runs).
    The MCP servers are started to list their tools, then stopped.
    """
    settings = settings_from()
    toolbox = open_toolbox(settings, mcp_config, tools_modules)
    if toolbox.hub:
        asyncio.run(_start_and_stop(toolbox))
    ToolWarnings().show(toolbox)
    rows, servers = toolbox.listing(), toolbox.statuses()
    if as_json:
        listing = {"tools": [tool_json(row) for row in rows], "servers": [server_json(s) for s in servers]}
        click.echo(json.dumps(listing, ensure_ascii=False, indent=2))
        return
    show_listing(rows, servers)


async def _start_and_stop(toolbox: Toolbox) -> None:
    try:
        await toolbox.tools()
    finally:
        await close_tools()


def tool_specs(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """The function specs the model is sent for `tools` (name, description, JSON-schema parameters)."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return [convert_to_openai_tool(t)["function"] for t in tools]


def tool_json(row: ToolInfo) -> dict[str, Any]:
    """One tool for `list-tools --json`: its spec, plus where it comes from and its approval policy."""
    spec = tool_specs([row.tool])[0] if row.tool is not None else {"name": row.name, "description": row.description}
    return {**spec, "source": row.source, "server": row.server, "policy": row.policy}


def server_json(status: ServerStatus) -> dict[str, Any]:
    """One MCP server for `list-tools --json`."""
    return {
        "name": status.name,
        "state": status.state,
        "transport": status.transport,
        "tools": list(status.tools),
        "error": redacted(status.error) if status.error else None,
    }


def server_line(status: ServerStatus) -> str:
    """`notes: ready, 8 tools` / `git: unavailable: why` / `github: disabled in the config`."""
    if status.state == "ready":
        n = len(status.tools)
        return f"{status.name}: ready, {n} tool{'s' * (n != 1)}"
    if status.state == "failed":
        return f"{status.name}: unavailable: {redacted(status.error or 'unknown error')}"
    if status.state == "disabled":
        return f"{status.name}: disabled in the config"
    return f"{status.name}: {status.state}"


def show_listing(rows: Sequence[ToolInfo], servers: Sequence[ServerStatus] = ()) -> None:
    """Print each tool (source, policy, description, parameters) and each MCP server (list-tools, /tools)."""
    width = shutil.get_terminal_size().columns  # the terminal's, else $COLUMNS, else 80
    for row in rows:
        spec = tool_json(row)
        click.secho(spec["name"], bold=True)
        click.secho("\n".join(wrapped(f"{row.source} · approval: {row.policy}", TOOL_INDENT, width)), dim=True)
        click.echo("\n".join(wrapped(spec["description"], TOOL_INDENT, width)))
        params = spec.get("parameters", {})
        required = set(params.get("required", []))
        for name, prop in params.get("properties", {}).items():
            kind = prop.get("type") or "/".join(str(v) for v in prop.get("enum", []))
            flag = "" if name in required else f" (optional, default {prop.get('default')!r})"
            click.echo(f"{' ' * PARAM_INDENT}{name}: {kind}{flag}")
            if prop.get("description"):
                click.echo("\n".join(wrapped(prop["description"], PARAM_TEXT_INDENT, width)))
    if servers:
        click.echo()
        click.secho("MCP servers", bold=True)
        for status in servers:
            colour = {"ready": "green", "failed": "yellow"}.get(status.state)
            lines = wrapped(server_line(status), PARAM_INDENT, width)  # continued lines hang under the name
            lines[0] = " " * TOOL_INDENT + lines[0].lstrip()
            click.secho("\n".join(lines), fg=colour)


def wrapped(text: str, indent: int, width: int) -> list[str]:
    """`text` reflowed into lines of at most `width` terminal cells, indented (CJK counts two cells a character)."""
    from rich.console import Console
    from rich.text import Text

    room = max(width - indent, MIN_TEXT_WIDTH)
    console = Console(width=room, color_system=None)
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if lines:
            lines.append("")
        lines += [" " * indent + line.plain.rstrip() for line in Text(" ".join(paragraph.split())).wrap(console, room)]
    return lines


@click.command()
@endpoint_options
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--demo", is_flag=True, help="Check a scripted demo server started in-process (no GPU needed).")
def doctor(base_url: str | None, model: str | None, as_json: bool, demo: bool) -> None:
    """Check the model server: reachable, model served, chat, tool calling, streaming, speed."""
    from graph.doctor import print_endpoints, print_report, run_all

    with endpoint(demo, base_url, model, None) as settings:
        reports = asyncio.run(run_all(settings))
    if len(reports) == 1:
        print_report(reports[0], as_json=as_json)
    else:
        print_endpoints(reports, as_json=as_json)
    if all(r.ok for r in reports):
        sys.exit(0)
    sys.exit(1 if any(r.ok for r in reports) or not all(r.endpoint_failed for r in reports) else EXIT_ENDPOINT)
