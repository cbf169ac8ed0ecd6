"""The conversation list of the web UI: title, owner and times of each thread, beside the checkpoints.

`ConversationStore` keeps it in the SQLite checkpoint file; `PostgresConversationStore` in the Postgres
database of AGENT_CHECKPOINT_URL, so that several UI replicas show the same conversations per owner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import aiosqlite

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow
    from psycopg_pool import AsyncConnectionPool

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


class ConversationList(Protocol):
    """What the UI needs of a conversation list (both stores below provide it)."""

    async def setup(self) -> None: ...
    async def list(self, owner: str) -> list[Conversation]: ...
    async def get(self, thread_id: str) -> Conversation | None: ...
    async def touch(self, owner: str, thread_id: str, question: str) -> None: ...
    async def claim(self, owner: str, thread_id: str, title: str) -> bool: ...
    async def rename(self, owner: str, thread_id: str, title: str) -> bool: ...
    async def delete(self, owner: str, thread_id: str) -> bool: ...


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
            "WHERE owner = ? ORDER BY updated_at DESC",
            (owner,),
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
        cur = await self.conn.execute("DELETE FROM conversations WHERE thread_id = ? AND owner = ?", (thread_id, owner))
        await self.conn.commit()
        return cur.rowcount > 0


PG_SCHEMA = (  # one statement each: the pool's connections prepare every statement
    """CREATE TABLE IF NOT EXISTS conversations (
        thread_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated_at DESC)",
)
PG_SETUP_LOCK_KEY = 0x776F726B5F636F6E  # "work_con": one replica creates the table at a time
PG_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"  # the server's clock, same for all replicas
PG_COLUMNS = "thread_id, owner, title, created_at, updated_at"


class PostgresConversationStore:
    """`ConversationStore` in Postgres, on the checkpointer's connection pool (autocommit, dict rows)."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[DictRow]]) -> None:
        self.pool = pool

    async def setup(self) -> None:
        """Create the table if it is missing (under an advisory lock: replicas may start together)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_SETUP_LOCK_KEY,))
            for statement in PG_SCHEMA:
                await conn.execute(statement)

    async def list(self, owner: str) -> list[Conversation]:
        """The owner's conversations, newest first."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {PG_COLUMNS} FROM conversations WHERE owner = %s ORDER BY updated_at DESC", (owner,)
            )
            return [Conversation(**row) for row in await cur.fetchall()]

    async def get(self, thread_id: str) -> Conversation | None:
        """One conversation by thread id (any owner)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT {PG_COLUMNS} FROM conversations WHERE thread_id = %s", (thread_id,))
            row = await cur.fetchone()
        return Conversation(**row) if row else None

    async def touch(self, owner: str, thread_id: str, question: str) -> None:
        """Record activity on a thread; a new thread gets its title from `question`."""
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO conversations ({PG_COLUMNS}) VALUES (%s, %s, %s, {PG_NOW}, {PG_NOW}) "
                "ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at",
                (thread_id, owner, title_from(question)),
            )

    async def claim(self, owner: str, thread_id: str, title: str) -> bool:
        """Add an existing thread to the owner's list; False when another owner has it.

        One statement decides, so two replicas claiming the same thread at once cannot both win.
        """
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO conversations ({PG_COLUMNS}) VALUES (%s, %s, %s, {PG_NOW}, {PG_NOW}) "
                "ON CONFLICT (thread_id) DO NOTHING",
                (thread_id, owner, title_from(title)),
            )
            cur = await conn.execute("SELECT owner FROM conversations WHERE thread_id = %s", (thread_id,))
            row = await cur.fetchone()
        return row is not None and row["owner"] == owner

    async def rename(self, owner: str, thread_id: str, title: str) -> bool:
        """Give a conversation a new title; False if the owner has no such conversation."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE conversations SET title = %s WHERE thread_id = %s AND owner = %s",
                (title_from(title), thread_id, owner),
            )
            return cur.rowcount > 0

    async def delete(self, owner: str, thread_id: str) -> bool:
        """Forget a conversation; False if the owner has no such conversation."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM conversations WHERE thread_id = %s AND owner = %s", (thread_id, owner)
            )
            return cur.rowcount > 0
