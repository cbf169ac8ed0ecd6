"""Every tool a graph can use: the built-in ones, your own modules', and the MCP servers', with their policies."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool

from tools.mcp import McpConfig, McpHub, Policy, ServerStatus, load_config, unique_names
from tools.plugins import load_user_tools

if TYPE_CHECKING:
    from configs.settings import Settings


@dataclass
class ToolInfo:
    """One tool as `list-tools` and the UI show it."""

    name: str
    source: str
    """"built-in", "module mytools", "entry point x" or "mcp <server>"."""
    server: str | None
    policy: Policy
    description: str
    tool: BaseTool | None = field(default=None, repr=False)


def default_policy(meta: dict[str, Any]) -> Policy:
    """The policy a tool's own hints give: read-only runs, destructive and unknown ask."""
    if meta.get("destructiveHint"):
        return "ask"
    if meta.get("readOnlyHint"):
        return "auto"
    return "ask"


def _match(patterns: dict[str, Any], name: str) -> Any:
    """The value of the first pattern (exact name first, then shell-style patterns) that matches `name`."""
    if name in patterns:
        return patterns[name]
    return next((v for p, v in patterns.items() if fnmatchcase(name, p)), None)


class Toolbox:
    """The tools of a graph. Built-in and module tools are there at once; MCP tools once `tools()` ran."""

    def __init__(
        self,
        tools: Sequence[BaseTool],
        *,
        hub: McpHub | None = None,
        config: McpConfig | None = None,
        problems: Sequence[str] = (),
    ) -> None:
        self.static = list(tools)
        self.hub = hub if hub is not None else McpHub(McpConfig())  # a hub with no servers is falsy
        self.config = config or self.hub.config
        self._problems = list(problems)
        self._by_name: dict[str, BaseTool] = {t.name: t for t in self.static}
        self._mcp: list[BaseTool] = []
        self._mcp_key: tuple[int, ...] = ()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        builtins: Sequence[BaseTool] | None = None,
        mcp_config: Path | None = None,
        tool_modules: Sequence[str] | None = None,
    ) -> Toolbox:
        """Built-in tools, AGENT_TOOL_MODULES and entry points, and the servers of AGENT_MCP_CONFIG.

        Raises `McpConfigError` for a config file that is named but missing, or is not valid.
        """
        from configs.settings import DEFAULT_MCP_CONFIG
        from tools import TOOLS

        path = mcp_config or settings.agent_mcp_config
        # The default ./mcp.json may be absent (.env.example names it too); any other file must exist.
        named = "agent_mcp_config" in settings.model_fields_set and path != DEFAULT_MCP_CONFIG
        config = load_config(path, required=mcp_config is not None or named)
        loaded = load_user_tools(settings.agent_tool_modules if tool_modules is None else tool_modules)
        taken = {t.name: "a built-in tool" for t in (builtins if builtins is not None else TOOLS)}
        user, problems = [], list(loaded.problems)
        for t in loaded.tools:  # the first tool of a name wins: the model must never see one name twice
            origin = (t.metadata or {}).get("origin")
            if t.name in taken:
                problems.append(
                    f"tool '{t.name}' from {origin} has the name of {taken[t.name]} and was skipped; rename it"
                )
                continue
            taken[t.name] = f"a tool from {origin}"
            user.append(t)
        hub = McpHub(config, start_timeout=settings.agent_mcp_start_timeout)
        return cls([*(builtins if builtins is not None else TOOLS), *user], hub=hub, config=config, problems=problems)

    async def tools(self) -> list[BaseTool]:
        """Every tool, MCP servers started on first use (a failed one is left out and reported)."""
        mcp = await self.hub.tools() if self.hub else []
        key = tuple(id(t) for t in mcp)
        if key != self._mcp_key:  # renamed only when the servers' tools changed: the same objects every turn
            self._mcp_key = key
            self._mcp = unique_names(mcp, {t.name for t in self.static})
            self._by_name = {t.name: t for t in [*self.static, *self._mcp]}
        return [*self.static, *self._mcp]

    def known(self) -> list[BaseTool]:
        """Every tool as last listed (built-in and module tools before the first `tools()`)."""
        return list(self._by_name.values())

    def get(self, name: str) -> BaseTool | None:
        """The tool of that name, as last listed."""
        return self._by_name.get(name)

    def info(self, name: str) -> dict[str, Any]:
        """A tool's metadata: source, server, hints (empty for a name it does not have)."""
        tool = self._by_name.get(name)
        return dict(tool.metadata or {}) if tool else {}

    def policy(self, name: str, overrides: dict[str, str] | None = None) -> Policy:
        """auto, ask or deny: the run's overrides, the config's `approval`, the server's, then the tool's hints."""
        if overrides and (p := _match(overrides, name)) in ("auto", "ask", "deny"):
            return p  # type: ignore[no-any-return]
        if (p := _match(self.config.approval, name)) is not None:
            return p  # type: ignore[no-any-return]
        meta = self.info(name)
        if not meta:
            return "auto"  # not a tool of ours: call_tool answers it with the list of real tools
        if server := meta.get("server"):
            spec = self.hub.spec(server)
            if spec is not None:
                if (p := _match(spec.tools, meta.get("mcp_name", name))) is not None:
                    return p  # type: ignore[no-any-return]
                if spec.approval is not None:
                    return spec.approval
        return default_policy(meta)

    def listing(self, overrides: dict[str, str] | None = None) -> list[ToolInfo]:
        """Every tool known now, with where it comes from and its policy."""
        rows = []
        for t in [*self.static, *self._mcp]:
            meta = t.metadata or {}
            server = meta.get("server")
            source = f"mcp {server}" if server else meta.get("origin") or "built-in"
            rows.append(ToolInfo(t.name, source, server, self.policy(t.name, overrides), t.description or "", t))
        return rows

    def statuses(self) -> list[ServerStatus]:
        return self.hub.statuses() if self.hub else []

    def problems(self) -> list[str]:
        """One line per tools module, entry point or MCP server that is unavailable."""
        return [*self._problems, *(self.hub.problems() if self.hub else [])]

    async def aclose(self) -> None:
        """Stop the MCP servers this toolbox started."""
        if self.hub:
            await self.hub.aclose()


_SHARED: dict[tuple[Any, ...], Toolbox] = {}


def shared_toolbox(
    settings: Settings, *, mcp_config: Path | None = None, tool_modules: Sequence[str] | None = None
) -> Toolbox:
    """The process's toolbox for these settings: UI sessions, batch runs and Studio share its MCP servers."""
    key = (
        str((mcp_config or settings.agent_mcp_config).expanduser().absolute()),  # ./mcp.json of which directory
        str(Path.cwd()),  # module names are found from the working directory too
        tuple(settings.agent_tool_modules if tool_modules is None else tool_modules),
        "agent_mcp_config" in settings.model_fields_set or mcp_config is not None,
    )
    if key not in _SHARED:
        _SHARED[key] = Toolbox.from_settings(settings, mcp_config=mcp_config, tool_modules=tool_modules)
    return _SHARED[key]


async def close_shared() -> None:
    """Stop every shared toolbox's MCP servers (at the end of a CLI command or the UI's life)."""
    boxes = list(_SHARED.values())
    await asyncio.gather(*(b.aclose() for b in boxes), return_exceptions=True)
