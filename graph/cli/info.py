"""`list-tools` and `doctor`: what the agent can call, and whether the endpoint works."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import click

from graph.cli.common import endpoint, endpoint_options
from graph.errors import EXIT_ENDPOINT

TOOL_INDENT, PARAM_INDENT, PARAM_TEXT_INDENT = 2, 4, 6
MIN_TEXT_WIDTH = 20  # a very narrow terminal still gets readable lines


@click.command("list-tools")
@click.option("--json", "as_json", is_flag=True, help="Print the tools as JSON.")
def list_tools(as_json: bool) -> None:
    """List the tools the agent can call, with their whole descriptions and their parameters."""
    from tools import TOOLS

    if as_json:
        click.echo(json.dumps(tool_specs(TOOLS), ensure_ascii=False, indent=2))
        return
    show_tools(TOOLS)


def tool_specs(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """The function specs the model is sent for `tools` (name, description, JSON-schema parameters)."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return [convert_to_openai_tool(t)["function"] for t in tools]


def show_tools(tools: Sequence[Any]) -> None:
    """Print each tool, its whole description and its parameters, wrapped to the terminal (list-tools, /tools)."""
    width = shutil.get_terminal_size().columns  # the terminal's, else $COLUMNS, else 80
    for spec in tool_specs(tools):
        click.secho(spec["name"], bold=True)
        click.echo("\n".join(wrapped(spec["description"], TOOL_INDENT, width)))
        params = spec.get("parameters", {})
        required = set(params.get("required", []))
        for name, prop in params.get("properties", {}).items():
            kind = prop.get("type") or "/".join(str(v) for v in prop.get("enum", []))
            flag = "" if name in required else f" (optional, default {prop.get('default')!r})"
            click.echo(f"{' ' * PARAM_INDENT}{name}: {kind}{flag}")
            if prop.get("description"):
                click.echo("\n".join(wrapped(prop["description"], PARAM_TEXT_INDENT, width)))


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
