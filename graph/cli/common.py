"""What every command shares: the one-line error, option bundles, settings, the endpoint (or --demo), the tools."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from configs.settings import ConfigError, Settings, load_settings
from graph.errors import EXIT_USAGE, AgentError

if TYPE_CHECKING:
    from tools.toolbox import Toolbox

WARNING = "work-agent: {line}"
"""How a tools module or MCP server that is unavailable is reported: one line on stderr, the command goes on."""

# Heavy modules (langchain, langgraph, the demo server) are imported inside commands, so that
# `--help`, `list-tools` and mistakes in the command line answer fast.


def endpoint_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --base-url and --model (they override OPENAI_API_BASE and AGENT_MODEL)."""
    fn = click.option("--model", "-m", help="Served model name (default: AGENT_MODEL, else the server's first).")(fn)
    fn = click.option(
        "--base-url",
        multiple=True,
        callback=_join_urls,
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
        "--demo",
        is_flag=True,
        help="Start a scripted vLLM-compatible demo server in-process (no GPU needed) and use it.",
    )(fn)
    return thinking_option(fn)


def thinking_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --think/--no-think (over AGENT_THINKING); `endpoint()` reads it from the click context."""
    return click.option(
        "--think/--no-think",
        default=None,
        expose_value=False,
        callback=_remember_thinking,
        help="Thinking models (Qwen3): think before answering, or not (default AGENT_THINKING, else the model's).",
    )(fn)


def _remember_thinking(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    if value is not None:
        ctx.meta["agent_thinking"] = value


def _thinking_override() -> dict[str, bool]:
    """`--think` / `--no-think` of the running command, as a settings override (none when not given)."""
    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get("agent_thinking") if ctx is not None else None
    return {} if value is None else {"agent_thinking": value}


def settings_from(**overrides: Any) -> Settings:
    """Settings from env/.env with command-line overrides; a bad value exits 2 with one line."""
    try:
        settings = load_settings(**overrides)
    except ConfigError as err:
        raise AgentError(str(err), EXIT_USAGE) from None
    from graph.obs.logs import setup_logging

    setup_logging(settings)
    return settings


@contextlib.contextmanager
def endpoint(demo: bool, base_url: str | None, model: str | None, max_steps: int | None) -> Iterator[Settings]:
    """The settings to run with; with `--demo`, a demo server runs for the duration."""
    if max_steps is not None and max_steps < 1:
        raise AgentError(f"--max-steps must be at least 1 (got {max_steps}).", EXIT_USAGE)
    if not demo:
        yield settings_from(
            openai_api_base=base_url, agent_model=model, agent_max_steps=max_steps, **_thinking_override()
        )
        return
    from unittest import mock

    from configs.settings import get_settings
    from graph.demo.server import DemoConfig, DemoServer

    with DemoServer(DemoConfig(token_delay=0.02)) as server:
        served = server.config.served_model_names[0]
        click.secho(
            f"demo model (scripted, no GPU) at {server.base_url}; the weather is demo data", err=True, fg="yellow"
        )
        # The tools read the process-wide settings (get_settings()) when called, so the weather URLs
        # go there too, for the demo's duration only; the rest are overrides of this run's settings.
        with mock.patch.dict("os.environ", server.weather_env()):
            get_settings.cache_clear()
            try:
                yield settings_from(
                    openai_api_base=server.base_url,
                    openai_api_key="EMPTY",
                    agent_endpoints=[],
                    agent_model=model or served,
                    agent_max_steps=max_steps,
                    **_thinking_override(),
                    weather_geocoding_url=server.geocoding_url,
                    weather_forecast_url=server.forecast_url,
                    weather_api_key="",
                )
            finally:
                get_settings.cache_clear()


def fail_on(settings: Settings, model: str | None) -> Callable[[BaseException], AgentError]:
    """Turn a model-server exception into an AgentError with the right exit code."""
    from graph.errors import explain

    def convert(exc: BaseException) -> AgentError:
        err = explain(exc, base_url=settings.openai_api_base, model=model)
        return AgentError(str(err), err.exit_code)

    return convert


async def pick_model(settings: Settings) -> str:
    """The model to use; says so on stderr when it was taken from the server's list."""
    from graph.model import resolve_model_name

    try:
        name = await resolve_model_name(settings)
    except Exception as exc:  # noqa: BLE001 - mapped to one line below
        raise fail_on(settings, settings.agent_model)(exc) from None
    if not settings.agent_model:
        click.secho(f"Using model {name} (the first the server lists; set AGENT_MODEL to choose).", err=True, dim=True)
    return name


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def tool_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --mcp-config (over AGENT_MCP_CONFIG) and --tools-module (repeatable, added to AGENT_TOOL_MODULES)."""
    fn = click.option(
        "--tools-module",
        "tools_modules",
        multiple=True,
        metavar="MODULE",
        help="Your own tools: a module name or .py file whose typed functions become tools "
        "(added to AGENT_TOOL_MODULES; repeat it for more).",
    )(fn)
    fn = click.option(
        "--mcp-config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="MCP servers file (an mcpServers object, as Claude Desktop and Cursor use, plus optional "
        '"approval" policies; default AGENT_MCP_CONFIG, else ./mcp.json if it exists).',
    )(fn)
    return fn


def open_toolbox(settings: Settings, mcp_config: Path | None, tools_modules: Sequence[str] = ()) -> Toolbox:
    """The process's toolbox for these options (MCP servers not started yet); a bad config file exits 2."""
    from tools.mcp import McpConfigError
    from tools.toolbox import shared_toolbox

    modules = list(dict.fromkeys([*settings.agent_tool_modules, *tools_modules]))
    try:
        return shared_toolbox(settings, mcp_config=mcp_config, tool_modules=modules)
    except McpConfigError as err:
        raise AgentError(str(err), EXIT_USAGE) from None


async def close_tools() -> None:
    """Stop every MCP server this process started (the end of every command, also after Ctrl-C or an error)."""
    from tools.toolbox import close_shared

    await close_shared()


class ToolWarnings:
    """Say each unavailable tools module or MCP server once, as one `work-agent: ...` line on stderr."""

    def __init__(self) -> None:
        self.shown: set[str] = set()

    def show(self, toolbox: Toolbox) -> None:
        """Print the problems not printed yet (MCP servers' are known once they were started)."""
        for line in toolbox.problems():
            if line not in self.shown:
                self.shown.add(line)
                click.secho(WARNING.format(line=redacted(line)), err=True, fg="yellow")


def redacted(text: str) -> str:
    """`text` with the MCP servers' tokens (and anything token-shaped) masked, as the logs have it."""
    from graph.obs.logs import Redactor

    return Redactor([]).redact(text)
