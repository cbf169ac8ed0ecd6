"""Hold the demo's city table: names in English and Chinese, coordinates, zones, weather."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class City:
    """One city the demo model and the offline Open-Meteo stand-in know about."""

    id: int
    name: str
    zh: str | None
    latitude: float
    longitude: float
    elevation: float
    timezone: str
    country: str
    country_code: str
    admin1: str
    population: int
    # Deterministic "current weather" served by the Open-Meteo stand-in.
    temperature_c: float
    humidity: int
    weather_code: int
    wind_kmh: float


CITIES: tuple[City, ...] = (
    City(
        1816670,
        "Beijing",
        "北京",
        39.9075,
        116.39723,
        49.0,
        "Asia/Shanghai",
        "China",
        "CN",
        "Beijing",
        18960744,
        22.4,
        38,
        1,
        11.2,
    ),
    City(
        1796236,
        "Shanghai",
        "上海",
        31.22222,
        121.45806,
        12.0,
        "Asia/Shanghai",
        "China",
        "CN",
        "Shanghai",
        24874500,
        25.1,
        71,
        3,
        14.8,
    ),
    City(
        1850147,
        "Tokyo",
        "东京",
        35.6895,
        139.69171,
        44.0,
        "Asia/Tokyo",
        "Japan",
        "JP",
        "Tokyo",
        9733276,
        18.6,
        64,
        2,
        9.4,
    ),
    City(
        2643743,
        "London",
        "伦敦",
        51.50853,
        -0.12574,
        25.0,
        "Europe/London",
        "United Kingdom",
        "GB",
        "England",
        8961989,
        12.3,
        81,
        61,
        19.1,
    ),
    City(
        2988507,
        "Paris",
        "巴黎",
        48.85341,
        2.3488,
        42.0,
        "Europe/Paris",
        "France",
        "FR",
        "Île-de-France",
        2138551,
        15.7,
        69,
        3,
        12.6,
    ),
    City(
        5128581,
        "New York",
        "纽约",
        40.71427,
        -74.00597,
        10.0,
        "America/New_York",
        "United States",
        "US",
        "New York",
        8804190,
        16.9,
        58,
        0,
        16.3,
    ),
    City(
        2950159,
        "Berlin",
        "柏林",
        52.52437,
        13.41053,
        74.0,
        "Europe/Berlin",
        "Germany",
        "DE",
        "Berlin",
        3426354,
        13.8,
        66,
        45,
        13.0,
    ),
    City(
        2147714,
        "Sydney",
        "悉尼",
        -33.86785,
        151.20732,
        58.0,
        "Australia/Sydney",
        "Australia",
        "AU",
        "New South Wales",
        4627345,
        20.2,
        60,
        1,
        21.7,
    ),
    City(
        5391959,
        "San Francisco",
        "旧金山",
        37.77493,
        -122.41942,
        16.0,
        "America/Los_Angeles",
        "United States",
        "US",
        "California",
        864816,
        14.5,
        77,
        45,
        24.1,
    ),
    City(
        1795565,
        "Shenzhen",
        "深圳",
        22.54554,
        114.0683,
        9.0,
        "Asia/Shanghai",
        "China",
        "CN",
        "Guangdong",
        17494398,
        28.3,
        79,
        80,
        10.1,
    ),
    City(
        1809858,
        "Guangzhou",
        "广州",
        23.11667,
        113.25,
        15.0,
        "Asia/Shanghai",
        "China",
        "CN",
        "Guangdong",
        18676605,
        29.0,
        76,
        2,
        8.7,
    ),
    City(
        1808926,
        "Hangzhou",
        "杭州",
        30.29365,
        120.16142,
        13.0,
        "Asia/Shanghai",
        "China",
        "CN",
        "Zhejiang",
        11936010,
        24.6,
        73,
        63,
        7.9,
    ),
)

ALIASES: dict[str, City] = {}
for _city in CITIES:
    ALIASES[_city.name.lower()] = _city
    if _city.zh:
        ALIASES[_city.zh] = _city
ALIASES.update({"nyc": CITIES[5], "sf": CITIES[8], "peking": CITIES[0], "new york city": CITIES[5]})


def lookup_city(name: str) -> City | None:
    """The city called `name` (English, case-insensitive, or Chinese), if known."""
    return ALIASES.get(name.strip().lower())


def find_city(text: str) -> tuple[str, City] | None:
    """The first known city mentioned in `text`, with the spelling used there."""
    lowered = text.lower()
    best: tuple[int, int, str, City] | None = None
    for alias, city in ALIASES.items():
        at = lowered.find(alias)
        if at < 0 or (alias.isascii() and not _whole_word(lowered, at, len(alias))):
            continue
        key = (at, -len(alias))
        if best is None or key < (best[0], best[1]):
            best = (at, -len(alias), text[at : at + len(alias)], city)
    return (best[2], best[3]) if best else None


def _whole_word(text: str, at: int, size: int) -> bool:
    before = text[at - 1] if at > 0 else " "
    after = text[at + size] if at + size < len(text) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())


def nearest_city(latitude: float, longitude: float, within: float = 0.5) -> City | None:
    """The table city within `within` degrees of the point, if any."""
    best = min(CITIES, key=lambda c: (c.latitude - latitude) ** 2 + (c.longitude - longitude) ** 2)
    close = abs(best.latitude - latitude) <= within and abs(best.longitude - longitude) <= within
    return best if close else None
