"""Settings: env and .env precedence, defaults, aliases, and one-line errors that never show secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from configs.settings import ConfigError, Settings, env_names, load_settings
from tests.conftest import ROOT


def test_defaults(monkeypatch):
    monkeypatch.delenv("OPENAI_API_BASE")
    s = load_settings()
    assert s.openai_api_base == "http://localhost:8000/v1"
    assert s.openai_api_key.get_secret_value() == "EMPTY"
    assert s.agent_model is None and s.weather_api_key is None
    assert s.agent_max_steps == 8


def test_env_wins_over_dotenv_and_dotenv_is_read(isolated_env, monkeypatch):
    (isolated_env / ".env").write_text("AGENT_MODEL=from-dotenv\nAGENT_MAX_STEPS=5\nUNRELATED=1\n")
    monkeypatch.setenv("AGENT_MAX_STEPS", "3")
    s = load_settings()
    assert s.agent_model == "from-dotenv" and s.agent_max_steps == 3


def test_openai_base_url_alias_and_trailing_slash(monkeypatch):
    monkeypatch.delenv("OPENAI_API_BASE")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box:8000/v1/")
    assert load_settings().openai_api_base == "http://gpu-box:8000/v1"


def test_overrides_beat_env():
    s = load_settings(openai_api_base="http://other:1/v1", agent_max_steps=2, agent_model=None)
    assert s.openai_api_base == "http://other:1/v1" and s.agent_max_steps == 2


def test_blank_values_mean_unset(isolated_env):
    (isolated_env / ".env").write_text("AGENT_MODEL=\nWEATHER_API_KEY=\nOPENAI_API_KEY=\nUI_AUTH=\n")
    s = load_settings()
    assert s.agent_model is None and s.weather_api_key is None and s.ui_auth is None
    assert s.openai_api_key.get_secret_value() == "EMPTY"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("AGENT_MAX_STEPS", "-3", "Invalid setting AGENT_MAX_STEPS=-3: Input should be greater than or equal to 1"),
        ("OPENAI_API_BASE", "localhost:8000", "Invalid setting OPENAI_API_BASE=localhost:8000: must be an http"),
        ("OPENAI_BASE_URL", "ftp://x", "Invalid setting OPENAI_BASE_URL=ftp://x"),
        ("AGENT_TEMPERATURE", "hot", "Invalid setting AGENT_TEMPERATURE=hot"),
        ("AGENT_REQUEST_TIMEOUT", "0", "Invalid setting AGENT_REQUEST_TIMEOUT=0"),
        ("UI_CONCURRENCY_LIMIT", "0", "Invalid setting UI_CONCURRENCY_LIMIT=0"),
    ],
)
def test_invalid_values_give_one_line_naming_the_variable(monkeypatch, var, value, expected):
    if var == "OPENAI_BASE_URL":
        monkeypatch.delenv("OPENAI_API_BASE")
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith(expected) and "\n" not in message and message.endswith("environment.")


def test_secrets_never_appear_in_errors_or_repr(monkeypatch):
    monkeypatch.setenv("UI_AUTH", "admin-without-password")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "admin-without-password" not in str(err.value) and "UI_AUTH" in str(err.value)
    monkeypatch.setenv("UI_AUTH", "admin:hunter2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    s = load_settings()
    assert "hunter2" not in repr(s) and "sk-very-secret" not in repr(s)
    assert s.ui_credentials() == [("admin", "hunter2")]


def test_env_example_matches_the_settings_class():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", text, re.M))
    primary = {env_names(name)[0] for name in Settings.model_fields}
    assert listed == primary


def test_env_example_loads_as_is(isolated_env, monkeypatch):
    monkeypatch.delenv("AGENT_CHECKPOINT_DB")
    (isolated_env / ".env").write_text((ROOT / ".env.example").read_text())
    s = load_settings()
    assert s.agent_checkpoint_db == Path.home() / ".local/share/work-agent/threads.sqlite"
