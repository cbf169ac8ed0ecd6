"""Logging setup: text or JSON lines on stderr, one line per step, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator

import pytest

from configs.settings import Settings, load_settings
from graph.obs.logs import HANDLER_NAME, NOISY_LOGGERS, Redactor, log_step, secrets_of, setup_logging
from graph.trace import Step

API_KEY = "sk-test-SECRET123"
ENDPOINT_KEY = "ep-key-ALPHA777"
WEATHER_KEY = "weather-KEY-4242"
UI_PASSWORDS = ["wonder-PASS-99", "builder-PASS-88"]
PG_PASSWORD = "pg-PASS-x@y"  # percent-encoded in the URL
SECRETS = [API_KEY, ENDPOINT_KEY, WEATHER_KEY, *UI_PASSWORDS, PG_PASSWORD, "pg-PASS-x%40y"]
LINE_FIELDS = {
    "thread_id",
    "interface",
    "turn",
    "kind",
    "node",
    "endpoint",
    "duration_ms",
    "status",
    "error",
    "skipped",
}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave the root logger (and the quieted ones) as the test found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv(
        "AGENT_ENDPOINTS",
        json.dumps(
            [
                {"base_url": "http://gpu1:8000/v1", "api_key": ENDPOINT_KEY},
                {"base_url": "http://gpu2:8000/v1"},
            ]
        ),
    )
    monkeypatch.setenv("WEATHER_API_KEY", WEATHER_KEY)
    monkeypatch.setenv("UI_AUTH", f"alice:{UI_PASSWORDS[0]},bob:{UI_PASSWORDS[1]}")
    monkeypatch.setenv("AGENT_CHECKPOINT_URL", "postgresql://agent:pg-PASS-x%40y@db:5432/agent")


def configured(fmt: str = "text", level: str = "INFO", **kw: object) -> tuple[Settings, io.StringIO]:
    settings = load_settings(agent_log_format=fmt, agent_log_level=level, **kw)
    out = io.StringIO()
    setup_logging(settings, stream=out)
    return settings, out


def model_step(**kw: object) -> Step:
    return Step(
        kind="model",
        turn=2,
        node="plan",
        started_at=time.time(),
        duration_ms=1234.56,
        model="qwen3",
        ttft_ms=210.0,
        tokens_in=120,
        tokens_out=18,
        tool_calls=["calculate"],
        endpoint="gpu1:8000",
        skipped=["gpu0:8000: timed out"],
        **kw,
    )


def tool_step(**kw: object) -> Step:
    return Step(
        kind="tool",
        turn=2,
        node="call_tool",
        started_at=time.time(),
        duration_ms=8.0,
        name="calculate",
        arguments={"expression": "1/0"},
        **kw,
    )


def test_secrets_of_collects_every_secret(secret_env):
    found = secrets_of(load_settings())
    assert set(SECRETS) <= set(found)
    assert "EMPTY" not in found


def test_short_and_empty_keys_are_not_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "abc")
    assert secrets_of(load_settings()) == []


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_in_any_log_output(secret_env, fmt):
    _, out = configured(fmt)
    log = logging.getLogger("work_agent.test")
    log.warning(f"calling with key {API_KEY} and {ENDPOINT_KEY}")
    log.warning("weather %s, login %r, db %s", WEATHER_KEY, {"password": UI_PASSWORDS[0]}, PG_PASSWORD)
    log.warning(
        "extras",
        extra={
            "key": UI_PASSWORDS[1],
            "nested": {"keys": [API_KEY, WEATHER_KEY]},
            "error": RuntimeError(f"denied for {ENDPOINT_KEY}"),
        },
    )
    log.warning("bad %s args", API_KEY, ENDPOINT_KEY)  # too many args: logged anyway, still redacted
    try:
        raise PermissionError(f"401 for key {API_KEY} on postgresql://agent:{PG_PASSWORD}@db/agent")
    except PermissionError:
        log.exception("request failed")
    log.error("explicit", exc_info=ValueError(f"weather key {WEATHER_KEY} rejected"))
    log.warning("header Authorization: Bearer abc.DEF-ghi_123 and a stray sk-live-0123456789abcdef")
    log_step(tool_step(status="error", error=f"upstream said: bad key {WEATHER_KEY}"), thread_id="t-1", interface="cli")
    text = out.getvalue()
    assert text.count("***") >= 12
    for secret in [*SECRETS, "abc.DEF-ghi_123", "sk-live-0123456789abcdef"]:
        assert secret not in text, secret
    assert "Bearer ***" in text and "PermissionError" in text and "request failed" in text
    assert "bad %s args" in text  # the format string and its (redacted) args, as logging itself would


def test_other_handlers_see_the_record_redacted(secret_env, caplog):
    configured()
    logging.getLogger("work_agent.test").warning("key %s", API_KEY)
    assert API_KEY not in caplog.text and "key ***" in caplog.text


def test_redactor_masks_longer_secrets_first():
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact("x abcdefgh y abcd") == "x *** y ***"


def test_json_lines_parse_and_carry_the_step_fields():
    _, out = configured("json")
    log_step(model_step(), thread_id="thread-9", interface="ui")
    log_step(tool_step(status="error", error="division by zero", recovered=True), thread_id="thread-9", interface="ui")
    logging.getLogger("work_agent.test").warning("plain %s", "message")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 3
    model, tool, plain = lines
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert LINE_FIELDS <= set(model) and LINE_FIELDS <= set(tool)
    assert model | {"ts": None} == {
        "ts": None,
        "level": "INFO",
        "logger": "work_agent.steps",
        "msg": "model qwen3 ok in 1235 ms",
        "thread_id": "thread-9",
        "interface": "ui",
        "turn": 2,
        "kind": "model",
        "node": "plan",
        "model": "qwen3",
        "ttft_ms": 210.0,
        "tokens_in": 120,
        "tokens_out": 18,
        "tool_calls": ["calculate"],
        "endpoint": "gpu1:8000",
        "duration_ms": 1234.6,
        "status": "ok",
        "error": None,
        "skipped": ["gpu0:8000: timed out"],
    }
    assert (tool["kind"], tool["tool"], tool["status"], tool["error"], tool["recovered"], tool["endpoint"]) == (
        "tool",
        "calculate",
        "error",
        "division by zero",
        True,
        None,
    )
    assert "expression" not in out.getvalue()  # arguments may hold user data: not logged
    assert plain["msg"] == "plain message" and plain["level"] == "WARNING"


def test_text_is_the_default_and_human_readable():
    settings = load_settings(agent_log_level="INFO")
    assert settings.agent_log_format == "text"
    out = io.StringIO()
    setup_logging(settings, stream=out)
    log_step(model_step(), thread_id="thread-9", interface="cli")
    line = out.getvalue().rstrip("\n")
    assert "\n" not in line and not line.startswith("{")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO work_agent\.steps: model qwen3 ok in 1235 ms ", line)
    for part in (
        "thread_id=thread-9",
        "interface=cli",
        "turn=2",
        "node=plan",
        "endpoint=gpu1:8000",
        "duration_ms=1234.6",
        "status=ok",
        'skipped=["gpu0:8000: timed out"]',
    ):
        assert part in line


def test_level_filters_and_setup_is_idempotent():
    settings, out = configured("text", level="WARNING")
    setup_logging(settings, stream=out)
    setup_logging(settings, stream=out)
    root = logging.getLogger()
    assert [h.get_name() for h in root.handlers].count(HANDLER_NAME) == 1
    log_step(model_step(), thread_id="t", interface="cli")  # INFO: below WARNING
    logging.getLogger("work_agent.test").warning("once")
    assert out.getvalue().count("once") == 1 and "qwen3" not in out.getvalue()
    assert root.level == logging.WARNING


def test_http_client_chatter_only_at_debug():
    configured(level="INFO")
    assert logging.getLogger("httpx").level == logging.WARNING
    configured(level="DEBUG")
    assert logging.getLogger("httpx").level == logging.DEBUG


def test_logs_go_to_stderr(capsys):
    setup_logging(load_settings(agent_log_level="INFO"))
    logging.getLogger("work_agent.test").info("to stderr")
    captured = capsys.readouterr()
    assert "to stderr" in captured.err and "to stderr" not in captured.out
