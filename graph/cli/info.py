"""`list-tools` and `doctor`: what the agent can call, and whether the endpoint works."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from graph.cli.common import endpoint, endpoint_options
from graph.errors import EXIT_ENDPOINT


@click.command("list-tools")
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
