"""Test get_current_time: zone resolution, formatting and the messages for unknown zones."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tools.clock import format_time, get_current_time, resolve_timezone
from tools.errors import ToolError

MOMENT = datetime(2026, 11, 25, 10, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Tokyo", "2026-11-25 19:04:05 JST (UTC+09:00), Wednesday, timezone Asia/Tokyo"),
        ("Asia/Kolkata", "2026-11-25 15:34:05 IST (UTC+05:30), Wednesday, timezone Asia/Kolkata"),
        (
            "America/New_York",
            "2026-11-25 05:04:05 EST (UTC-05:00), Wednesday, timezone America/New_York",
        ),
        ("UTC", "2026-11-25 10:04:05 UTC (UTC+00:00), Wednesday, timezone UTC"),
    ],
)
def test_format_time_renders_local_time_offset_and_weekday(zone: str, expected: str) -> None:
    assert format_time(MOMENT, ZoneInfo(zone)) == expected


def test_format_time_crosses_the_date_line() -> None:
    late = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert format_time(late, ZoneInfo("Asia/Shanghai")).startswith("2026-11-26 07:30:00 CST (UTC+08:00), Thursday")


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("asia/tokyo", "Asia/Tokyo"),
        ("ASIA/SHANGHAI", "Asia/Shanghai"),
        ("utc", "UTC"),
        ("GMT", "GMT"),
        ("  america/new york ", "America/New_York"),
        ("", "UTC"),
    ],
)
def test_resolve_timezone_ignores_case_and_spaces(given: str, key: str) -> None:
    assert resolve_timezone(given).key == key


@pytest.mark.parametrize(
    ("given", "suggested"),
    [("Asia/Tokio", "'Asia/Tokyo'"), ("Tokyo", "'Asia/Tokyo'"), ("Europe/Londn", "'Europe/London'")],
)
def test_unknown_timezone_suggests_close_matches(given: str, suggested: str) -> None:
    with pytest.raises(ToolError) as info:
        resolve_timezone(given)
    message = str(info.value)
    assert message.startswith(f"unknown timezone {given!r}. Did you mean ")
    assert suggested in message
    assert "'Asia/Shanghai'" in message  # the standing example for China


def test_unknown_timezone_without_close_match_still_gives_examples() -> None:
    with pytest.raises(ToolError) as info:
        resolve_timezone("Mars/Olympus_Mons")
    assert "Did you mean" not in str(info.value)
    assert "'Asia/Shanghai' (all of China, including Beijing)" in str(info.value)


async def test_tool_returns_the_current_time_in_the_zone() -> None:
    result = await get_current_time.ainvoke({"timezone": "asia/tokyo"})
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) JST \(UTC\+09:00\), (\w+day), timezone Asia/Tokyo",
        result,
    )
    assert match, result
    shown = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    assert abs((datetime.now(UTC) - shown).total_seconds()) < 5
    assert match[2] == shown.strftime("%A")


async def test_tool_defaults_to_utc() -> None:
    result = await get_current_time.ainvoke({})
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(UTC\+00:00\), \w+day, timezone UTC"
    assert re.fullmatch(pattern, result), result


async def test_tool_raises_tool_error_for_unknown_zone() -> None:
    with pytest.raises(ToolError, match="unknown timezone 'Beijing'"):
        await get_current_time.ainvoke({"timezone": "Beijing"})


async def test_a_zone_in_memory_is_answered_on_the_event_loop(monkeypatch):
    import asyncio

    hops: list[object] = []
    real = asyncio.to_thread

    async def counting(func, *args, **kwargs):
        hops.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    first = await get_current_time.ainvoke({"timezone": "Pacific/Auckland"})
    second = await get_current_time.ainvoke({"timezone": "Pacific/Auckland"})
    assert "Pacific/Auckland" in first and "Pacific/Auckland" in second
    assert len(hops) <= 1  # only the first use may read the zone file in a thread
