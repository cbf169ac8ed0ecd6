"""The conversation list of the web UI: title, owner and times of each thread, in the checkpoint file."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    thread_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated_at DESC);
"""
TITLE_CHARS = 60


@dataclass(frozen=True)
class Conversation:
    """One row of the sidebar."""

    thread_id: str
    owner: str
    title: str
    created_at: float
    updated_at: float


def title_from(question: str) -> str:
    """A sidebar title from the first question: its first line, shortened."""
    line = " ".join(question.strip().split()) or "New conversation"
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


class ConversationStore:
    """Who owns which thread, and what it is called. Threads themselves live in the checkpointer."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def setup(self) -> None:
        """Create the table if it is missing."""
        await self.conn.executescript(SCHEMA)
        await self.conn.commit()

    async def list(self, owner: str) -> list[Conversation]:
        """The owner's conversations, newest first."""
        async with self.conn.execute(
            "SELECT thread_id, owner, title, created_at, updated_at FROM conversations "
            "WHERE owner = ? ORDER BY updated_at DESC", (owner,),
        ) as cur:
            return [Conversation(*row) for row in await cur.fetchall()]

    async def get(self, thread_id: str) -> Conversation | None:
        """One conversation by thread id (any owner)."""
        async with self.conn.execute(
            "SELECT thread_id, owner, title, created_at, updated_at FROM conversations WHERE thread_id = ?",
            (thread_id,),
        ) as cur:
            row = await cur.fetchone()
        return Conversation(*row) if row else None

    async def touch(self, owner: str, thread_id: str, question: str) -> None:
        """Record activity on a thread; a new thread gets its title from `question`."""
        now = time.time()
        await self.conn.execute(
            "INSERT INTO conversations (thread_id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(thread_id) DO UPDATE SET updated_at = excluded.updated_at",
            (thread_id, owner, title_from(question), now, now),
        )
        await self.conn.commit()

    async def claim(self, owner: str, thread_id: str, title: str) -> bool:
        """Add an existing thread (e.g. started with `work-agent run --thread`) to the owner's list.

        Returns False when another owner has it: sessions never see each other's conversations.
        """
        found = await self.get(thread_id)
        if found is not None:
            return found.owner == owner
        await self.touch(owner, thread_id, title)
        return True

    async def rename(self, owner: str, thread_id: str, title: str) -> bool:
        """Give a conversation a new title; False if the owner has no such conversation."""
        cur = await self.conn.execute(
            "UPDATE conversations SET title = ? WHERE thread_id = ? AND owner = ?",
            (title_from(title), thread_id, owner),
        )
        await self.conn.commit()
        return cur.rowcount > 0

    async def delete(self, owner: str, thread_id: str) -> bool:
        """Forget a conversation; False if the owner has no such conversation."""
        cur = await self.conn.execute(
            "DELETE FROM conversations WHERE thread_id = ? AND owner = ?", (thread_id, owner)
        )
        await self.conn.commit()
        return cur.rowcount > 0
