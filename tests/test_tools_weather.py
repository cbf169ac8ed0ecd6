"""Test get_city_weather against faked HTTP upstreams (httpx.MockTransport), never the network."""

from __future__ import annotations

import errno
import socket
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from configs import Settings, load_settings
from tools.errors import ToolError, handle_tool_error
from tools.weather import (
    CONNECTION_FAILED,
    GEOCODE_CANDIDATES,
    OPEN_METEO_CURRENT,
    UNREACHABLE,
    WHY_NAME,
    fetch_weather,
    get_city_weather,
    has_cjk,
)

GEO_URL = "https://geo.test/v1/search"
FORECAST_URL = "https://forecast.test/v1/forecast"
OWM_URL = "https://owm.test/data/2.5/weather"
KEY = "owm-test-key-5e1f0a"

# Shapes as documented by Open-Meteo (geocoding + forecast `current`) and OpenWeatherMap 2.5.
GEO_BEIJING = {
    "results": [  # Open-Meteo has ranked a village named 北京 first; the capital is larger
        {
            "id": 8404324,
            "name": "北京",
            "latitude": 30.72608,
            "longitude": 108.67483,
            "country_code": "CN",
            "admin1": "重庆市",
            "country": "中国",
        },
        {
            "id": 1816670,
            "name": "北京",
            "latitude": 39.9075,
            "longitude": 116.39723,
            "feature_code": "PPLC",
            "country_code": "CN",
            "admin1": "北京市",
            "population": 18960744,
            "timezone": "Asia/Shanghai",
            "country": "中国",
        },
    ],
    "generationtime_ms": 0.71,
}
GEO_TOKYO = {
    "results": [
        {
            "id": 1850147,
            "name": "Tokyo",
            "latitude": 35.6895,
            "longitude": 139.69171,
            "country_code": "JP",
            "admin1": "Tokyo",
            "population": 8336599,
            "country": "Japan",
        },
    ],
    "generationtime_ms": 0.52,
}
GEO_NOTHING = {"generationtime_ms": 0.33}  # Open-Meteo omits "results" when nothing matches


def forecast(
    temp: float, feels: float, humidity: int, code: int, wind: float, temp_unit: str = "°C", wind_unit: str = "km/h"
) -> dict[str, Any]:
    return {
        "latitude": 39.9,
        "longitude": 116.4,
        "timezone": "Asia/Shanghai",
        "current_units": {
            "time": "iso8601",
            "interval": "seconds",
            "temperature_2m": temp_unit,
            "relative_humidity_2m": "%",
            "apparent_temperature": temp_unit,
            "weather_code": "wmo code",
            "wind_speed_10m": wind_unit,
        },
        "current": {
            "time": "2026-11-25T19:00",
            "interval": 900,
            "temperature_2m": temp,
            "relative_humidity_2m": humidity,
            "apparent_temperature": feels,
            "weather_code": code,
            "wind_speed_10m": wind,
        },
    }


BEIJING_NOW = forecast(3.2, -1.4, 41, 0, 12.6)
OWM_LONDON = {
    "coord": {"lon": -0.1257, "lat": 51.5085},
    "weather": [{"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"}],
    "base": "stations",
    "main": {"temp": 16.5, "feels_like": 15.8, "temp_min": 15.1, "temp_max": 17.9, "pressure": 1021, "humidity": 67},
    "visibility": 10000,
    "wind": {"speed": 1.5, "deg": 70},
    "clouds": {"all": 9},
    "dt": 1589956771,
    "sys": {"type": 1, "id": 1414, "country": "GB"},
    "timezone": 3600,
    "id": 2643743,
    "name": "London",
    "cod": 200,
}

Route = tuple[int, Any] | Callable[[httpx.Request], httpx.Response]


class Upstream:
    """A fake weather upstream: canned replies per host, and a log of the requests sent."""

    def __init__(self, **routes: Route) -> None:
        self.routes = {host.replace("_", "."): route for host, route in routes.items()}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes[request.url.host]
        if callable(route):
            return route(request)
        status, body = route
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))

    def params(self, host: str) -> dict[str, str]:
        return dict(next(r for r in self.requests if r.url.host == host).url.params)

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.requests]


def raises(error: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def route(request: httpx.Request) -> httpx.Response:
        raise error("simulated failure", request=request)

    return route


def open_meteo_settings() -> Settings:
    return load_settings(weather_geocoding_url=GEO_URL, weather_forecast_url=FORECAST_URL, tool_timeout=7)


def owm_settings() -> Settings:
    return load_settings(weather_api_key=KEY, openweathermap_url=OWM_URL, tool_timeout=7)


async def weather(upstream: Upstream, city: str, units: Any = "metric", settings: Settings | None = None) -> str:
    async with upstream.client() as client:
        return await fetch_weather(city, units, settings=settings or open_meteo_settings(), client=client)


async def weather_error(upstream: Upstream, city: str, settings: Settings | None = None) -> ToolError:
    with pytest.raises(ToolError) as info:
        await weather(upstream, city, settings=settings)
    return info.value


# Open-Meteo (no key)


async def test_open_meteo_chinese_city_picks_the_capital_and_asks_in_chinese() -> None:
    upstream = Upstream(geo_test=(200, GEO_BEIJING), forecast_test=(200, BEIJING_NOW))
    result = await weather(upstream, " 北京 ")
    assert result == (
        "北京, 北京市, 中国 (observed 2026-11-25 19:00 local time): clear sky, 3.2°C"
        " (feels like -1.4°C), humidity 41%, wind 12.6 km/h"
    )
    assert upstream.hosts() == ["geo.test", "forecast.test"]
    assert upstream.params("geo.test") == {
        "name": "北京",
        "count": str(GEOCODE_CANDIDATES),
        "language": "zh",
        "format": "json",
    }
    assert upstream.params("forecast.test") == {
        "latitude": "39.9075",
        "longitude": "116.39723",
        "current": OPEN_METEO_CURRENT,
        "timezone": "auto",
    }


async def test_open_meteo_english_city() -> None:
    reply = forecast(11.04, 9.5, 80, 61, 5)
    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=(200, reply))
    result = await weather(upstream, "Tokyo")
    assert result == (
        "Tokyo, Japan (observed 2026-11-25 19:00 local time): slight rain, 11.0°C"
        " (feels like 9.5°C), humidity 80%, wind 5.0 km/h"
    )
    assert upstream.params("geo.test")["language"] == "en"
    assert upstream.params("forecast.test")["latitude"] == "35.6895"


async def test_open_meteo_imperial_units() -> None:
    reply = forecast(51.9, 48.2, 80, 3, 3.1, temp_unit="°F", wind_unit="mp/h")
    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=(200, reply))
    result = await weather(upstream, "Tokyo", "imperial")
    assert "overcast, 51.9°F (feels like 48.2°F), humidity 80%, wind 3.1 mp/h" in result
    params = upstream.params("forecast.test")
    assert params["temperature_unit"] == "fahrenheit"
    assert params["wind_speed_unit"] == "mph"


async def test_open_meteo_unknown_city_suggests_spelling_and_english_name() -> None:
    upstream = Upstream(geo_test=(200, GEO_NOTHING), forecast_test=(500, None))
    error = await weather_error(upstream, "Atlantis")
    assert str(error).startswith("no city named 'Atlantis' was found. Check the spelling")
    assert "English name" in str(error)
    assert upstream.hosts() == ["geo.test"]  # no forecast for a place that does not exist


async def test_upstream_5xx_is_an_outage_of_the_named_host() -> None:
    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=(503, {"error": True}))
    error = await weather_error(upstream, "Tokyo")
    assert str(error) == "weather service unavailable, try again later (forecast.test answered HTTP 503)."


def connect_error(cause: OSError) -> Callable[[httpx.Request], httpx.Response]:
    """What httpx raises when the socket cannot connect: a ConnectError caused by the OS error."""

    def route(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(str(cause), request=request) from cause

    return route


async def test_no_internet_names_the_host_and_what_to_do_not_an_outage() -> None:
    gaierror = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    error = await weather_error(Upstream(geo_test=connect_error(gaierror)), "Tokyo")
    assert str(error) == UNREACHABLE.format(host="geo.test", why=WHY_NAME, setting="WEATHER_GEOCODING_URL")
    assert str(error).startswith("cannot reach geo.test (name lookup failed): no internet connection?")
    assert "HTTPS_PROXY" in str(error) and "unavailable" not in str(error)
    assert error.__context__ is None and error.__cause__ is None  # the httpx exception is not chained


async def test_no_route_and_unknown_connect_failures() -> None:
    no_route = OSError(errno.ENETUNREACH, "Network is unreachable")
    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=connect_error(no_route))
    error = await weather_error(upstream, "Tokyo")
    assert str(error).startswith("cannot reach forecast.test (no route to the host):")
    assert "WEATHER_FORECAST_URL" in str(error)
    bare = await weather_error(Upstream(geo_test=raises(httpx.ConnectError)), "Tokyo")
    assert str(bare).startswith("cannot reach geo.test (connection failed): no internet connection?")


async def test_refused_connection_on_a_real_socket() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings(weather_geocoding_url=f"http://127.0.0.1:{port}/v1/search", tool_timeout=5)
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(ToolError) as info:
            await fetch_weather("Tokyo", settings=settings, client=client)
    assert str(info.value).startswith("cannot reach 127.0.0.1 (connection refused): no internet connection?")


async def test_connection_dropped_mid_answer_is_not_called_no_internet() -> None:
    upstream = Upstream(geo_test=raises(httpx.RemoteProtocolError))
    error = await weather_error(upstream, "Tokyo")
    assert str(error) == CONNECTION_FAILED.format(host="geo.test")


async def test_timeout_names_the_host_and_the_limit() -> None:
    upstream = Upstream(geo_test=raises(httpx.ReadTimeout))
    error = await weather_error(upstream, "Tokyo")
    assert str(error) == "the weather service (geo.test) did not answer within 7 seconds; try again later."
    assert error.__context__ is None  # the httpx exception (and its URL) is not chained
    connect = await weather_error(Upstream(geo_test=raises(httpx.ConnectTimeout)), "Tokyo")
    assert "did not answer within 7 seconds" in str(connect)


async def test_a_notice_from_the_service_leads_the_report() -> None:
    reply = BEIJING_NOW | {"notice": "  demo data\n(演示数据), not real weather  "}
    upstream = Upstream(geo_test=(200, GEO_BEIJING), forecast_test=(200, reply))
    result = await weather(upstream, "北京")
    assert result.startswith("[demo data (演示数据), not real weather] 北京, 北京市, 中国 (observed ")
    long = BEIJING_NOW | {"notice": "x" * 500}
    capped = await weather(Upstream(geo_test=(200, GEO_BEIJING), forecast_test=(200, long)), "北京")
    assert capped.startswith("[" + "x" * 119 + "…] 北京")
    for ignored in ("", "   ", 42, None, {"text": "demo"}):
        plain = await weather(
            Upstream(geo_test=(200, GEO_BEIJING), forecast_test=(200, BEIJING_NOW | {"notice": ignored})), "北京"
        )
        assert plain.startswith("北京, 北京市, 中国 (observed ")


async def test_rejected_request_passes_the_upstream_reason() -> None:
    reply = {"error": True, "reason": "Latitude must be in range of -90 to 90°."}
    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=(400, reply))
    error = await weather_error(upstream, "Tokyo")
    assert str(error) == (
        "the weather service rejected the request for 'Tokyo' (HTTP 400): Latitude must be in range of -90 to 90°."
    )


async def test_open_meteo_404_is_a_bad_endpoint_not_an_unknown_city() -> None:
    upstream = Upstream(geo_test=(404, {"error": True, "reason": "Not Found"}))
    error = await weather_error(upstream, "Tokyo")
    assert str(error) == "the weather service rejected the request for 'Tokyo' (HTTP 404): Not Found."


async def test_missing_values_are_shown_as_not_available() -> None:
    reply = forecast(3.2, -1.4, 41, 0, 12.6)
    reply["current"] |= {"apparent_temperature": None, "weather_code": 42}
    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=(200, reply))
    result = await weather(upstream, "Tokyo")
    assert "weather code 42, 3.2°C (feels like n/a), humidity 41%" in result


async def test_unreadable_response() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=html)
    assert "could not be read" in str(await weather_error(upstream, "Tokyo"))


async def test_empty_city_sends_nothing() -> None:
    upstream = Upstream()
    assert str(await weather_error(upstream, "   ")).startswith("the city is empty")
    assert upstream.requests == []


# OpenWeatherMap (WEATHER_API_KEY set)


async def test_openweathermap_happy_path() -> None:
    upstream = Upstream(owm_test=(200, OWM_LONDON))
    result = await weather(upstream, "London", settings=owm_settings())
    assert result == (
        "London, GB (observed 2020-05-20 07:39 local time): clear sky, 16.5°C"
        " (feels like 15.8°C), humidity 67%, wind 1.5 m/s"
    )
    assert upstream.hosts() == ["owm.test"]
    assert upstream.params("owm.test") == {"q": "London", "appid": KEY, "units": "metric", "lang": "en"}


async def test_openweathermap_chinese_city_and_imperial() -> None:
    reply = OWM_LONDON | {
        "name": "北京市",
        "sys": {"country": "CN"},
        "weather": [{"id": 800, "main": "Clear", "description": "晴"}],
    }
    upstream = Upstream(owm_test=(200, reply))
    result = await weather(upstream, "北京", "imperial", settings=owm_settings())
    assert result.startswith("北京市, CN (observed ")
    assert "晴, 16.5°F (feels like 15.8°F), humidity 67%, wind 1.5 mph" in result
    params = upstream.params("owm.test")
    assert (params["lang"], params["units"]) == ("zh_cn", "imperial")


def assert_key_hidden(error: ToolError) -> None:
    """The key is in the request URL; it must not reach the message or the traceback (the host may)."""
    assert error.__context__ is None and error.__cause__ is None
    shown = "".join(traceback.format_exception(error)) + handle_tool_error(error)
    assert KEY not in shown
    assert "owm.test/" not in shown and "appid" not in shown


async def test_openweathermap_bad_key() -> None:
    reply = {"cod": 401, "message": f"Invalid API key {KEY}. See https://openweathermap.org/faq"}
    error = await weather_error(Upstream(owm_test=(401, reply)), "London", owm_settings())
    assert str(error).startswith("the weather API key was rejected; check WEATHER_API_KEY")
    assert_key_hidden(error)


async def test_openweathermap_unknown_city() -> None:
    upstream = Upstream(owm_test=(404, {"cod": "404", "message": "city not found"}))
    error = await weather_error(upstream, "Atlantis", owm_settings())
    assert str(error).startswith("no city named 'Atlantis' was found")
    assert_key_hidden(error)


async def test_openweathermap_timeout_hides_the_key() -> None:
    upstream = Upstream(owm_test=raises(httpx.ReadTimeout))
    error = await weather_error(upstream, "London", owm_settings())
    assert "did not answer within 7 seconds" in str(error)
    assert_key_hidden(error)


async def test_blank_key_falls_back_to_open_meteo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHER_API_KEY", "  ")
    upstream = Upstream(geo_test=(200, GEO_NOTHING))
    await weather_error(upstream, "Nowhere", load_settings(weather_geocoding_url=GEO_URL))
    assert upstream.hosts() == ["geo.test"]


# The LangChain tool: settings from the environment, client built from them


@pytest.fixture
def fake_http(monkeypatch: pytest.MonkeyPatch) -> Callable[[Upstream], dict[str, Any]]:
    """Route the tool's own AsyncClient through an Upstream; return the client's kwargs."""
    real = httpx.AsyncClient

    def install(upstream: Upstream) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def client(**kwargs: Any) -> httpx.AsyncClient:
            seen.update(kwargs)
            return real(transport=httpx.MockTransport(upstream), **kwargs)

        monkeypatch.setattr(httpx, "AsyncClient", client)
        return seen

    return install


async def test_tool_uses_open_meteo_from_env_settings(monkeypatch: pytest.MonkeyPatch, fake_http: Any) -> None:
    monkeypatch.setenv("WEATHER_GEOCODING_URL", GEO_URL)
    monkeypatch.setenv("WEATHER_FORECAST_URL", FORECAST_URL)
    monkeypatch.setenv("TOOL_TIMEOUT", "3.5")
    upstream = Upstream(geo_test=(200, GEO_BEIJING), forecast_test=(200, BEIJING_NOW))
    seen = fake_http(upstream)
    result = await get_city_weather.ainvoke({"city": "北京"})
    assert result.startswith("北京, 北京市, 中国 ")
    assert seen == {"timeout": 3.5}
    assert upstream.params("geo.test")["language"] == "zh"


async def test_tool_uses_openweathermap_when_key_set(monkeypatch: pytest.MonkeyPatch, fake_http: Any) -> None:
    monkeypatch.setenv("WEATHER_API_KEY", KEY)
    monkeypatch.setenv("OPENWEATHERMAP_URL", OWM_URL)
    upstream = Upstream(owm_test=(200, OWM_LONDON))
    fake_http(upstream)
    result = await get_city_weather.ainvoke({"city": "London", "units": "metric"})
    assert result.startswith("London, GB ")
    assert upstream.params("owm.test")["appid"] == KEY


def test_tool_also_runs_synchronously(monkeypatch: pytest.MonkeyPatch, fake_http: Any) -> None:
    monkeypatch.setenv("WEATHER_GEOCODING_URL", GEO_URL)
    monkeypatch.setenv("WEATHER_FORECAST_URL", FORECAST_URL)
    reply = forecast(11, 9.5, 80, 95, 5)
    upstream = Upstream(geo_test=(200, GEO_TOKYO), forecast_test=(200, reply))
    fake_http(upstream)
    assert "thunderstorm, 11.0°C" in get_city_weather.invoke({"city": "Tokyo"})


async def test_tool_error_reaches_the_caller(monkeypatch: pytest.MonkeyPatch, fake_http: Any) -> None:
    monkeypatch.setenv("WEATHER_GEOCODING_URL", GEO_URL)
    fake_http(Upstream(geo_test=(502, None)))
    with pytest.raises(ToolError, match="weather service unavailable"):
        await get_city_weather.ainvoke({"city": "Tokyo"})


def test_has_cjk() -> None:
    assert has_cjk("北京") and has_cjk("東京") and has_cjk("とうきょう") and has_cjk("서울")
    assert not has_cjk("Zürich") and not has_cjk("São Paulo")
