"""Serve an offline stand-in of Open-Meteo's geocoding and forecast APIs (same JSON shapes, marked demo data)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graph.demo.cities import ALIASES, City, nearest_city

# Every forecast carries this: the weather tool shows a service's notice, so the user can tell.
DEMO_NOTICE = "demo data (演示数据): made up by the scripted demo server, not real weather"
_CAPITALS = {"Beijing", "Tokyo", "London", "Paris", "Berlin"}
_COUNTRY_ZH = {
    "China": "中国",
    "Japan": "日本",
    "United Kingdom": "英国",
    "France": "法国",
    "United States": "美国",
    "Germany": "德国",
    "Australia": "澳大利亚",
}
_UNITS = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "apparent_temperature": "°C",
    "weather_code": "wmo code",
    "wind_speed_10m": "km/h",
    "wind_direction_10m": "°",
    "is_day": "",
    "precipitation": "mm",
    "cloud_cover": "%",
    "pressure_msl": "hPa",
    "surface_pressure": "hPa",
}
_WIND_FACTORS = {"kmh": (1.0, "km/h"), "ms": (1 / 3.6, "m/s"), "mph": (0.621371, "mp/h"), "kn": (0.539957, "kn")}


def _error(reason: str) -> JSONResponse:
    return JSONResponse({"reason": reason, "error": True}, status_code=400)


def _match(name: str) -> list[City]:
    """Exact alias first; 3+ characters also match alias prefixes (the real API is fuzzy)."""
    key = name.strip().lower()
    if len(key) < 2:
        return []
    if key in ALIASES:
        return [ALIASES[key]]
    if len(key) < 3:
        return []
    found: list[City] = []
    for alias, city in ALIASES.items():
        if alias.startswith(key) and city not in found:
            found.append(city)
    return found


def _result(city: City, language: str) -> dict[str, Any]:
    zh = language.startswith("zh")
    return {
        "id": city.id,
        "name": city.zh if zh and city.zh else city.name,
        "latitude": city.latitude,
        "longitude": city.longitude,
        "elevation": city.elevation,
        "feature_code": "PPLC" if city.name in _CAPITALS else "PPLA",
        "country_code": city.country_code,
        "timezone": city.timezone,
        "population": city.population,
        "country": _COUNTRY_ZH.get(city.country, city.country) if zh else city.country,
        "admin1": city.admin1,
    }


async def search(request: Request) -> JSONResponse:
    """GET /v1/search?name=..&count=..&language=.. like geocoding-api.open-meteo.com."""
    params = request.query_params
    try:
        count = int(params.get("count", "10"))
    except ValueError:
        return _error("Parameter count must be an integer")
    cities = _match(params.get("name", ""))[: max(count, 0)]
    body: dict[str, Any] = {}
    if cities:
        body["results"] = [_result(c, params.get("language", "en").lower()) for c in cities]
    body["generationtime_ms"] = 0.61
    return JSONResponse(body)


def _weather_at(latitude: float, longitude: float) -> tuple[City | None, float, int, int, float]:
    """(city, temperature °C, humidity %, WMO code, wind km/h), deterministic per place."""
    city = nearest_city(latitude, longitude)
    if city:
        return city, city.temperature_c, city.humidity, city.weather_code, city.wind_kmh
    seed = hashlib.sha256(f"{latitude:.2f},{longitude:.2f}".encode()).digest()
    base = 28.0 - abs(latitude) * 0.45
    return (
        None,
        round(base + seed[0] % 80 / 10 - 4, 1),
        30 + seed[1] % 60,
        (0, 1, 2, 3, 45, 61)[seed[2] % 6],
        round(3 + seed[3] % 250 / 10, 1),
    )


def _zone(name: str, city: City | None) -> ZoneInfo | None:
    if name == "auto":
        name = city.timezone if city else "GMT"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


async def forecast(request: Request) -> JSONResponse:
    """GET /v1/forecast?latitude=..&longitude=..&current=.. like api.open-meteo.com."""
    params = request.query_params
    try:
        latitude, longitude = float(params["latitude"]), float(params["longitude"])
    except KeyError as missing:
        return _error(f"Value of type 'Float' required for key '{missing.args[0]}'.")
    except ValueError:
        return _error("Latitude and longitude must be floating point numbers")
    if not -90 <= latitude <= 90:
        return _error(f"Latitude must be in range of -90 to 90°. Given: {latitude}.")
    if not -180 <= longitude <= 180:
        return _error(f"Longitude must be in range of -180 to 180°. Given: {longitude}.")
    wanted = [v for v in params.get("current", "").split(",") if v]
    unknown = [v for v in wanted if v not in _UNITS]
    if unknown:
        return _error(f"Cannot initialize ForecastVariable from invalid String value {unknown[0]} for key current")
    city, temp_c, humidity, code, wind_kmh = _weather_at(latitude, longitude)
    zone = _zone(params.get("timezone", "GMT"), city)
    if zone is None:
        return _error("Invalid timezone")
    fahrenheit = params.get("temperature_unit", "celsius") == "fahrenheit"
    wind_unit_name = params.get("wind_speed_unit", "kmh")
    wind_factor, wind_unit = _WIND_FACTORS.get(wind_unit_name, _WIND_FACTORS["kmh"])
    now = datetime.now(zone)
    now = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)

    def temp(celsius: float) -> float:
        return round(celsius * 9 / 5 + 32, 1) if fahrenheit else round(celsius, 1)

    values: dict[str, Any] = {
        "temperature_2m": temp(temp_c),
        "relative_humidity_2m": humidity,
        "apparent_temperature": temp(temp_c - 1.5 + (humidity - 50) / 25 - wind_kmh / 20),
        "weather_code": code,
        "wind_speed_10m": round(wind_kmh * wind_factor, 1),
        "wind_direction_10m": int(latitude * 7 + longitude * 3) % 360,
        "is_day": int(6 <= now.hour < 18),
        "precipitation": 0.4 if code >= 51 else 0.0,
        "cloud_cover": min(100, code * 30 if code < 4 else 90),
        "pressure_msl": 1013.2,
        "surface_pressure": round(1013.2 - (city.elevation if city else 20.0) / 8.3, 1),
    }
    offset = now.utcoffset() or timedelta(0)
    body: dict[str, Any] = {
        "latitude": round(latitude, 3),
        "longitude": round(longitude, 3),
        "generationtime_ms": 0.05,
        "utc_offset_seconds": int(offset.total_seconds()),
        "timezone": zone.key,
        "timezone_abbreviation": now.tzname() or "GMT",
        "elevation": city.elevation if city else 20.0,
        "notice": DEMO_NOTICE,
    }
    if wanted:
        units = {"time": "iso8601", "interval": "seconds"}
        for var in wanted:
            units[var] = (
                ("°F" if fahrenheit else "°C")
                if "temperature" in var
                else (wind_unit if var == "wind_speed_10m" else _UNITS[var])
            )
        body["current_units"] = units
        body["current"] = {
            "time": now.strftime("%Y-%m-%dT%H:%M"),
            "interval": 900,
            **{var: values[var] for var in wanted},
        }
    return JSONResponse(body)


ROUTES = [Route("/v1/search", search), Route("/v1/forecast", forecast)]
