"""Start, script and stop the real-vLLM test server (tests/conformance/vllm_app) from the main venv."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
PYTHON_VAR = "WORK_AGENT_VLLM_PYTHON"
DEFAULT_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
START_TIMEOUT_VAR = "WORK_AGENT_VLLM_START_TIMEOUT"
DEFAULT_START_TIMEOUT = 600.0
MAX_SERVERS_VAR = "WORK_AGENT_VLLM_MAX_SERVERS"
DEFAULT_MAX_SERVERS = 3
# Inherited variables that would change what the server does (VLLM_API_KEY turns on auth) or which Python runs.
DROPPED_ENV = ("VLLM_API_KEY", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
INSTALL = "python3 -m venv .venv-vllm && .venv-vllm/bin/pip install -r tests/conformance/requirements.txt"
MISSING = "needs vLLM {version} in .venv-vllm: " + INSTALL
MISSING_CUSTOM = "needs vLLM {version} at {var}={python}: {python} -m pip install -r tests/conformance/requirements.txt"
WRONG_VERSION = (
    "{python} has vLLM {found} but tests/conformance/requirements.txt pins {pinned}: "
    "{python} -m pip install -r tests/conformance/requirements.txt"
)
START_FAILED = "the real vLLM server ({flags}) {why}; its log is {log}:\n{tail}"
STOP_GRACE = 30.0
POLL = 0.2
_SECRET_FLAG = re.compile(r"(--api[-_]key(?:=|\s+))(\S+)")


class Unavailable(Exception):
    """The vLLM venv is missing or holds another vLLM than requirements.txt pins."""


class StartFailed(RuntimeError):
    """The server process exited, or never answered /health, during start-up."""


@dataclass
class Reply:
    """One scripted model output (the server's POST /_script reply): raw text, or exact token ids."""

    text: str = ""
    token_ids: list[int] | None = None
    error_after_tokens: int | None = None  # the engine fails the request after N tokens (HTTP 500 / SSE error)
    stall_after_tokens: int | None = None  # N tokens, then nothing until the client goes away (an abort)
    delay: float = 0.0  # seconds before each token


def pinned_version() -> str:
    """The vLLM version requirements.txt pins (`vllm==X`)."""
    found = re.search(r"^vllm==(\S+)", REQUIREMENTS.read_text(encoding="utf-8"), re.M)
    if not found:
        raise Unavailable(f"{REQUIREMENTS} pins no vllm==X")
    return found.group(1)


def vllm_python() -> Path:
    return Path(os.environ.get(PYTHON_VAR) or DEFAULT_PYTHON)


@cache
def check_installed() -> str:
    """The installed vLLM version; raises Unavailable (with the fix) when it is missing or not the pinned one."""
    pinned = pinned_version()
    python = vllm_python()
    short = ".".join(pinned.split(".")[:2])
    missing = (
        MISSING.format(version=short)
        if python == DEFAULT_PYTHON
        else MISSING_CUSTOM.format(version=short, var=PYTHON_VAR, python=python)
    )
    if not python.exists():
        raise Unavailable(missing)
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('vllm'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        raise Unavailable(missing)
    found = probe.stdout.strip()
    if found != pinned:
        raise Unavailable(WRONG_VERSION.format(python=python, found=found, pinned=pinned))
    return found


def redact(text: str) -> str:
    """Hide the value of any --api-key in `text`."""
    return _SECRET_FLAG.sub(r"\1***", text)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RealVllm:
    """One real vLLM server process (`vllm serve` flags `flags`) on 127.0.0.1, with a scripted engine core."""

    def __init__(self, flags: Iterable[str], log_dir: Path) -> None:
        self.flags = tuple(flags)
        self.log_dir = log_dir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / "real-vllm.log"
        self.startup_seconds = 0.0
        self._started = 0.0
        self._http = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (`http://127.0.0.1:P/v1`)."""
        return f"{self.url}/v1"

    def start(self, timeout: float | None = None) -> RealVllm:
        """Start the process and return once /health answers 200 (retrying once if the port was taken)."""
        timeout = timeout or float(os.environ.get(START_TIMEOUT_VAR) or DEFAULT_START_TIMEOUT)
        for attempt in range(3):
            self._launch(attempt)
            try:
                self._wait_ready(timeout)
                return self
            except StartFailed as exc:
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
            except BaseException:  # Ctrl-C while starting: leave no server behind
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self, attempt: int) -> None:
        self.port = _free_port()
        self.log_path = self.log_dir / f"real-vllm-{self.port}-{attempt}.log"
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        command = [str(vllm_python()), "-m", "tests.conformance.vllm_app", "--port", str(self.port), *self.flags]
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            log.write(redact(" ".join(command)).encode() + b"\n")
            log.flush()
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._started = started

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = self._started + timeout
        while True:
            if self.process.poll() is not None:
                raise StartFailed(self._failure(f"exited with code {self.process.returncode} while starting"))
            try:
                if self._http.get(f"{self.url}/health", timeout=2).status_code == 200:
                    self.startup_seconds = time.monotonic() - self._started
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise StartFailed(self._failure(f"did not answer /health within {timeout:.0f} s"))
            time.sleep(POLL)  # a poll: the process offers no readiness event

    def _failure(self, why: str) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        tail = "\n".join(line for line in lines if not line.startswith("W1"))  # drop torch's import warnings
        return START_FAILED.format(
            flags=redact(" ".join(self.flags)) or "no flags",
            why=why,
            log=self.log_path,
            tail=redact("\n".join(tail.splitlines()[-15:])),
        )

    # --- the control API -------------------------------------------------------------------------------
    def script(self, *replies: Reply | str | dict[str, Any]) -> None:
        """Queue replies for the next generation requests (FIFO); a str means Reply(text=str).

        Each request the engine core receives takes one (`n` > 1 takes n); when none is left the core answers
        from the demo brain (graph.demo.model.default_reply) over the decoded prompt.
        """
        body = [{"text": r} if isinstance(r, str) else asdict(r) if isinstance(r, Reply) else r for r in replies]
        response = self._http.post(f"{self.url}/_script", json={"replies": body})
        response.raise_for_status()

    def reset(self) -> None:
        """Forget queued replies, recorded requests and aborts."""
        self._http.post(f"{self.url}/_reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        """`requests` (id, decoded `prompt`, `prompt_tokens`, `max_tokens`, `reply`, `output_token_ids`,
        `finish_reason`, `stop_reason`), `aborts` (request_id, whether it was still running, tokens emitted),
        `running`, `scripted_left`."""
        response = self._http.get(f"{self.url}/_stats")
        response.raise_for_status()
        return dict(response.json())

    def wait_stats(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """Poll stats() until `predicate` holds (e.g. an abort arrived); AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.stats()
            if predicate(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"server stats never matched within {timeout} s: {current}")
            time.sleep(0.05)

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """Resident memory of the server process now (`VmHWM`: its peak), from Linux /proc."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        """SIGTERM (vLLM's graceful shutdown), then SIGKILL after a grace period; our process group only."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_GRACE)

    def close(self) -> None:
        self.stop()
        self._http.close()


class ServerPool:
    """One running server per distinct flag tuple, shared by every test that asks for the same flags.

    At most `WORK_AGENT_VLLM_MAX_SERVERS` (default 3, about 1.5 GB each) run at once; starting another
    stops the least recently used.
    """

    def __init__(self, log_root: Path) -> None:
        self.log_root = log_root
        self.max_servers = int(os.environ.get(MAX_SERVERS_VAR) or DEFAULT_MAX_SERVERS)
        self._servers: OrderedDict[tuple[str, ...], RealVllm] = OrderedDict()
        self.starts: list[tuple[tuple[str, ...], float]] = []

    def get(self, flags: tuple[str, ...]) -> RealVllm:
        check_installed()
        server = self._servers.get(flags)
        if server is not None and server.process is not None and server.process.poll() is None:
            self._servers.move_to_end(flags)
            return server
        if server is not None:
            server.close()
            del self._servers[flags]
        while len(self._servers) >= self.max_servers:
            _, oldest = self._servers.popitem(last=False)
            oldest.close()
        log_dir = self.log_root / f"server-{len(self.starts)}"
        log_dir.mkdir(parents=True, exist_ok=True)
        server = RealVllm(flags, log_dir).start()
        self.starts.append((flags, server.startup_seconds))
        self._servers[flags] = server
        return server

    def close(self) -> None:
        while self._servers:
            _, server = self._servers.popitem()
            server.close()
