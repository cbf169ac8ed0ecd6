"""The `work-agent` command line: run, repl, batch, report, list-tools, doctor (`python -m graph.cli --help`)."""

from __future__ import annotations

import click

from graph.cli.batch import batch, report
from graph.cli.chat import repl, run
from graph.cli.info import doctor, list_tools
from graph.cli.studio import studio


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
      work-agent list-tools --mcp-config mcp.json --tools-module mytools   # every tool, its source and policy
      work-agent run "记一条笔记：周一开会" --mcp-config mcp.json --approve auto
      work-agent run --demo "北京现在几点？"   # no GPU: scripted demo model
    """


for command in (run, repl, batch, report, list_tools, doctor, studio):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="work-agent")
