"""Tell the current date and time in any IANA timezone."""

from __future__ import annotations

import asyncio
import difflib
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from langchain_core.tools import tool

from tools.errors import ToolError

UNKNOWN_TIMEZONE = (
    "unknown timezone {name!r}.{suggestions} Use an IANA timezone name such as"
    " 'Asia/Shanghai' (all of China, including Beijing), 'Asia/Tokyo', 'Europe/London',"
    " 'America/New_York' or 'UTC'."
)
SUGGESTIONS = " Did you mean {names}?"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@lru_cache(maxsize=1)
def _zones_by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def resolve_timezone(name: str) -> ZoneInfo:
    """Return the zone for an IANA name, ignoring case and accepting spaces for underscores.

    Raises:
        ToolError: The name is not a known zone; the message suggests close matches.
    """
    key = "_".join(name.strip().split()).lower() or "utc"
    zones = _zones_by_lower_name()
    if key in zones:
        return ZoneInfo(zones[key])
    raise ToolError(UNKNOWN_TIMEZONE.format(name=name, suggestions=_suggest(key, zones)))


def _suggest(key: str, zones: dict[str, str]) -> str:
    """Zones whose full name or last part ("tokyo" in "asia/tokyo") is close to `key`."""
    matches = difflib.get_close_matches(key, zones, n=3, cutoff=0.6)
    by_city: dict[str, list[str]] = {}
    for lower in zones:
        by_city.setdefault(lower.rsplit("/", 1)[-1], []).append(lower)
    for city in difflib.get_close_matches(key.rsplit("/", 1)[-1], by_city, n=3, cutoff=0.75):
        matches += [z for z in by_city[city] if z not in matches]
    names = sorted({zones[m] for m in matches[:5]}, key=lambda z: ("/" not in z, z))
    return SUGGESTIONS.format(names=", ".join(repr(n) for n in names)) if names else ""


def format_time(moment: datetime, zone: ZoneInfo) -> str:
    """Render an aware datetime in `zone`, e.g. "2026-11-25 19:04:05 JST (UTC+09:00), Wednesday"."""
    local = moment.astimezone(zone)
    offset = local.strftime("%z")  # "+0900"
    return (
        f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} (UTC{offset[:3]}:{offset[3:]}),"
        f" {WEEKDAYS[local.weekday()]}, timezone {zone.key}"
    )


@tool(parse_docstring=True)
def get_current_time(timezone: str = "UTC") -> str:
    """Get the current date, time and weekday in a timezone.

    Use this for any question about the current time or date, today's weekday, or what time
    it is in another city or country. Cities without their own zone use their country's zone
    (Beijing -> 'Asia/Shanghai').

    Args:
        timezone: IANA timezone name such as 'Asia/Shanghai' for Beijing, 'Asia/Tokyo',
            'Europe/London' or 'America/New_York'; 'UTC' by default.
    """
    zone = resolve_timezone(timezone)
    return format_time(datetime.now(zone), zone)


_LOADED: set[str] = set()


async def _get_current_time_async(timezone: str = "UTC") -> str:
    """Answer on the event loop once the zone is in memory; its first use reads the zone file in a thread.

    A synchronous tool runs in the thread pool on every call, and that hop was the costliest part of a
    cheap tool call in a busy batch (bench/README.md); reading a zone file on the loop would block it.
    """
    if timezone in _LOADED:
        return get_current_time.func(timezone)  # type: ignore[attr-defined]  # @tool made a StructuredTool
    result = await asyncio.to_thread(get_current_time.func, timezone)  # type: ignore[attr-defined]
    _LOADED.add(timezone)
    return result


get_current_time.coroutine = _get_current_time_async
