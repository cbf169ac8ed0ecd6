"""Shared fixtures: an isolated environment per test and one vLLM-faithful demo server per session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import AliasChoices

from configs.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
SETTING_VARS = [
    str(name)
    for f in Settings.model_fields.values()
    if isinstance(f.validation_alias, AliasChoices)
    for name in f.validation_alias.choices
]


# `slow` (pyproject.toml) leaves a test out of the fast loop, `python -m pytest -q -m "not slow"`. The browser,
# router, Postgres, fault-matrix and fuzzing modules mark themselves; these are marked here, by what they use.
SLOW_MODULES = {
    "test_cli.py": "the real CLI as a subprocess, per test",
    "test_cli_tools.py": "the real CLI with MCP server processes, per test",
    "test_batch.py": "batch runs through the real CLI (kill -9, Ctrl-C, resume)",
    "test_demo_paths.py": "every --demo path through the real CLI",
    "test_studio.py": "every test starts `langgraph dev`",
}
SLOW_FIXTURES = {
    "chromium": "drives Debian's Chromium (also marked `browser`)",
    "ui_app": "starts the web UI as a subprocess",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow groups above `slow`, and every test that drives Chromium `browser` too."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.path.name in SLOW_MODULES or fixtures & SLOW_FIXTURES.keys():
            item.add_marker(pytest.mark.slow)
        if "chromium" in fixtures:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No real .env, no real endpoint, a private checkpoint file; the model URL points at nothing."""
    for name in SETTING_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AGENT_CHECKPOINT_DB", str(tmp_path / "threads.sqlite"))
    monkeypatch.setenv("AGENT_MAX_RETRIES", "0")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    get_settings.cache_clear()
    from graph import model

    model._RESOLVED.clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def demo_server() -> Iterator[object]:
    """One demo server for the session (tests reset it)."""
    from graph.demo.server import DemoServer

    with DemoServer() as server:
        yield server


@pytest.fixture
def vllm(demo_server, monkeypatch: pytest.MonkeyPatch):
    """The demo server, reset, with the environment pointing the agent and the weather tool at it."""
    from graph.demo.server import DemoConfig

    demo_server.reset()
    demo_server.config = DemoConfig()
    monkeypatch.setenv("OPENAI_API_BASE", demo_server.base_url)
    monkeypatch.setenv("WEATHER_GEOCODING_URL", f"{demo_server.url}/open-meteo/v1/search")
    monkeypatch.setenv("WEATHER_FORECAST_URL", f"{demo_server.url}/open-meteo/v1/forecast")
    get_settings.cache_clear()
    return demo_server


def run_cli(
    *args: str, input: str | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m graph.cli ARGS` as a user would, in the test's environment and cwd."""
    return subprocess.run(
        [sys.executable, "-m", "graph.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8", **(env or {})},
    )
