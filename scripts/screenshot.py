#!/usr/bin/env python3
"""Make the README's picture, docs/screenshot.png: the web UI in --demo mode answering the headline question.

    python scripts/screenshot.py                      # writes docs/screenshot.png
    python scripts/screenshot.py --out /tmp/ui.png    # somewhere else

Starts `python -m ui.app --demo` on 127.0.0.1 (a private conversation file, so the sidebar shows only this
conversation), drives Debian's Chromium with Playwright at a fixed viewport, asks the question, waits for the
turn to finish (DOM conditions, polled), opens its plan step and takes the picture. Needs `.[dev]` and
`apt-get install chromium fonts-noto-cjk fonts-noto-color-emoji`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "screenshot.png"
QUESTION = "What time is it in Tokyo, and what's the weather there?"  # the README's headline question
WIDTH, HEIGHT = 1600, 1080  # the fixed viewport, and so the picture's size
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APP_START_S = 90.0
PAGE_TIMEOUT_MS = 90_000

NO_CHROMIUM = "needs chromium: apt-get install chromium fonts-noto-cjk fonts-noto-color-emoji"
NO_PLAYWRIGHT = 'needs Playwright: pip install -e ".[dev]"'
APP_DIED = "the UI exited with status {code} before it answered; its log is {log}"
APP_SLOW = "the UI did not answer on {url} within {seconds:g} s; its log is {log}"
PAGE_SLOW = "timed out waiting for {what} ({error}); the UI's log is {log}"
CANNOT_WRITE = "cannot write {path}: {error}"

# Ready: the question box is there and the load event's endpoint check has finished.
PAGE_READY = """() => {
    const status = document.querySelector('#status');
    return document.querySelector('#question textarea') !== null && status !== null
        && status.innerText.trim() !== '' && !status.innerText.includes('Checking the endpoint');
}"""
# Done: the trace panel names turn 1 (it is filled at the very end) and no event updates the chat.
TURN_DONE = """() => {
    const picker = document.querySelector('input[aria-label="Turn"]');
    const tracker = document.querySelector('#chatbot > [data-testid=status-tracker]');
    return picker !== null && picker.value.startsWith('Turn 1:') && tracker !== null
        && tracker.classList.contains('hide');
}"""
# The plan step is open and shows both tool calls of the turn.
PLAN_OPEN = """() => document.querySelectorAll(
    '#chatbot .thought-group .children > .thought-group > .title').length === 2"""
# Still: fonts (the CJK and emoji fallbacks) loaded, no animation or slide-open running, and the sidebar
# open beside the page, not over it (it is position: fixed; the page is padded to its right).
PAGE_STILL = """() => {
    if (document.fonts.status !== 'loaded') return false;
    if (document.getAnimations().some(a => a.playState === 'running')) return false;
    if (document.querySelector('#chatbot .content[style*="overflow: hidden"]')) return false;
    const sidebar = document.querySelector('.sidebar');
    if (!sidebar || !sidebar.classList.contains('open')) return false;
    const edge = sidebar.getBoundingClientRect().right;
    return edge > 0 && ['#chatbot', '#status', '#question'].every(
        id => document.querySelector(id).getBoundingClientRect().left >= edge);
}"""
# The turn's question at the top of the chat box, the page scrolled to the top.
SCROLL_TURN = """() => {
    const user = document.querySelector('#chatbot [data-testid=user]');
    const wrap = user.closest('.bubble-wrap');
    wrap.scrollTop = user.closest('.message-row').offsetTop - 36;
    window.scrollTo(0, 0);
}"""


class ScreenshotError(Exception):
    """A one-line reason the picture could not be made."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_env(workdir: Path) -> dict[str, str]:
    """The caller's environment with a private conversation file, no login and no telemetry."""
    env = {k: v for k, v in os.environ.items() if k != "UI_AUTH"}
    env.update(
        {
            "AGENT_CHECKPOINT_DB": str(workdir / "threads.sqlite"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "LANGSMITH_TRACING": "false",
            "PYTHONPATH": str(ROOT),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll GET / until it answers 200; the app dying or the deadline passing is an error."""
    deadline = time.monotonic() + APP_START_S
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            if proc.poll() is not None:
                raise ScreenshotError(APP_DIED.format(code=proc.returncode, log=log))
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ScreenshotError(APP_SLOW.format(url=url, seconds=APP_START_S, log=log))
            time.sleep(0.2)


def shoot(url: str, out: Path, chromium: str, log: Path) -> None:
    """Ask the question in a fresh browser, wait for the finished turn, open its plan, take the picture."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    def wait(page: Any, what: str, condition: str) -> None:
        try:
            page.wait_for_function(condition, timeout=PAGE_TIMEOUT_MS)
        except PlaywrightError as err:
            raise ScreenshotError(PAGE_SLOW.format(what=what, error=str(err).splitlines()[0], log=log)) from err

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(
                viewport={"width": WIDTH, "height": HEIGHT}, locale="en-US", device_scale_factor=1, color_scheme="light"
            )
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(url)
            wait(page, "the page and its endpoint check", PAGE_READY)
            box = page.locator("#question textarea")
            box.fill(QUESTION)
            box.press("Enter")
            wait(page, "the answer", TURN_DONE)
            page.locator("#chatbot .thought-group .title", has_text="🧠 Plan").first.click()
            wait(page, "the plan step to open", PLAN_OPEN)
            page.evaluate(SCROLL_TURN)
            wait(page, "the page to settle (fonts, animations, sidebar)", PAGE_STILL)
            # Written beside `out` and renamed over it: a failed run never leaves a broken picture.
            partial = out.with_name(f".{out.name}.partial.png")
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(partial))
                os.replace(partial, out)
            except (OSError, PlaywrightError) as err:
                partial.unlink(missing_ok=True)
                raise ScreenshotError(CANNOT_WRITE.format(path=out, error=str(err).splitlines()[0])) from err
        finally:
            browser.close()


def make_screenshot(out: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise ScreenshotError(NO_CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401 - only to say how to install it
    except ImportError as err:
        raise ScreenshotError(NO_PLAYWRIGHT) from err
    # The app's log outside the temporary directory: kept when something fails, for the message to name.
    fd, log_name = tempfile.mkstemp(prefix="work-agent-screenshot-", suffix=".log")
    log = Path(log_name)
    with tempfile.TemporaryDirectory(prefix="work-agent-screenshot-") as tmp, os.fdopen(fd, "wb") as log_file:
        workdir = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.app", "--demo", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=app_env(workdir),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(proc, url, log)
            shoot(url, out, chromium, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    log.unlink()  # only reached when the picture was made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        make_screenshot(args.out)
    except ScreenshotError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"wrote {args.out} ({WIDTH}x{HEIGHT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
