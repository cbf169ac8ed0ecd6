"""MCP tool servers: the `mcpServers` config file, and one long-lived session per server.

Every line of MCP code lives in this module, so moving to the next MCP stack (the MCP SDK 2.x, once
langchain-mcp-adapters supports it) is a one-file change. Pinned together in pyproject.toml:
langchain-mcp-adapters 0.3.x needs `mcp<2`; `gradio[mcp]` is not installed (it caps pydantic below ours).

Servers start lazily (on the first turn that needs tools), concurrently, and once: each runs in a task of
its own that holds the session open, so its tools are reused across turns, UI sessions and batch rows
(langchain-mcp-adapters' `get_tools()` would start a new server process for every call). A server that
fails to start, crashes or hangs is reported in one line naming it; the other tools keep working, and a
call to a dead server is a tool error the model can act on. `aclose()` ends every process it started.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from configs.secrets import extra_secrets, register_secret
from tools.errors import REDACTED, ToolError

Policy = Literal["auto", "ask", "deny"]
_SERVER_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("mcp_server", default="?")
"""The server a task works for (set in each server's task, inherited by the SDK's reader tasks)."""
ServerState = Literal["starting", "ready", "failed", "disabled"]

LOG_DIR = Path.home() / ".local" / "state" / "work-agent" / "mcp"
RETRY_AFTER = 60.0
"""Seconds before a server that failed to start is tried again (one that crashed mid-call: at the next turn)."""
STOP_TIMEOUT = 5.0
"""Seconds a server gets to exit after its session closes (the SDK then terminates the process tree)."""
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_CREDENTIAL = re.compile(r"(?i)auth|token|secret|passw|key|cookie|credential|(?<![a-z])pat(?![a-z])")
"""Names of env variables, headers and flags whose values are secrets even when written in the file."""
_PLAIN_VARS = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "PWD", "SHELL", "LANG", "LC_ALL", "TERM", "TMPDIR", "TZ", "PYTHONPATH"}
)
"""Environment variables whose values are not secrets (`"PATH": "${PATH}"`, `--root ${HOME}/notes`)."""
MAX_TOOL_NAME = 64  # OpenAI's limit on function names; vLLM passes longer ones, other servers may not

SERVER_DOWN = (
    "the MCP server '{server}' is not running ({why}), so {tool} cannot be called. Answer without it, or "
    "tell the user the '{server}' tools are unavailable right now."
)
SERVER_FAILED_CALL = (
    "the MCP server '{server}' failed while running {tool} ({why}). Try once more; if it fails again, "
    "answer without the '{server}' tools."
)


class McpConfigError(ValueError):
    """The MCP config file is missing, not JSON, or not an `mcpServers` object; the message is one line."""


class ServerSpec(BaseModel):
    """One entry of `mcpServers`: `command`/`args`/`env`/`cwd` for stdio, or `url` (+ `headers`) for HTTP."""

    model_config = ConfigDict(extra="ignore")  # the same file often carries other clients' keys

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    type: Literal["stdio", "http", "streamable_http", "streamable-http", "sse"] | None = Field(
        None, description="the transport; from command/url when absent (VS Code's `type`, or `transport`)"
    )
    transport: str | None = None
    disabled: bool = False
    approval: Policy | None = Field(None, description="policy for every tool of this server, overriding hints")
    tools: dict[str, Policy] = Field(default_factory=dict, description="policy per tool name of this server")

    @model_validator(mode="after")
    def _one_transport(self) -> ServerSpec:
        if not self.command and not self.url:
            raise ValueError("needs a `command` (stdio) or a `url` (streamable HTTP)")
        return self

    @property
    def kind(self) -> Literal["stdio", "http", "sse"]:
        declared = (self.type or self.transport or "").replace("-", "_")
        if declared == "sse":
            return "sse"
        if declared in ("http", "streamable_http") or (not declared and not self.command):
            return "http"
        return "stdio"


class McpConfig(BaseModel):
    """The config file: `mcpServers` plus Work Agent's optional `approval` policies (tool name or pattern)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    servers: dict[str, ServerSpec] = Field(default_factory=dict, alias="mcpServers")
    approval: dict[str, Policy] = Field(default_factory=dict)
    path: Path | None = Field(None, exclude=True)


def load_config(path: Path, *, required: bool) -> McpConfig:
    """Read the config file; a missing default file is no servers, a missing named one is an error."""
    if not path.expanduser().exists():
        if required:
            raise McpConfigError(
                f"MCP config {path} does not exist: create it (see the README's Tools section) or fix "
                "AGENT_MCP_CONFIG / --mcp-config"
            )
        return McpConfig()
    file = path.expanduser()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise McpConfigError(f"cannot read MCP config {file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise McpConfigError(f"MCP config {file} is not valid JSON (line {exc.lineno}: {exc.msg}); fix it") from None
    if not isinstance(data, dict):
        raise McpConfigError(f'MCP config {file} must be a JSON object with "mcpServers"; see the README')
    try:
        config = McpConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise McpConfigError(f"MCP config {file}: {where}: {err['msg']}; fix it (see the README)") from None
    config.path = file
    return config


def expand(value: str, server: str, filled: list[tuple[str, str]] | None = None) -> str:
    """`${VAR}` and `${VAR:-default}` from the environment; a variable that is not set is an error.

    The variables taken from the environment are appended to `filled` as (name, value); a default written in
    the file is not.
    """

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            if filled is not None:
                filled.append((name, os.environ[name]))
            return os.environ[name]
        if default is not None:
            return default
        raise McpConfigError(f"${{{name}}} is not set in the environment (used by MCP server '{server}'); set it")

    return _VAR.sub(sub, value)


def _fill(value: str, server: str, *, secret: bool, credential: bool = False) -> str:
    """`expand`, registering as secrets what a token could be: with `secret`, the values taken from the
    environment (not PATH, HOME and the like); with `credential` (an Authorization header, a GITHUB_TOKEN
    variable, an `--api-key` argument), the whole value, even when it is written in the file."""
    filled: list[tuple[str, str]] = []
    out = expand(value, server, filled)
    parts = [v for name, v in filled if name not in _PLAIN_VARS] if secret or credential else []
    for part in parts:
        register_secret(part)
    if parts or credential:
        register_secret(out)
        register_secret(out.removeprefix("Bearer ").strip())
    return out


def _args(args: list[str], server: str) -> list[str]:
    """The arguments filled; one after a credential flag (`--token ${T}`), or naming one, is a secret."""
    out = []
    for i, arg in enumerate(args):
        flag = bool(_CREDENTIAL.search(arg.split("=", 1)[0]) and "=" in arg)
        after_flag = i > 0 and args[i - 1].startswith("-") and bool(_CREDENTIAL.search(args[i - 1]))
        out.append(_fill(arg, server, secret=flag or after_flag, credential=after_flag and "${" not in arg))
    return out


def connection(name: str, spec: ServerSpec) -> dict[str, Any]:
    """The langchain-mcp-adapters connection of a server, with `${VAR}`s filled (and registered as secrets)."""
    if spec.kind == "stdio":
        env = {k: _fill(v, name, secret=True, credential=bool(_CREDENTIAL.search(k))) for k, v in spec.env.items()}
        return {
            "transport": "stdio",
            "command": expand(spec.command or "", name),
            "args": _args(spec.args, name),
            "env": env or None,
            "cwd": expand(spec.cwd, name) if spec.cwd else None,
        }
    headers = {k: _fill(v, name, secret=True, credential=bool(_CREDENTIAL.search(k))) for k, v in spec.headers.items()}
    url = _fill(spec.url or "", name, secret=bool(_CREDENTIAL.search(spec.url or "")))  # `?api_key=${KEY}`
    transport = "sse" if spec.kind == "sse" else "streamable_http"
    return {"transport": transport, "url": url, "headers": headers or None}


def redact(value: Any) -> Any:
    """`value` with every registered secret (the servers' tokens) masked, in strings, lists, dicts and tuples."""
    if isinstance(value, str):
        for secret in extra_secrets():
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    return value


@dataclass
class ServerStatus:
    """What a server is doing, for `list-tools`, the UI's badges and the trace."""

    name: str
    state: ServerState
    transport: str
    error: str | None = None
    tools: list[str] = field(default_factory=list)
    log: Path | None = None

    def line(self) -> str:
        """One line: the server, its state, and for a failure what to do."""
        if self.state == "ready":
            return f"MCP server '{self.name}': {len(self.tools)} tools"
        if self.state == "failed":
            hint = (
                f"; its output is in {self.log}" if self.log and self.log.exists() and self.log.stat().st_size else ""
            )
            return f"MCP server '{self.name}' is unavailable: {self.error}{hint}"
        return f"MCP server '{self.name}': {self.state}"


def _why(exc: BaseException) -> str:
    """A short, secret-free description of why a server failed."""
    from tools.errors import _one_line

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # anyio task groups wrap the real error
        exc = exc.exceptions[0]
    if isinstance(exc, McpConfigError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}; install it or fix `command`"
    text = _one_line(str(exc)).rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open_log(log: Path) -> Any:
    """The file a stdio server's stderr goes to (created with its folder)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return open(log, "w", encoding="utf-8")  # noqa: SIM115 - the caller's exit stack closes it


def _last_line(log: Path | None) -> str:
    """The last non-empty line a stdio server wrote to stderr (often why it failed to start)."""
    if log is None or not log.exists():
        return ""
    from tools.errors import _one_line

    lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return _one_line(lines[-1]) if lines else ""


class _Server:
    """One configured server: a task holding its session open until `stop`."""

    def __init__(self, name: str, spec: ServerSpec) -> None:
        self.name, self.spec = name, spec
        self.status = ServerStatus(name, "disabled" if spec.disabled else "starting", spec.kind)
        self.tools: list[BaseTool] = []
        self.session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._scope: Any = None
        """The anyio cancel scope around the session (`abandon` cancels it)."""
        self.retry_at = 0.0
        """When a failed server may be started again (loop time)."""

    @property
    def running(self) -> bool:
        return self.status.state == "ready" and self._task is not None and not self._task.done()

    async def start(self, timeout: float, wrap: Callable[[_Server, BaseTool], BaseTool]) -> None:
        """Start the server and list its tools; on failure or after `timeout`, record why and stop it."""
        if self.spec.disabled:
            return
        self._stop = asyncio.Event()
        self.status = ServerStatus(self.name, "starting", self.spec.kind)
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready, wrap), name=f"mcp-{self.name}")
        try:
            async with asyncio.timeout(timeout):
                await ready.wait()
        except TimeoutError:
            self._fail(f"did not start within {timeout:g} s (AGENT_MCP_START_TIMEOUT); check `command`/`url`")
            await self.abandon()  # it never answered: no session to close politely, end the process now

    async def _run(self, ready: asyncio.Event, wrap: Callable[[_Server, BaseTool], BaseTool]) -> None:
        # The session must be entered and left in the same task (the SDK's anyio cancel scopes require
        # it), hence a task per server that waits for `stop` instead of an exit stack shared by callers.
        import anyio
        from langchain_mcp_adapters.tools import load_mcp_tools

        _SERVER_NAME.set(self.name)  # the SDK's own log records of this task say which server they are about
        try:
            with anyio.CancelScope() as self._scope:
                await self._serve(ready, wrap, load_mcp_tools)
        except asyncio.CancelledError:
            if self.status.state == "starting":
                self._fail("start was cancelled")
        except BaseException as exc:  # noqa: BLE001 - any failure of a server is reported, never raised
            if self.status.state == "failed":  # `crashed` said why, and made it due for a restart: keep that
                return
            detail = _why(exc)
            # What the server said is the reason, not the SDK's error (a file read: in a thread, see `_open_log`).
            if tail := await asyncio.to_thread(_last_line, self.status.log):
                detail = (
                    f"it exited at start, saying: {tail}" if self.status.state == "starting" else f"{detail}: {tail}"
                )
            self._fail(detail)
        finally:
            self.session = None
            ready.set()

    async def _serve(self, ready: asyncio.Event, wrap: Callable[[_Server, BaseTool], BaseTool], load: Any) -> None:
        async with AsyncExitStack() as stack:
            self.session = await stack.enter_async_context(self._session())
            tools = await load(self.session, server_name=self.name, handle_tool_errors=True)
            self.tools = [wrap(self, t) for t in tools]
            self.status = ServerStatus(
                self.name, "ready", self.spec.kind, tools=[t.name for t in self.tools], log=self.status.log
            )
            ready.set()
            await self._stop.wait()

    def _session(self) -> Any:
        """An initialised MCP session: stdio through the SDK (its stderr to a log file), HTTP via the adapter."""
        conn = connection(self.name, self.spec)
        if conn["transport"] != "stdio":
            from langchain_mcp_adapters.sessions import create_session

            return _initialised(create_session(conn))  # type: ignore[arg-type]
        # The adapter's stdio sessions pass the server's stderr to ours, where a chatty server (FastMCP
        # logs every request) would bury the CLI's output; the SDK's own stdio_client takes a log file.
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        log = self.status.log = LOG_DIR / f"{_NAME_CHARS.sub('_', self.name)}.log"
        params = StdioServerParameters(command=conn["command"], args=conn["args"], env=conn["env"], cwd=conn["cwd"])

        async def session() -> Any:
            async with AsyncExitStack() as stack:
                # File work in a thread: `langgraph dev` fails blocking calls made on its event loop.
                errlog = stack.enter_context(await asyncio.to_thread(_open_log, log))
                read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
                yield await stack.enter_async_context(ClientSession(read, write))

        return _initialised(_asynccm(session))

    def _fail(self, why: str) -> None:
        why = redact(why)  # a server's last stderr line may quote its token
        self.status = ServerStatus(self.name, "failed", self.spec.kind, error=why, log=self.status.log)
        self.retry_at = asyncio.get_running_loop().time() + RETRY_AFTER

    def crashed(self, why: str) -> None:
        """A call found the server gone: mark it failed, so the next turn starts it again."""
        self._fail(why)
        self.retry_at = 0.0
        self._stop.set()

    def due(self, started: bool) -> bool:
        """Start it now: never started, or failed and its retry time has come."""
        if self.spec.disabled:
            return False
        if not started:
            return True
        return self.status.state == "failed" and not self.running and asyncio.get_running_loop().time() >= self.retry_at

    async def abandon(self) -> None:
        """End the session at once, killing its process (a server that never finished starting, or will not stop).

        The anyio cancel scope makes every await of the SDK's shutdown fail at once, so a stdio server is
        killed rather than given its 2 s to exit after stdin closes (`task.cancel()` is delivered only once).
        """
        self._stop.set()
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if self._scope is not None:
            self._scope.cancel()
        else:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stop(self) -> None:
        """Close the session (ending a stdio server's process) and wait for the task to finish."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await asyncio.shield(task)
        except TimeoutError:
            self._task = task
            await self.abandon()


def _asynccm(gen: Callable[[], Any]) -> Any:
    from contextlib import asynccontextmanager

    return asynccontextmanager(gen)()


def _initialised(cm: Any) -> Any:
    """The session context manager `cm`, initialised on entry."""

    async def session() -> Any:
        async with cm as sess:
            await sess.initialize()
            yield sess

    return _asynccm(session)


SDK_LOGGERS = ("mcp.client.stdio", "mcp.client.streamable_http", "mcp.client.sse", "mcp.shared.session", "client")
"""The MCP SDK's loggers: they log a server's protocol mistakes with a traceback (`logger.exception`)."""


class _OneLineRecords(logging.Filter):
    """The SDK's records as one warning line naming the server, without the traceback (never shown to users).

    A server that writes a line that is not JSON-RPC to stdout (a print() in a stdio server) makes the SDK
    log the pydantic error with a traceback for every such line; the call itself goes on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None and not record.exc_text:
            return True
        detail = _protocol_detail(exc) if exc is not None else ""
        text = f"MCP server '{_SERVER_NAME.get()}': {record.getMessage()}" + (f" ({detail})" if detail else "")
        record.msg, record.args = redact(text), None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _protocol_detail(exc: BaseException) -> str:
    """A short description of what the server sent: the line that is not JSON-RPC, or the error."""
    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        sent = str(err.get("input", ""))
        sent = sent if len(sent) <= 80 else sent[:79] + "…"
        return f"it wrote {sent!r} to stdout, which is not JSON-RPC; a stdio server must log to stderr"
    return _why(exc)


def _quiet_sdk_tracebacks() -> None:
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLineRecords) for f in logger.filters):
            logger.addFilter(_OneLineRecords())


class McpHub:
    """The configured MCP servers of one process: started once, on first use, and shared by every turn."""

    def __init__(self, config: McpConfig, *, start_timeout: float = 30.0) -> None:
        self.config = config
        self.start_timeout = start_timeout
        self._servers = {name: _Server(name, spec) for name, spec in config.servers.items()}
        if self._servers:
            _quiet_sdk_tracebacks()
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self.on_change: Callable[[], None] | None = None
        """Called after the set of tools changed (a server started, failed or restarted)."""

    def __bool__(self) -> bool:
        return bool(self._servers)

    def statuses(self) -> list[ServerStatus]:
        """Every configured server's status, in config order."""
        return [s.status for s in self._servers.values()]

    def problems(self) -> list[str]:
        """One line per server that is unavailable."""
        return [st.line() for st in self.statuses() if st.state == "failed"]

    def spec(self, server: str) -> ServerSpec | None:
        s = self._servers.get(server)
        return s.spec if s else None

    async def tools(self) -> list[BaseTool]:
        """The tools of every running server, starting servers that have not started (or have crashed)."""
        if not self._servers:
            return []
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # sessions belong to the loop that opened them: a new loop starts afresh
            self._loop, self._lock, self._started = loop, asyncio.Lock(), False
            for server in self._servers.values():
                server._task = None
        assert self._lock is not None
        async with self._lock:
            due = [s for s in self._servers.values() if s.due(self._started)]
            if due:
                await asyncio.gather(*(s.start(self.start_timeout, self._wrap) for s in due))
                self._started = True
                if self.on_change:
                    self.on_change()
        return [t for s in self._servers.values() if s.running for t in s.tools]

    def _wrap(self, server: _Server, tool: BaseTool) -> BaseTool:
        """Record the tool's server and hints, and turn a dead or failing server into a ToolError."""
        call: Callable[..., Awaitable[Any]] | None = getattr(tool, "coroutine", None)
        meta = dict(tool.metadata or {})
        meta.update(source="mcp", server=server.name, mcp_name=tool.name)
        tool.metadata = meta
        if call is None:
            return tool

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if not server.running:
                why = server.status.error or "stopped"
                raise ToolError(SERVER_DOWN.format(server=server.name, tool=tool.name, why=why))
            try:
                return redact(await call(*args, **kwargs))  # a server's own token never reaches the model
            except ToolError:
                raise
            except Exception as exc:
                if _is_execution_error(exc):
                    _redact_execution_error(exc)
                    raise  # the server ran the tool and said it failed: the adapter makes that the result
                why = _why(exc)
                if _is_disconnect(exc):
                    server.crashed(f"it stopped during a call: {why}")
                raise ToolError(SERVER_FAILED_CALL.format(server=server.name, tool=tool.name, why=why)) from None

        tool.coroutine = guarded  # type: ignore[attr-defined]
        return tool

    async def aclose(self) -> None:
        """Stop every server (ending the processes this hub started)."""
        await asyncio.gather(*(s.stop() for s in self._servers.values()), return_exceptions=True)
        self._started = False


def _redact_execution_error(exc: BaseException) -> None:
    """Mask the secrets in an error result the adapter will turn into the tool's message (its content blocks)."""
    if hasattr(exc, "tool_content"):
        exc.tool_content = redact(exc.tool_content)
    exc.args = tuple(redact(a) for a in exc.args)


def _is_execution_error(exc: BaseException) -> bool:
    from langchain_core.tools import ToolException

    return isinstance(exc, ToolException)


def _is_disconnect(exc: BaseException) -> bool:
    """The session's connection is gone (the process exited, the HTTP server went away)."""
    import anyio
    from mcp.shared.exceptions import McpError

    if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream):
        return True
    if isinstance(exc, McpError):
        return "closed" in str(exc).lower()
    return isinstance(exc, ConnectionError | OSError)


def unique_names(tools: list[BaseTool], taken: set[str]) -> list[BaseTool]:
    """Prefix an MCP tool's name with its server's when another tool already has it (kept in OpenAI's limits)."""
    counts: dict[str, int] = {}
    for t in tools:
        counts[t.name] = counts.get(t.name, 0) + 1
    out = []
    for t in tools:
        name = _NAME_CHARS.sub("_", t.name)
        if name in taken or counts[t.name] > 1:
            server = (t.metadata or {}).get("server", "mcp")
            name = _NAME_CHARS.sub("_", f"{server}_{t.name}")
        name = name[:MAX_TOOL_NAME]
        if name != t.name:
            t = t.model_copy(update={"name": name})
        taken.add(name)
        out.append(t)
    return out
