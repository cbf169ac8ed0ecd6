"""Look up the current weather for a city (Open-Meteo without a key, OpenWeatherMap with one)."""

from __future__ import annotations

import asyncio
import errno
import re
import socket
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import httpx
from langchain_core.tools import tool

from configs import Settings, get_settings
from tools.errors import ToolError

Units = Literal["metric", "imperial"]

EMPTY_CITY = "the city is empty. Pass a city name such as '北京', 'Tokyo' or 'New York'."
UNKNOWN_CITY = (
    "no city named {city!r} was found. Check the spelling, or try the English name or the"
    " nearest larger city (e.g. 'Beijing' rather than a district or street)."
)
BAD_KEY = (
    "the weather API key was rejected; check WEATHER_API_KEY. Tell the user the weather"
    " service is misconfigured; retrying will not help."
)
UNREACHABLE = (
    "cannot reach {host} ({why}): no internet connection? Tell the user the weather cannot be"
    " looked up from here; retrying will not help. Fix: connect to the internet, set HTTPS_PROXY,"
    " or point {setting} at a reachable service."
)
CONNECTION_FAILED = "the connection to {host} failed before it answered; try again once."
TIMEOUT = "the weather service ({host}) did not answer within {seconds:g} seconds; try again later."
UNAVAILABLE = "weather service unavailable, try again later ({host} answered HTTP {status})."
RATE_LIMITED = "the weather service is rate-limiting requests; wait a minute and try again."
REJECTED = "the weather service rejected the request for {city!r} (HTTP {status}): {reason}."
BAD_RESPONSE = "the weather service sent a response that could not be read; try again later."
NOTICE = "[{notice}] {report}"  # a notice the service attaches (e.g. "demo data"), shown first
MAX_NOTICE_CHARS = 120
WHY_NAME = "name lookup failed"
WHY_REFUSED = "connection refused"
WHY_NO_ROUTE = "no route to the host"
WHY_OTHER = "connection failed"
_NO_ROUTE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}

# Open-Meteo can rank a village first (北京 -> a village in Chongqing), so fetch a few
# candidates and take the most populous one.
GEOCODE_CANDIDATES = 10
OPEN_METEO_CURRENT = "temperature_2m,relative_humidity_2m,apparent_temperature,weather_code,wind_speed_10m"
OPEN_METEO_UNITS = {"metric": ("°C", "km/h"), "imperial": ("°F", "mph")}
OPENWEATHERMAP_UNITS = {"metric": ("°C", "m/s"), "imperial": ("°F", "mph")}
WMO_CODES = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def has_cjk(text: str) -> bool:
    """Whether `text` contains Chinese, Japanese or Korean characters."""
    return bool(_CJK.search(text))


async def fetch_weather(city: str, units: Units = "metric", *, settings: Settings, client: httpx.AsyncClient) -> str:
    """Current weather for `city` as one readable line; raise ToolError on every failure.

    Uses OpenWeatherMap when `settings.weather_api_key` is set, else Open-Meteo (no key).
    """
    city = " ".join(city.split())
    if not city:
        raise ToolError(EMPTY_CITY)
    key = settings.weather_api_key.get_secret_value().strip() if settings.weather_api_key else ""
    if key:
        return await _openweathermap(city, units, key, settings=settings, client=client)
    return await _open_meteo(city, units, settings=settings, client=client)


async def _open_meteo(city: str, units: Units, *, settings: Settings, client: httpx.AsyncClient) -> str:
    language = "zh" if has_cjk(city) else "en"
    found = await _get_json(
        client,
        settings.weather_geocoding_url,
        "WEATHER_GEOCODING_URL",
        settings,
        city,
        {"name": city, "count": GEOCODE_CANDIDATES, "language": language, "format": "json"},
    )
    candidates = [r for r in found.get("results") or [] if _has_coordinates(r)]
    if not candidates:
        raise ToolError(UNKNOWN_CITY.format(city=city))
    place = max(candidates, key=lambda r: r.get("population") or 0)  # first wins ties
    params: dict[str, Any] = {
        "latitude": place["latitude"],
        "longitude": place["longitude"],
        "current": OPEN_METEO_CURRENT,
        "timezone": "auto",
    }
    if units == "imperial":
        params |= {"temperature_unit": "fahrenheit", "wind_speed_unit": "mph"}
    data = await _get_json(client, settings.weather_forecast_url, "WEATHER_FORECAST_URL", settings, city, params)
    current = data.get("current")
    if not isinstance(current, dict) or "temperature_2m" not in current:
        raise ToolError(BAD_RESPONSE)
    shown_units = data.get("current_units") or {}
    temp_unit = shown_units.get("temperature_2m") or OPEN_METEO_UNITS[units][0]
    wind_unit = shown_units.get("wind_speed_10m") or OPEN_METEO_UNITS[units][1]
    code = current.get("weather_code")
    report = _report(
        place=_place(place.get("name") or city, place.get("admin1"), place.get("country")),
        observed=str(current.get("time", "")).replace("T", " "),
        condition=WMO_CODES.get(code, f"weather code {code}") if code is not None else "unknown",
        temp=current.get("temperature_2m"),
        feels=current.get("apparent_temperature"),
        temp_unit=temp_unit,
        humidity=current.get("relative_humidity_2m"),
        wind=current.get("wind_speed_10m"),
        wind_unit=wind_unit,
    )
    return _with_notice(report, data.get("notice"))


async def _openweathermap(city: str, units: Units, key: str, *, settings: Settings, client: httpx.AsyncClient) -> str:
    params = {"q": city, "appid": key, "units": units, "lang": "zh_cn" if has_cjk(city) else "en"}
    data = await _get_json(
        client, settings.openweathermap_url, "OPENWEATHERMAP_URL", settings, city, params, keyed=True
    )
    main, wind = data.get("main"), data.get("wind") or {}
    if not isinstance(main, dict) or "temp" not in main:
        raise ToolError(BAD_RESPONSE)
    weather = (data.get("weather") or [{}])[0]
    observed = ""
    if isinstance(data.get("dt"), int):
        zone = timezone(timedelta(seconds=int(data.get("timezone") or 0)))
        observed = f"{datetime.fromtimestamp(data['dt'], zone):%Y-%m-%d %H:%M}"
    temp_unit, wind_unit = OPENWEATHERMAP_UNITS[units]
    return _report(
        place=_place(data.get("name") or city, None, (data.get("sys") or {}).get("country")),
        observed=observed,
        condition=weather.get("description") or "unknown",
        temp=main.get("temp"),
        feels=main.get("feels_like"),
        temp_unit=temp_unit,
        humidity=main.get("humidity"),
        wind=wind.get("speed"),
        wind_unit=wind_unit,
    )


async def _get_json(
    client: httpx.AsyncClient,
    url: str,
    setting: str,
    settings: Settings,
    city: str,
    params: dict[str, Any],
    *,
    keyed: bool = False,
) -> dict[str, Any]:
    """GET `url` (configured by the variable `setting`) and decode JSON, mapping every failure
    to a ToolError that names the host.

    A connection that cannot be made (no DNS, refused, no route: usually no internet) is told
    apart from a timeout and from the service's own 5xx, so the model does not report an outage.
    With `keyed` (OpenWeatherMap), 401 means a bad key and 404 an unknown city; Open-Meteo
    answers an unknown city with an empty result list instead.

    httpx exceptions carry the request URL (with any API key in it), so they are never
    stringified, logged or chained: the ToolError is raised outside the `except` block, which
    leaves its `__context__` empty. Only the host is shown.
    """
    host = httpx.URL(url).host or url
    failure = ""
    try:
        response = await client.get(url, params=params)
    except httpx.TimeoutException:
        failure = TIMEOUT.format(host=host, seconds=settings.tool_timeout)
    except (httpx.ConnectError, httpx.ProxyError) as err:
        failure = UNREACHABLE.format(host=host, why=_why(err), setting=setting)
    except httpx.HTTPError:
        failure = CONNECTION_FAILED.format(host=host)
    if failure:
        raise ToolError(failure)
    status = response.status_code
    if keyed and status == 401:
        raise ToolError(BAD_KEY)
    if keyed and status == 404:
        raise ToolError(UNKNOWN_CITY.format(city=city))
    if status == 429:
        raise ToolError(RATE_LIMITED)
    if status >= 500:
        raise ToolError(UNAVAILABLE.format(host=host, status=status))
    try:
        data = response.json()
    except ValueError:
        data = None
    if status >= 400:
        reason = (data.get("reason") or data.get("message")) if isinstance(data, dict) else None
        reason = " ".join(str(reason or "no reason given").split())[:200].rstrip(".")
        raise ToolError(REJECTED.format(city=city, status=status, reason=reason))
    if not isinstance(data, dict):
        raise ToolError(BAD_RESPONSE)
    return data


def _why(err: BaseException) -> str:
    """Why a connection could not be made, from the OS error under the httpx one (no URL)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return WHY_NAME
        if isinstance(cause, ConnectionRefusedError):
            return WHY_REFUSED
        if isinstance(cause, OSError) and cause.errno in _NO_ROUTE_ERRNOS:
            return WHY_NO_ROUTE
        cause = cause.__cause__ or cause.__context__
    return WHY_OTHER


def _with_notice(report: str, notice: Any) -> str:
    """The report, led by the notice the service attached to its answer (one short line), if any."""
    if not isinstance(notice, str) or not " ".join(notice.split()):
        return report
    text = " ".join(notice.split())
    text = text if len(text) <= MAX_NOTICE_CHARS else text[: MAX_NOTICE_CHARS - 1] + "…"
    return NOTICE.format(notice=text, report=report)


def _has_coordinates(result: Any) -> bool:
    return isinstance(result, dict) and "latitude" in result and "longitude" in result


def _place(name: str, region: str | None, country: str | None) -> str:
    parts = [name] + [p for p in (region, country) if p and p != name]
    return ", ".join(dict.fromkeys(parts))


def _measure(value: Any, unit: str, digits: int = 1, sep: str = "") -> str:
    """`12.6 km/h`-style text, or "n/a" when the upstream left the value out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{value:.{digits}f}{sep}{unit}"


def _report(
    *,
    place: str,
    observed: str,
    condition: str,
    temp: Any,
    feels: Any,
    temp_unit: str,
    humidity: Any,
    wind: Any,
    wind_unit: str,
) -> str:
    when = f" (observed {observed} local time)" if observed else ""
    return (
        f"{place}{when}: {condition}, {_measure(temp, temp_unit)}"
        f" (feels like {_measure(feels, temp_unit)}), humidity {_measure(humidity, '%', 0)},"
        f" wind {_measure(wind, wind_unit, sep=' ')}"
    )


@tool(parse_docstring=True)
async def get_city_weather(city: str, units: Units = "metric") -> str:
    """Get the current weather for a city: condition, temperature, feels-like, humidity and wind.

    Use this for questions about today's or current weather, temperature, rain or wind in a
    place. It reports current conditions only, not forecasts for later days.

    Args:
        city: City name in any language, e.g. '北京', 'Tokyo' or 'New York'; just the city,
            without district or street.
        units: 'metric' for °C and km/h (default), 'imperial' for °F and mph.
    """
    settings = get_settings()
    async with httpx.AsyncClient(timeout=settings.tool_timeout) as client:
        return await fetch_weather(city, units, settings=settings, client=client)


def _get_city_weather_sync(city: str, units: Units = "metric") -> str:
    """Let synchronous callers (`tool.invoke`, a sync graph) use the async tool."""
    return asyncio.run(get_city_weather.coroutine(city, units))  # type: ignore[attr-defined]


get_city_weather.func = _get_city_weather_sync
