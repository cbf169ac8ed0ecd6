"""Logging to stderr as text or JSON lines, with every secret from the settings redacted, and one line per step."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from pythonjsonlogger.json import JsonFormatter

from configs.secrets import extra_secrets
from configs.settings import Settings
from graph.trace import Step

MASK = "***"
HANDLER_NAME = "work-agent"
STEP_LOGGER = "work_agent.steps"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = {"asctime": "ts", "levelname": "level", "name": "logger", "message": "msg"}
NOISY_LOGGERS = ("httpx", "httpcore")  # one INFO line per HTTP request; shown only at DEBUG
MIN_SECRET = 4
MAX_ERROR = 1000
TOKEN_PATTERNS = [
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), MASK),
]
STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

log = logging.getLogger(STEP_LOGGER)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold: API keys, UI passwords, the checkpoint URL's password."""
    values = [settings.openai_api_key.get_secret_value()]
    values += [e.key() for e in settings.endpoints()]
    if settings.weather_api_key is not None:
        values.append(settings.weather_api_key.get_secret_value())
    values += [password for _, password in settings.ui_credentials()]
    if settings.agent_checkpoint_url is not None:
        password = urlsplit(settings.agent_checkpoint_url.get_secret_value()).password or ""
        values += [password, unquote(password)]
    return sorted({v for v in values if v != "EMPTY" and len(v) >= MIN_SECRET}, key=len, reverse=True)


class Redactor(logging.Filter):
    """Replace secrets and token-shaped strings with *** in a record's message, args, extras and traceback."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with every secret (the settings', and MCP servers' env and headers) and Bearer/sk- token masked."""
        for secret in sorted({*self.secrets, *extra_secrets()}, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern, repl in TOKEN_PATTERNS:
            text = pattern.sub(repl, text)
        return text

    def scrub(self, value: Any) -> Any:
        """A value with every string in it redacted (numbers, booleans and None kept as they are)."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return [self.scrub(v) for v in value]
        return self.redact(str(value))

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; drop it only if redaction itself fails (e.g. at interpreter exit)."""
        try:
            return self._redact_record(record)
        except Exception:  # noqa: BLE001 - an unredacted line could leak a key; losing it cannot
            return False

    def _redact_record(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            record.msg = self.scrub(record.msg)
        else:
            record.msg = self.redact(_message(record))
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in STANDARD_ATTRS:
                setattr(record, key, self.scrub(value))
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None  # formatters would render the raw exception again
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-args: keep what there is rather than raise in the caller
        return f"{record.msg} {record.args!r}"


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields passed with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in STANDARD_ATTRS}


class TextFormatter(logging.Formatter):
    """The usual human-readable line, with any extra fields appended as key=value."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redactor = redactor

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        """The line, then the non-empty extras."""
        pairs = [f"{k}={_text_value(v)}" for k, v in extras(record).items() if v not in (None, "", [])]
        return " ".join([super().formatMessage(record), *pairs])

    def format(self, record: logging.LogRecord) -> str:
        """Format, then redact the whole line once more."""
        return self.redactor.redact(super().format(record))


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, msg, then the extras."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields=JSON_FIELDS, json_ensure_ascii=False
        )
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """The record's time as 2025-01-31T12:00:00.123Z."""
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """Format, then redact the whole line once more."""
        return self.redactor.redact(super().format(record))


def setup_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Log to stderr at AGENT_LOG_LEVEL as AGENT_LOG_FORMAT, secrets redacted; calling again replaces it."""
    redactor = Redactor(secrets_of(settings))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(redactor)
    json_lines = settings.agent_log_format == "json"
    handler.setFormatter(JsonLineFormatter(redactor) if json_lines else TextFormatter(redactor))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.handlers.remove(handler)  # first, so its filter redacts the record before any other handler sees it
    root.handlers.insert(0, handler)
    root.setLevel(settings.agent_log_level)
    quiet = logging.DEBUG if settings.agent_log_level == "DEBUG" else logging.WARNING
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    return handler


def step_fields(step: Step) -> dict[str, Any]:
    """The fields of one step's log line (no arguments or results: they may hold user data)."""
    fields: dict[str, Any] = {"turn": step.turn, "kind": step.kind, "node": step.node}
    if step.kind == "model":
        fields.update(
            model=step.model,
            ttft_ms=_ms(step.ttft_ms),
            tokens_in=step.tokens_in,
            tokens_out=step.tokens_out,
            tool_calls=step.tool_calls,
        )
    else:
        fields.update(tool=step.name, recovered=step.recovered, server=step.server, decision=step.decision)
    error = step.error if step.error is None or len(step.error) <= MAX_ERROR else step.error[:MAX_ERROR] + "…"
    fields.update(
        endpoint=step.endpoint,
        duration_ms=_ms(step.duration_ms),
        status=step.status,
        error=error,
        skipped=[str(s) for s in step.skipped],
    )
    return fields


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def log_step(step: Step, *, thread_id: str, interface: str) -> None:
    """Log one INFO line for a trace record (redacted by the handler `setup_logging` installed)."""
    if not log.isEnabledFor(logging.INFO):
        return  # the default level: skip building the fields on every step of a batch
    what = step.model if step.kind == "model" else step.name
    log.info(
        "%s %s %s in %.0f ms",
        step.kind,
        what or "?",
        step.status,
        step.duration_ms,
        extra={"thread_id": thread_id, "interface": interface, **step_fields(step)},
    )
