"""The UI's launcher: loopback detection for the no-login warning, and bad options exit 2 with one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ui.app import is_loopback, main


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.8.9.10", True),
        ("0.0.0.0", False),
        ("192.168.1.20", False),
        ("::", False),
        ("gpu-box.lan", False),
        ("", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_bad_auth_exits_2_without_echoing_it():
    result = CliRunner().invoke(main, ["--auth", "justauser"])
    assert result.exit_code == 2
    assert "Invalid setting UI_AUTH" in result.output and "justauser" not in result.output


def test_a_thread_store_that_cannot_be_opened_stops_the_ui_with_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "ui.app", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": str(root),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "AGENT_CHECKPOINT_URL": "postgresql://agent:pw-SECRET-42@127.0.0.1:1/agent",
        },
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("Error: Cannot reach the Postgres")
    assert "AGENT_CHECKPOINT_URL" in proc.stderr and "pw-SECRET-42" not in proc.stderr + proc.stdout
