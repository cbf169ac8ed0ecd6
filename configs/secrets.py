"""Secret values that come from outside Settings (an MCP server's env and headers), for redaction."""

from __future__ import annotations

MIN_SECRET = 4
_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Remember `value` so that logs, traces and error messages redact it (short values are ignored)."""
    if len(value.strip()) >= MIN_SECRET:
        _SECRETS.add(value)


def extra_secrets() -> list[str]:
    """Every registered secret, longest first (so a secret containing another is redacted whole)."""
    return sorted(_SECRETS, key=len, reverse=True)
