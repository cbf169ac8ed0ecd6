"""Helpers for the MCP tests: config entries for the notes server, its processes, and an HTTP instance."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT

NOTES_MODULE = "tests.mcp.notes_server"


def notes_spec(name: str, notes_dir: Path, *flags: str, env: dict[str, str] | None = None, **extra: Any) -> dict:
    """An `mcpServers` entry that runs the notes server over stdio as `--name NAME` (its marker in /proc)."""
    return {
        "command": sys.executable,
        "args": ["-m", NOTES_MODULE, "--name", name, *flags],
        "cwd": str(ROOT),
        "env": {"NOTES_DIR": str(notes_dir), **(env or {})},
        **extra,
    }


def write_note(notes_dir: Path, title: str, text: str) -> None:
    (notes_dir / "notes").mkdir(parents=True, exist_ok=True)
    (notes_dir / "notes" / f"{title}.txt").write_text(text, encoding="utf-8")


def _cmdline(pid: str) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _state_and_parent(pid: str) -> tuple[str, int]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def server_pids(marker: str) -> list[int]:
    """Live (not zombie) child processes of this test process whose command line has `marker` as an argument."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state, ppid = _state_and_parent(entry)
            cmd = _cmdline(entry)
        except (OSError, ValueError, IndexError):
            continue  # it exited while we looked
        if ppid == os.getpid() and state != "Z" and marker in cmd:
            found.append(int(entry))
    return sorted(found)


def cmdline_of(pid: int) -> list[str]:
    return _cmdline(str(pid))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def http_notes_server(notes_dir: Path, name: str = "notes", deadline_s: float = 30) -> Iterator[str]:
    """The notes server over streamable HTTP on 127.0.0.1 as a subprocess; yields its `/mcp` URL once it answers."""
    port = free_port()
    log = notes_dir / f"http-{name}.log"
    notes_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NOTES_DIR": str(notes_dir), "PYTHONPATH": str(ROOT)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", NOTES_MODULE, "--http", str(port), "--name", name],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + deadline_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the HTTP notes server exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                httpx.get(url, timeout=1)  # any HTTP answer (406 without the SSE accept header) means it is up
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the HTTP notes server did not answer: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)  # polling the server's port until it accepts connections
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
