"""Every --demo path works offline and says so: run, doctor, the UI's demo endpoint, `work-agent studio`."""

from __future__ import annotations

import json
import os
import socket

import pytest
from click.testing import CliRunner

from configs.settings import get_settings, load_settings
from graph.demo.openmeteo import DEMO_NOTICE
from tests.conftest import run_cli

DEMO_MARK = f"[{DEMO_NOTICE}]"
NOWHERE = "http://127.0.0.1:9/v1"


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


@pytest.mark.parametrize(
    ("question", "city", "place"),
    [
        ("What time is it in Tokyo, and what's the weather there?", "Tokyo", "Tokyo, Japan"),
        ("查询北京的天气", "北京", "北京"),
    ],
)
def test_run_demo_weather_is_a_real_answer_marked_demo_data(isolated_env, question, city, place):
    # A .env that points the weather elsewhere and sets a key (OpenWeatherMap) must not leak into the demo.
    (isolated_env / ".env").write_text(
        "WEATHER_GEOCODING_URL=http://127.0.0.1:9/v1/search\nWEATHER_API_KEY=owm-key-not-for-the-demo\n"
        f'AGENT_ENDPOINTS=[{{"base_url": "{NOWHERE}"}}]\n',
        encoding="utf-8",
    )
    proc = run_cli("run", "--demo", "--json", question)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    [weather] = [s for s in out["steps"] if s["kind"] == "tool" and s["name"] == "get_city_weather"]
    assert (weather["status"], weather["arguments"]) == ("ok", {"city": city})
    assert weather["result"].startswith(f"{DEMO_MARK} {place}") and "°C" in weather["result"]
    assert DEMO_MARK in out["answer"] and "humidity" in out["answer"]
    assert "the weather is demo data" in proc.stderr
    no_traceback(proc)


def test_run_demo_shows_the_demo_marker_in_the_terminal(isolated_env):
    proc = run_cli("run", "--demo", "查询北京的天气")
    assert proc.returncode == 0, proc.stderr
    assert DEMO_MARK in proc.stdout  # the streamed answer
    assert "✓ get_city_weather" in proc.stderr and "[demo data" in proc.stderr  # the tool step


def test_run_demo_calculates_with_function_names(isolated_env):
    proc = run_cli("run", "--demo", "--json", "What is sqrt(2) * 10?")
    assert proc.returncode == 0, proc.stderr
    [calc] = [s for s in json.loads(proc.stdout)["steps"] if s["kind"] == "tool"]
    assert (calc["arguments"], calc["result"]) == ({"expression": "sqrt(2) * 10"}, "14.142135623731")


def test_offline_weather_names_the_host_instead_of_an_outage(vllm, monkeypatch):
    monkeypatch.setenv("WEATHER_GEOCODING_URL", "http://127.0.0.1:9/v1/search")  # nothing listens on port 9
    proc = run_cli("run", "--json", "查询北京的天气")
    assert proc.returncode == 0, proc.stderr
    [weather] = [s for s in json.loads(proc.stdout)["steps"] if s["kind"] == "tool"]
    assert weather["status"] == "error"
    assert weather["error"].startswith("Error: cannot reach 127.0.0.1 (connection refused): no internet connection?")
    assert "WEATHER_GEOCODING_URL" in weather["error"] and "unavailable" not in weather["error"]


def test_doctor_demo_checks_a_scripted_server(isolated_env):
    proc = run_cli("doctor", "--demo", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert "127.0.0.1" in json.dumps(report) and NOWHERE not in json.dumps(report)
    assert "demo model (scripted, no GPU)" in proc.stderr
    text = run_cli("doctor", "--demo")
    assert text.returncode == 0 and "The agent can work with this endpoint." in text.stdout


def test_doctor_without_demo_still_checks_the_configured_endpoint(isolated_env):
    proc = run_cli("doctor")
    assert proc.returncode == 3 and "127.0.0.1:9" in proc.stdout + proc.stderr


def test_ui_demo_endpoint_points_the_model_and_the_weather_at_the_stand_in(isolated_env, monkeypatch):
    from ui.app import endpoint

    monkeypatch.setenv("AGENT_ENDPOINTS", json.dumps([{"base_url": NOWHERE}]))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-server-key")
    settings = load_settings()
    with endpoint(settings, demo=True) as (demo, label):
        assert [e.base_url for e in demo.endpoints()] == [demo.openai_api_base]
        assert demo.openai_api_base.startswith("http://127.0.0.1:")
        assert demo.openai_api_key.get_secret_value() == "EMPTY"  # the real server's key stays with it
        assert demo.weather_forecast_url.endswith("/open-meteo/v1/forecast")
        tool_settings = get_settings()  # what the weather tool reads when it is called
        assert (tool_settings.weather_geocoding_url, tool_settings.weather_forecast_url) == (
            demo.weather_geocoding_url,
            demo.weather_forecast_url,
        )
        assert tool_settings.weather_api_key is None
        assert label is not None and "demo data" in label
        from tools.weather import get_city_weather

        result = await_weather(get_city_weather, "Tokyo")
        assert result.startswith(f"{DEMO_MARK} Tokyo, Japan")
    assert "WEATHER_FORECAST_URL" not in os.environ
    assert get_settings().weather_forecast_url == "https://api.open-meteo.com/v1/forecast"


def await_weather(tool, city: str) -> str:
    """Call the tool the way the graph does (its coroutine), from a synchronous test."""
    import asyncio

    return asyncio.run(tool.ainvoke({"city": city}))


# ---------------------------------------------------------------- `work-agent studio` before it starts a server


def test_studio_without_the_langgraph_cli_says_how_to_install_it(monkeypatch):
    import importlib.util
    import sys

    from graph.cli import cli

    module = sys.modules["graph.cli.studio"]  # `graph.cli.studio` is also the name of the command
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "langgraph_api" else real(name, *a)
    )
    result = CliRunner().invoke(cli, ["studio", "--demo"])
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {module.NOT_INSTALLED}"
    assert 'pip install -e ".[dev]"' in result.output


def test_studio_refuses_a_port_in_use_instead_of_moving(isolated_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("studio", "--demo", "--port", str(port))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"Error: Port {port} on 127.0.0.1 is in use (another `langgraph dev`?). "
        "Stop that server, or pass --port."
    )


def test_studio_env_lets_the_process_environment_win_over_dotenv():
    from graph.cli.studio import child_env

    env = child_env(
        {"OPENAI_API_BASE": "http://demo/v1", "PATH": "/bin"},
        {"OPENAI_API_BASE": "http://from-dotenv/v1", "LANGSMITH_API_KEY": "lsv2-x"},
    )
    assert env["OPENAI_API_BASE"] == "http://demo/v1" and env["LANGSMITH_API_KEY"] == "lsv2-x"
    assert env["LANGGRAPH_CLI_NO_ANALYTICS"] == "1" and env["LANGGRAPH_NO_VERSION_CHECK"] == "true"  # offline
    mine = child_env({"LANGGRAPH_CLI_NO_ANALYTICS": "0"}, {})
    assert mine["LANGGRAPH_CLI_NO_ANALYTICS"] == "0"


def test_studio_config_drops_the_env_file_and_works_from_any_directory(isolated_env):
    from pathlib import Path

    from graph.cli.studio import ROOT, _config

    with _config() as path:
        spec = json.loads(path.read_text())
        assert "env" not in spec and "env" in json.loads((ROOT / "langgraph.json").read_text())
        module, _, variable = spec["graphs"]["agent"].partition(":")
        assert Path(module).is_absolute() and Path(module).is_file() and variable == "graph"
        assert spec["dependencies"] == [str(ROOT)]
    assert not path.exists()
