"""`work-agent studio`: LangGraph Studio's dev server (`langgraph dev`) on the agent, or on the scripted demo model."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from graph.cli.common import endpoint, endpoint_options, tool_options
from graph.errors import EXIT_USAGE, AgentError

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STUDIO_PAGE = "https://smith.langchain.com/studio/?baseUrl={url}"
NOT_INSTALLED = (
    'LangGraph Studio needs the LangGraph CLI (langgraph-cli[inmem]); install it with: pip install -e ".[dev]"'
)
NO_CONFIG = "No langgraph.json at {root}: run `work-agent studio` from a clone of the repository (pip install -e .)."
PORT_IN_USE = "Port {port} on {host} is in use (another `langgraph dev`?). Stop that server, or pass --port."
EXITED = "langgraph dev exited with code {code} before it was ready; its output above says why."
READY = """\
LangGraph Studio server for the Work Agent graph ("agent"), model server {base_url}{demo}
  Local API (works offline):      {url}   (API docs: {url}/docs)
  Studio page (hosted by LangChain, needs internet): {page}
Changed .env? Restart this command (langgraph dev reads it only at start). Ctrl-C stops the server."""
DEMO_NOTE = " (scripted demo model; the weather is demo data)"
_READY_TIMEOUT_S = 180.0
_STOP_TIMEOUT_S = 15.0


@click.command()
@endpoint_options
@click.option("--port", default=2024, show_default=True, type=click.IntRange(1, 65535), help="Port to serve on.")
@click.option("--demo", is_flag=True, help="Run against a scripted demo server started in-process (no GPU, offline).")
@click.option("--no-reload", is_flag=True, help="Do not restart the server when code changes.")
@tool_options
def studio(
    base_url: str | None,
    model: str | None,
    port: int,
    demo: bool,
    no_reload: bool,
    mcp_config: Path | None,
    tools_modules: tuple[str, ...],
) -> None:
    """Serve the agent to LangGraph Studio (langgraph dev on 127.0.0.1).

    \b
    Examples:
      work-agent studio --demo              # no GPU, no model server: the scripted demo model
      work-agent studio --base-url http://gpu-box:8000/v1 --port 2025
      work-agent studio --mcp-config mcp.json --tools-module mytools
    A tool call that needs approval pauses the run; Studio shows it and resumes it with your decision.
    """
    if not (importlib.util.find_spec("langgraph_cli") and importlib.util.find_spec("langgraph_api")):
        raise AgentError(NOT_INSTALLED, EXIT_USAGE)
    if not (ROOT / "langgraph.json").is_file():
        raise AgentError(NO_CONFIG.format(root=ROOT), EXIT_USAGE)
    if not _port_free(HOST, port):  # langgraph dev would silently move to another port
        raise AgentError(PORT_IN_USE.format(port=port, host=HOST), EXIT_USAGE)
    with endpoint(demo, base_url, model, None) as settings, _config() as config:
        env = child_env(dict(os.environ), _dotenv(Path.cwd() / ".env"))
        if demo or base_url:
            env["OPENAI_API_BASE"] = settings.openai_api_base
        if demo:
            env |= {"OPENAI_API_KEY": "EMPTY", "AGENT_ENDPOINTS": "[]"}
        if settings.agent_model and (demo or model):
            env["AGENT_MODEL"] = settings.agent_model
        env |= _tool_env(settings, mcp_config, tools_modules)
        command = [
            sys.executable,
            "-m",
            "langgraph_cli",
            "dev",
            "--no-browser",
            "--host",
            HOST,
            "--port",
            str(port),
            "--config",
            str(config),
            *(["--no-reload"] * no_reload),
        ]
        code = _serve(command, env, f"http://{HOST}:{port}", settings.openai_api_base, demo)
    sys.exit(code)


def _tool_env(settings: Any, mcp_config: Path | None, tools_modules: tuple[str, ...]) -> dict[str, str]:
    """--mcp-config and --tools-module for the dev server (which reads them from its environment), checked here:
    a bad config file exits 2 now rather than failing inside the server."""
    from tools.mcp import McpConfigError, load_config

    env: dict[str, str] = {}
    if mcp_config is not None:
        try:
            load_config(mcp_config, required=True)
        except McpConfigError as err:
            raise AgentError(str(err), EXIT_USAGE) from None
        env["AGENT_MCP_CONFIG"] = str(mcp_config.expanduser().resolve())
    if tools_modules:
        modules = dict.fromkeys([*settings.agent_tool_modules, *tools_modules])
        env["AGENT_TOOL_MODULES"] = ",".join(str(Path(m).resolve()) if m.endswith(".py") else m for m in modules)
    return env


def child_env(environ: dict[str, str], dotenv: dict[str, str]) -> dict[str, str]:
    """The dev server's environment: `.env` under the process environment (the environment wins, as everywhere
    else), offline-friendly (no CLI analytics, no version check)."""
    env = {**dotenv, **environ}
    env.setdefault("LANGGRAPH_CLI_NO_ANALYTICS", "1")
    env.setdefault("LANGGRAPH_NO_VERSION_CHECK", "true")
    return env


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@contextlib.contextmanager
def _config() -> Iterator[Path]:
    """langgraph.json without its `"env": ".env"`, which langgraph dev would put over the process environment
    (so a .env would override --demo or --base-url); paths absolute, so it works from any directory."""
    spec: dict[str, Any] = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    spec.pop("env", None)
    spec["dependencies"] = [str((ROOT / d).resolve()) if d.startswith(".") else d for d in spec.get("dependencies", [])]
    spec["graphs"] = {
        name: str((ROOT / path).resolve()) if path.startswith(".") else path
        for name, path in spec.get("graphs", {}).items()
    }
    with tempfile.TemporaryDirectory(prefix="work-agent-studio-") as tmp:
        config = Path(tmp) / "langgraph.json"
        config.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        yield config


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _serve(command: list[str], env: dict[str, str], url: str, base_url: str, demo: bool) -> int:
    """Run langgraph dev until it ends or Ctrl-C / SIGTERM; say where it serves once it is ready."""
    proc = subprocess.Popen(command, env=env)

    def terminate(signum: int, frame: object) -> None:
        proc.terminate()  # SIGTERM stops the child too: never leave it orphaned
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        ready = _wait_ready(proc, url)
        if ready:
            click.secho(
                READY.format(
                    base_url=base_url, demo=DEMO_NOTE if demo else "", url=url, page=STUDIO_PAGE.format(url=url)
                ),
                fg="green",
            )
        code = proc.wait()
        if code > 0 and not ready:
            click.secho(f"Error: {EXITED.format(code=code)}", err=True, fg="red")
        return max(code, 0)  # a negative code: stopped by a signal, which is how a server ends
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> bool:
    """Poll the server's readiness endpoint until it answers, the server exits, or the time is up."""
    import httpx

    deadline = time.monotonic() + _READY_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Let the server finish (Ctrl-C reached it as well), else terminate it, else kill it."""
    for step in (None, proc.terminate, proc.kill):
        if proc.poll() is not None:
            return
        if step is not None:
            step()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_STOP_TIMEOUT_S if step else 3)
