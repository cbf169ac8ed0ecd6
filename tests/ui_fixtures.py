"""Shared fixtures of the web UI tests: the real app as a subprocess, and Debian's Chromium via Playwright.

`tests/test_ui_browser.py` and `tests/test_ui_api.py` import the fixtures they use from here. The app runs
exactly as a user starts it (`python -m ui.app --host 127.0.0.1 --port N`), once per test module, against
the session's fake vLLM server (`demo_server` in conftest; tests reset it through the `vllm` fixture).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import ROOT, SETTING_VARS
from tests.system import require_tool

CHROMIUM = "chromium"  # Debian's package and program (/usr/bin/chromium)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
APP_START_TIMEOUT = 60.0
UI_TIMEOUT_MS = 20_000

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], T], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def app_env(demo_server: Any, workdir: Path, **overrides: str) -> dict[str, str]:
    """The environment a user would have: no stray settings, the fake vLLM server, a private checkpoint file."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env.update(
        {
            "OPENAI_API_BASE": demo_server.base_url,
            "WEATHER_GEOCODING_URL": demo_server.geocoding_url,
            "WEATHER_FORECAST_URL": demo_server.forecast_url,
            "AGENT_CHECKPOINT_DB": str(workdir / "threads.sqlite"),
            "AGENT_MAX_RETRIES": "0",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "LANGSMITH_TRACING": "false",
            "PYTHONPATH": str(ROOT),
            "PYTHONIOENCODING": "utf-8",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    env.update(overrides)
    return env


class UiApp:
    """`python -m ui.app` in a subprocess, with its log in `workdir/app.log`."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"app-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> UiApp:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ui.app", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = APP_START_TIMEOUT) -> UiApp:
        """Poll GET / until it answers 200 (or the process dies, or the deadline passes)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                if not self.alive():
                    raise RuntimeError(f"the UI exited with status {self.proc.returncode}:\n{self.log()}")
                try:
                    if http.get(self.url + "/").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the UI did not answer on {self.url} within {timeout:g}s:\n{self.log()}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_app(env: dict[str, str], workdir: Path) -> UiApp:
    app = UiApp(env, workdir).start()
    try:
        return app.wait_ready()
    except BaseException:
        app.stop()
        raise


@pytest.fixture(scope="module")
def ui_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's working directory (and checkpoint file) for the whole module."""
    return tmp_path_factory.mktemp("ui-app")


@pytest.fixture(scope="module")
def ui_app(demo_server: Any, ui_workdir: Path) -> Iterator[UiApp]:
    """One running app per test module, pointed at the session's fake vLLM server."""
    app = start_app(app_env(demo_server, ui_workdir), ui_workdir)
    try:
        yield app
    finally:
        app.stop()


# --- browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, launched once per module (Playwright cannot download browsers here)."""
    executable = require_tool(CHROMIUM, CHROMIUM)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def start_page(chromium: Any, url: str) -> Any:
    """Start loading `url` in a new browser context (fresh localStorage, so a new conversation owner)."""
    context = chromium.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    page.goto(url, wait_until="commit")
    return page


def settle_page(page: Any) -> Any:
    """Wait until the page is rendered and its load event (owner id, sidebar, endpoint check) is done."""
    # The load event checks the endpoint (chat requests to the fake server) and gives this browser its
    # owner id: let it finish first, so it neither consumes a test's scripted replies nor shows up as the
    # test's last request, and the test's conversations belong to this browser. (wait_for_function polls
    # every animation frame; `expect` backs off up to 1 s between tries.)
    page.wait_for_function(
        """() => {
            const status = document.querySelector('#status');
            return document.querySelector('#question textarea') !== null && status !== null
                && status.innerText.trim() !== '' && !status.innerText.includes('Checking the endpoint');
        }"""
    )
    return page


def open_page(chromium: Any, url: str) -> Any:
    """A loaded page in a new browser context."""
    return settle_page(start_page(chromium, url))


@pytest.fixture
def open_ui_pages(chromium: Any, ui_app: UiApp, vllm: Any) -> Iterator[Callable[[int], list[Any]]]:
    """Open `count` pages on the module's app, each in its own browser context, loading in parallel."""
    contexts: list[Any] = []

    def make(count: int = 1) -> list[Any]:
        pages = [start_page(chromium, ui_app.url) for _ in range(count)]
        contexts.extend(page.context for page in pages)
        return [settle_page(page) for page in pages]

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def ui_page(open_ui_pages: Callable[[int], list[Any]]) -> Any:
    """One loaded page in a fresh browser context, the fake server reset."""
    return open_ui_pages(1)[0]
