"""Open the checkpointer shared by the CLI and the UI: a SQLite file (WAL) by default, Postgres when
AGENT_CHECKPOINT_URL is set (several UI replicas sharing conversations)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from configs.settings import Settings
from graph.errors import EXIT_ENDPOINT, AgentError, explain

BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10
POOL_MAX_SIZE = 10
# pg_advisory_lock key held while creating or migrating the tables: LangGraph's setup() reads the
# migration version and then applies the missing ones, so two processes starting on an empty
# database at once would both apply them (duplicate-key errors) without it.
SETUP_LOCK_KEY = 0x776F726B5F616731  # "work_ag1"
SETUP_LOCK_POLL_S = 0.05
SETUP_LOCK_TIMEOUT_S = 120

UNREACHABLE = (
    "Cannot reach the Postgres checkpoint database at {target} (AGENT_CHECKPOINT_URL): {reason}. Start "
    "Postgres or fix the host and port in AGENT_CHECKPOINT_URL; unset it to keep threads in the SQLite file."
)
AUTH_FAILED = (
    "The Postgres checkpoint database at {target} refused the login (AGENT_CHECKPOINT_URL): {reason}. Fix the "
    "user and password in AGENT_CHECKPOINT_URL."
)
NO_DATABASE = (
    "Cannot open the Postgres checkpoint database at {target} (AGENT_CHECKPOINT_URL): {reason}. Create it "
    "(createdb) or fix the database name in AGENT_CHECKPOINT_URL."
)
FAILED = (
    "The Postgres checkpoint database at {target} (AGENT_CHECKPOINT_URL) failed: {reason}. Check its log (its "
    "user must be allowed to create tables), or unset AGENT_CHECKPOINT_URL to keep threads in the SQLite file."
)


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[Any]:
    """The checkpointer `settings` asks for: AsyncPostgresSaver when AGENT_CHECKPOINT_URL is set, else an
    AsyncSqliteSaver on AGENT_CHECKPOINT_DB.

    A Postgres database that cannot be opened raises `AgentError(one_line_message, EXIT_ENDPOINT)`; the
    message names AGENT_CHECKPOINT_URL and its host:port, never its password.
    """
    if settings.agent_checkpoint_url is None:
        async with open_sqlite(settings.agent_checkpoint_db) as saver:
            yield saver
    else:
        async with open_postgres(settings.agent_checkpoint_url.get_secret_value().strip()) as saver:
            yield saver


@asynccontextmanager
async def open_sqlite(path: Path) -> AsyncIterator[AsyncSqliteSaver]:
    """An AsyncSqliteSaver on `path`, safe for several processes writing the same file.

    A file that cannot be created or is not a SQLite database raises `AgentError(one_line_message, exit_code)`;
    the file is never modified or replaced.
    """
    conn = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), timeout=BUSY_TIMEOUT_S)
        # WAL lets readers and one writer work at once; the busy timeout makes a second writer wait
        # instead of failing with "database is locked".
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            await conn.close()
        raise explain(exc, base_url="", model=None) from None
    try:
        yield saver
    finally:
        await conn.close()


def connection_kwargs() -> dict[str, Any]:
    """What AsyncPostgresSaver requires of its connections: autocommit, prepare_threshold=0, dict rows."""
    from psycopg.rows import dict_row

    return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S}


@asynccontextmanager
async def open_postgres(url: str) -> AsyncIterator[Any]:
    """An AsyncPostgresSaver on a connection pool to `url`, its tables created or migrated first."""
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import DictRow
    from psycopg_pool import AsyncConnectionPool, PoolTimeout

    try:
        # One direct connection first: it reports a wrong password or host at once (a pool would retry
        # until its timeout), and it runs the migrations under the advisory lock.
        async with await psycopg.AsyncConnection.connect(url, **connection_kwargs()) as conn:
            await _lock_for_setup(conn)
            try:
                await AsyncPostgresSaver(conn).setup()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))
    except (psycopg.Error, TimeoutError) as err:
        raise AgentError(postgres_error(url, err), EXIT_ENDPOINT) from None
    pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=POOL_MAX_SIZE,
        kwargs=connection_kwargs(),
        open=False,
        check=AsyncConnectionPool.check_connection,
        name="work-agent-checkpoints",
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
    except PoolTimeout:
        await pool.close()
        raise AgentError(
            UNREACHABLE.format(target=postgres_target(url), reason="timed out opening connections"), EXIT_ENDPOINT
        ) from None
    try:
        yield AsyncPostgresSaver(pool)
    finally:
        await pool.close()


async def _lock_for_setup(conn: Any) -> None:
    """Take the setup advisory lock, polling with pg_try_advisory_lock.

    Not pg_advisory_lock: a session blocked in it sits in an open transaction, and the CREATE INDEX
    CONCURRENTLY of LangGraph's migrations (run by the lock holder) waits for every open transaction
    in the database, so the two would deadlock.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETUP_LOCK_TIMEOUT_S
    while True:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (SETUP_LOCK_KEY,))
        row = await cur.fetchone()
        if row and row["locked"]:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"another process held the setup lock for {SETUP_LOCK_TIMEOUT_S}s")
        await asyncio.sleep(SETUP_LOCK_POLL_S)


def postgres_target(url: str) -> str:
    """host:port/database of a Postgres URL, without user or password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - a malformed URL still gets a message
        return "(unparsable URL)"
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    port = str(info.get("port") or 5432)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{where}/{info['dbname']}" if info.get("dbname") else where


def postgres_error(url: str, err: BaseException) -> str:
    """One line saying why the Postgres database could not be opened, with the password taken out."""
    text = str(err)
    noise = ("Is the server running", "Multiple connection attempts", "All connection attempts")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(noise)]
    # psycopg: 'connection failed: connection to server at "h" (ip), port 5432 failed: FATAL:  reason'
    reason = (lines[-1] if lines else type(err).__name__).rsplit("failed: ", 1)[-1]
    sqlstate = getattr(err, "sqlstate", None) or ""
    diag = getattr(err, "diag", None)
    if sqlstate and diag is not None and diag.message_primary:  # a server error: its first line, not the HINT
        reason = diag.message_primary
    reason = reason.removeprefix("FATAL:").removeprefix("ERROR:").strip().rstrip(".") or type(err).__name__
    low = text.lower()
    if sqlstate in ("28P01", "28000") or "password authentication failed" in low or "no password supplied" in low:
        template = AUTH_FAILED
    elif sqlstate == "3D000" or ("database" in low and "does not exist" in low):
        template = NO_DATABASE
    elif sqlstate or "permission denied" in low or isinstance(err, TimeoutError):
        template = FAILED
    else:
        template = UNREACHABLE
    return scrub(template.format(target=postgres_target(url), reason=reason), url)


def scrub(text: str, url: str) -> str:
    """`text` without the URL's password (plain or percent-encoded), in case a library echoed it."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = str(conninfo_to_dict(url).get("password") or "")
    except Exception:  # noqa: BLE001
        password = ""
    for secret in {password, quote(password, safe=""), unquote(password)} - {""}:
        text = text.replace(secret, "***")
    return text
