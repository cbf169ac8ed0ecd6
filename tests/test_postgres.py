"""Threads and the UI's conversation list in a real PostgreSQL (AGENT_CHECKPOINT_URL), shared by processes.

A throwaway server is started from Debian's `postgresql` package (initdb + pg_ctl, as the `postgres`
user when the tests run as root), once per session; each test gets a fresh database.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from configs.settings import get_settings
from tests.conftest import run_cli
from tests.system import require_tool

DB_USER = "agent"

pytestmark = pytest.mark.slow


def _bin_dir() -> Path:
    """The newest Debian PostgreSQL server's bin directory (initdb and pg_ctl are not on PATH there)."""
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        reverse=True,
        key=lambda p: [int(n) for n in Path(p).parent.name.split(".") if n.isdigit()],
    )
    bin_dir = Path(require_tool("initdb", "postgresql", *versions)).parent
    require_tool("pg_ctl", "postgresql", str(bin_dir))
    return bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running throwaway server: connect as `agent` over TCP, or as superuser over its socket."""

    port: int
    socket_dir: Path
    superuser: str
    password: str

    def url(self, dbname: str, password: str | None = None) -> str:
        return f"postgresql://{DB_USER}:{password or self.password}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.superuser, dbname="postgres", autocommit=True
        )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """initdb + pg_ctl start on 127.0.0.1:<free port> (fsync off); stopped and removed at the end."""
    bin_dir = _bin_dir()
    as_root = os.geteuid() == 0
    superuser = "postgres" if as_root else pwd.getpwuid(os.geteuid()).pw_name
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="work-agent-pg-"))
    if as_root:
        shutil.chown(base, "postgres", "postgres")
    data, log = base / "data", base / "server.log"
    port, password = _free_port(), "pw-" + secrets.token_hex(8)

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], cwd=base, capture_output=True, text=True, timeout=120)
        if proc.returncode:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr or proc.stdout}\n{tail}", pytrace=False
            )

    run(
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        superuser,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    )
    options = (
        f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    try:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        server = PgServer(port=port, socket_dir=base, superuser=superuser, password=password)
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{password}'")
        yield server
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            cwd=base,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database owned by `agent`, set as AGENT_CHECKPOINT_URL for this test."""
    name = "t_" + secrets.token_hex(6)
    with pg_server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER {DB_USER}")
    url = pg_server.url(name)
    monkeypatch.setenv("AGENT_CHECKPOINT_URL", url)
    get_settings.cache_clear()
    return url


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def users_in_last_request(vllm) -> list[str]:
    return [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "user"]


def test_two_cli_processes_continue_one_thread(vllm, pg_url, isolated_env):
    first = run_cli("run", "What time is it in Paris?", "--thread", "pg-thread")
    assert first.returncode == 0, first.stderr
    second = run_cli("run", "And the weather there?", "--thread", "pg-thread", "--no-stream")
    assert second.returncode == 0, second.stderr
    no_traceback(second)
    # The second process sent the first process's turn to the model: it read the thread from Postgres.
    assert users_in_last_request(vllm) == ["What time is it in Paris?", "And the weather there?"]
    assert not (isolated_env / "threads.sqlite").exists()  # the SQLite file was never opened
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = 'pg-thread'").fetchone()[0] > 0


async def test_processes_starting_together_create_the_tables_once(pg_url):
    """Replicas starting on an empty database at once: setup runs under an advisory lock."""
    from graph.checkpoint import open_checkpointer
    from ui.store import PostgresConversationStore

    settings = get_settings()

    async def start() -> None:
        async with open_checkpointer(settings) as saver:
            await PostgresConversationStore(saver.conn).setup()
            assert await saver.aget({"configurable": {"thread_id": "none"}}) is None

    await asyncio.gather(*(start() for _ in range(4)))
    with psycopg.connect(pg_url) as conn:
        versions = [v for (v,) in conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v")]
    assert versions == list(range(len(versions))) and versions


async def test_two_ui_replicas_share_conversations(vllm, pg_url):
    from graph.context import Context
    from graph.runner import run_turn
    from graph.threads import load_turns
    from ui.backend import Backend
    from ui.store import PostgresConversationStore

    settings = get_settings()
    one, two = Backend(settings), Backend(settings)  # two replicas: nothing shared but the database
    try:
        store1, store2 = await one.ready(), await two.ready()
        assert isinstance(store1, PostgresConversationStore) and store1 is not store2
        question = "What time is it in Tokyo?"
        await run_turn(await one.graph(), question, thread_id="ui-1", context=Context())
        await store1.touch("alice", "ui-1", question)
        await store1.touch("bob", "ui-2", "查询北京的天气")

        assert [(c.thread_id, c.title) for c in await store2.list("alice")] == [("ui-1", question)]
        assert [c.title for c in await store2.list("bob")] == ["查询北京的天气"]
        turns = await load_turns(await two.graph(), "ui-1")
        assert [t.question for t in turns] == [question] and turns[0].answer

        assert await store2.rename("alice", "ui-1", "Tokyo time")
        assert (await store1.get("ui-1")).title == "Tokyo time"
        assert not await store2.claim("bob", "ui-1", "not yours")  # owners stay apart across replicas
        assert await store2.delete("alice", "ui-1")
        await two.delete_thread("ui-1")
        assert await store1.list("alice") == []
        assert await load_turns(await one.graph(), "ui-1") == []
    finally:
        await one.close()
        await two.close()


async def test_postgres_store_behaves_like_the_sqlite_one(pg_url):
    """The scenario of tests/test_ui_store.py, on the Postgres store."""
    from graph.checkpoint import open_checkpointer
    from tests.test_ui_store import check_owner_scenario
    from ui.store import PostgresConversationStore

    async with open_checkpointer(get_settings()) as saver:
        store = PostgresConversationStore(saver.conn)
        await check_owner_scenario(store)
        assert (await store.get("cli-thread")).title == "from the CLI"


def _bad_urls(server: PgServer, dbname: str) -> dict[str, tuple[str, str]]:
    """Broken URLs: (url, what the message must say)."""
    wrong = "Wrong-Secret-" + secrets.token_hex(4)
    return {
        "wrong password": (server.url(dbname, wrong), "refused the login"),
        "no such database": (server.url("no_such_db"), 'database "no_such_db" does not exist'),
        "nothing listening": (server.url(dbname).replace(f":{server.port}/", f":{_free_port()}/"), "Cannot reach"),
    }


@pytest.mark.parametrize(
    "case, command",
    [("wrong password", "run"), ("wrong password", "repl"), ("no such database", "run"), ("nothing listening", "run")],
)
def test_cli_unusable_database_is_one_line_without_the_password(vllm, pg_server, pg_url, case, command):
    dbname = pg_url.rsplit("/", 1)[1]
    url, expected = _bad_urls(pg_server, dbname)[case]
    password = url.split(":")[2].split("@")[0]
    env = {"AGENT_CHECKPOINT_URL": url, "AGENT_MODEL": vllm.config.served_model_names[0]}
    proc = run_cli("run", "hello", env=env) if command == "run" else run_cli("repl", input="hello\n", env=env)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)  # the CLI's endpoint error code
    no_traceback(proc)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "AGENT_CHECKPOINT_URL" in lines[0] and expected in lines[0]
    assert f"127.0.0.1:{urlsplit(url).port}/" in lines[0]
    assert password not in proc.stderr + proc.stdout and pg_server.password not in proc.stderr + proc.stdout


async def test_ui_backend_unusable_database_is_one_line_without_the_password(pg_server, pg_url):
    from configs.settings import Settings
    from graph.errors import AgentError
    from ui.backend import Backend

    url, _ = _bad_urls(pg_server, pg_url.rsplit("/", 1)[1])["wrong password"]
    backend = Backend(Settings(agent_checkpoint_url=url))
    with pytest.raises(AgentError) as caught:
        await backend.ready()
    message = str(caught.value)
    assert caught.value.exit_code == 3 and "\n" not in message
    assert f"127.0.0.1:{pg_server.port}" in message and "AGENT_CHECKPOINT_URL" in message
    assert url.split(":")[2].split("@")[0] not in message
    await backend.close()


def test_messages_never_show_the_password():
    from graph.checkpoint import postgres_error, postgres_target

    url = "postgresql://agent:p%40ss-Word@db.internal:6543/agent"
    echoed = psycopg.OperationalError('connection failed: FATAL: bad "p@ss-Word" and p%40ss-Word')
    message = postgres_error(url, echoed)
    assert "p@ss-Word" not in message and "p%40ss-Word" not in message and "***" in message
    assert postgres_target(url) == "db.internal:6543/agent"
    assert postgres_target("postgresql://u:pw@[::1]/x") == "[::1]:5432/x"


async def test_sqlite_stays_the_default(isolated_env):
    from ui.backend import Backend
    from ui.store import ConversationStore

    settings = get_settings()
    assert settings.agent_checkpoint_url is None
    backend = Backend(settings)
    try:
        assert isinstance(await backend.ready(), ConversationStore)
        assert (isolated_env / "threads.sqlite").exists()
    finally:
        await backend.close()
