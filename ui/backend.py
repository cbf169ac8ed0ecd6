"""Process-wide pieces of the web UI: settings, the shared checkpointer, the conversation list, graphs."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from configs.settings import Settings
from graph.checkpoint import open_checkpointer
from graph.graph import build_graph
from tools.toolbox import Toolbox
from ui.store import ConversationList, ConversationStore, PostgresConversationStore


@dataclass
class Session:
    """One browser tab: its conversation and the turn that is running, if any."""

    thread_id: str = ""
    turns: int = 0
    history: list[Any] = field(default_factory=list)
    """Chat messages of the finished turns (a view; the checkpointer thread holds the truth)."""
    view: Any = None
    """The running turn's `ui.render.TurnView`."""
    task: asyncio.Task[None] | None = None
    """The running turn's task (Stop cancels it); it clears itself when the turn's messages join `history`."""
    stop_requested: bool = False
    """Stop was pressed while no turn was running (one that is about to start is then not asked)."""
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Decisions made so far on the paused turn's calls, by call id (sent once every call has one)."""
    approval: dict[str, str] = field(default_factory=dict)
    """This tab's policy per tool name (auto, ask, deny), over the config file's (`Context.approval`)."""
    thinking: bool | None = None
    """This tab's thinking switch (Settings → Thinking); None: AGENT_THINKING, else the model's default."""
    disabled_servers: list[str] = field(default_factory=list)
    """MCP servers whose tools this tab does not use."""
    resuming: bool = False
    """Decisions are on their way to the paused turn (its task is not started yet)."""
    shown_tools: list[str] | None = None
    """The tools the Enabled tools list offers (None: the `tools` a caller passes are the whole list)."""

    @property
    def running(self) -> bool:
        """Whether a turn is running in this tab."""
        return self.task is not None

    @property
    def pending(self) -> tuple[Any, ...]:
        """The `PendingCall`s the open conversation's paused turn waits on."""
        return self.view.pending if self.view is not None and not self.running else ()

    def display(self) -> list[Any]:
        """Everything the chat shows."""
        return [*self.history, *(self.view.messages() if self.view is not None else [])]


class Backend:
    """Opened once, lazily, on the event loop Gradio runs handlers on."""

    def __init__(self, settings: Settings, *, demo_label: str | None = None) -> None:
        self.settings = settings
        self.demo_label = demo_label
        self.store: ConversationList | None = None
        self._saver: Any = None
        self._graph: Any = None
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    async def ready(self) -> ConversationList:
        """Open the checkpointer and the conversation table on first use: in the SQLite file (WAL), or in
        Postgres when AGENT_CHECKPOINT_URL is set (replicas then share both)."""
        async with self._lock:
            if self.store is None:
                self._saver = await self._stack.enter_async_context(open_checkpointer(self.settings))
                store: ConversationList = (
                    PostgresConversationStore(self._saver.conn)
                    if self.settings.agent_checkpoint_url
                    else ConversationStore(self._saver.conn)
                )
                await store.setup()
                self.store = store
        return self.store

    def settings_for(self, base_url: str | None) -> Settings:
        """The settings with the session's endpoint URL (validated like OPENAI_API_BASE; ConfigError if not)."""
        return self.settings.for_endpoint(base_url)

    async def graph(self) -> Any:
        """The agent graph, compiled once with the shared checkpointer (a session's endpoint is a run's context)."""
        await self.ready()
        if self._graph is None:  # its tools: the process's shared toolbox (MCP servers shared by every tab)
            self._graph = build_graph(settings=self.settings, checkpointer=self._saver)
        return self._graph

    async def toolbox(self) -> Toolbox:
        """The graph's tools: built-in, your modules' and the MCP servers' (started on first use)."""
        return (await self.graph()).toolbox  # type: ignore[no-any-return]

    async def delete_thread(self, thread_id: str) -> None:
        """Remove a thread's checkpoints."""
        await self.ready()
        await self._saver.adelete_thread(thread_id)

    async def close(self) -> None:
        """Close the checkpointer, the MCP servers and the models' connection pools."""
        from graph.model import aclose_models

        await self._stack.aclose()
        if self._graph is not None:
            await self._graph.toolbox.aclose()  # the MCP server processes; started again if used again
        await aclose_models()
