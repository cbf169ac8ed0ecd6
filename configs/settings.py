"""Read every setting from the environment and `.env`, in exactly one place."""

from __future__ import annotations

import os
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

DEFAULT_BASE_URL = "http://localhost:8000/v1"
DEFAULT_DB = Path.home() / ".local" / "share" / "work-agent" / "threads.sqlite"
DEFAULT_MCP_CONFIG = Path("mcp.json")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line naming the variable."""


def _check_url(value: str) -> str:
    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:8000/v1")
    return value.rstrip("/")


class Endpoint(BaseModel):
    """One OpenAI-compatible endpoint: a vLLM replica, a router, or a hosted fallback."""

    model_config = {"frozen": True}

    base_url: str
    api_key: SecretStr | None = Field(None, description="unset means OPENAI_API_KEY")
    model: str | None = Field(None, description="unset means AGENT_MODEL, else the first model it lists")

    _url = field_validator("base_url")(classmethod(lambda cls, v: _check_url(v)))

    @property
    def label(self) -> str:
        """host:port, the endpoint's name in traces, logs and metric labels (no path, no key)."""
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"

    def key(self) -> str:
        """The API key to send to this endpoint, and only to it."""
        return self.api_key.get_secret_value() if self.api_key is not None else "EMPTY"


class Settings(BaseSettings):
    """Static settings: where the model server is, keys, and the agent's default knobs."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    openai_api_base: str = Field(
        DEFAULT_BASE_URL,
        validation_alias=AliasChoices("OPENAI_API_BASE", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint of the vLLM server, ending in /v1; several, comma-separated, "
        "are tried in order (failover).",
    )
    agent_endpoints: list[Endpoint] = Field(
        default_factory=list,
        description="Ordered endpoints as JSON, each with base_url and optional api_key and model; "
        "overrides OPENAI_API_BASE.",
    )
    agent_failover_cooldown: float = Field(
        30.0,
        ge=0,
        description="Seconds an endpoint that failed (connection error, 5xx, timeout) is skipped.",
    )
    openai_api_key: SecretStr = Field(
        SecretStr("EMPTY"),
        description="API key; EMPTY for a vLLM server started without --api-key.",
    )
    agent_model: str | None = Field(
        None,
        description="Served model name; unset means the first model /v1/models lists.",
    )
    weather_api_key: SecretStr | None = Field(
        None,
        description="OpenWeatherMap key; unset means Open-Meteo (no key needed).",
    )
    agent_temperature: float = Field(
        0.2,
        ge=0.0,
        le=2.0,
        description="Sampling temperature (pinned, so the server's generation-config does not decide).",
    )
    agent_max_tokens: int = Field(
        1024,
        ge=1,
        description="Most tokens the model may generate per call.",
    )
    agent_max_steps: int = Field(
        8,
        ge=1,
        le=100,
        description="Most tool rounds per question before the agent must answer.",
    )
    agent_request_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds to wait for one model request.",
    )
    agent_max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a model request on connection errors, 429 and 5xx.",
    )
    agent_checkpoint_db: Path = Field(
        DEFAULT_DB,
        description="SQLite file holding conversation threads (shared by CLI and UI; batch runs keep none).",
    )
    agent_checkpoint_url: SecretStr | None = Field(
        None,
        description="postgresql://user:pass@host/db keeps threads in Postgres (several UI replicas); "
        "unset means the SQLite file.",
    )
    agent_log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as human-readable text or one JSON object per line (one per step).",
    )
    agent_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING",
        description="Lowest log level written to stderr; INFO logs every step.",
    )
    ui_auth: SecretStr | None = Field(
        None,
        description="Web UI login as user:password (several separated by commas); unset means no login.",
    )
    ui_concurrency_limit: int = Field(
        4,
        ge=1,
        le=256,
        description="Web UI turns that may run at once; more wait in Gradio's queue.",
    )
    batch_concurrency: int = Field(
        16,
        ge=1,
        le=1024,
        description="Questions `work-agent batch` keeps in flight at once (--concurrency overrides).",
    )
    tool_timeout: float = Field(
        20.0,
        gt=0,
        description="Seconds a tool's HTTP calls may take; a whole tool call is stopped after three times that.",
    )
    agent_thinking: bool | None = Field(
        None,
        description="Thinking models (Qwen3): false turns thinking off, true asks for it (vLLM's "
        "chat_template_kwargs.enable_thinking); empty leaves the model's default.",
    )
    agent_mcp_config: Path = Field(
        DEFAULT_MCP_CONFIG,
        description="JSON file with an `mcpServers` object (Claude Desktop / Cursor format) and optional "
        "`approval` policies. The default ./mcp.json may be absent; a file named here must exist.",
    )
    agent_mcp_start_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds an MCP server may take to start and list its tools before it is reported failed.",
    )
    agent_tool_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Python modules (or .py files) whose typed functions become tools.",
    )
    weather_geocoding_url: str = Field(
        "https://geocoding-api.open-meteo.com/v1/search",
        description="Open-Meteo geocoding endpoint.",
    )
    weather_forecast_url: str = Field(
        "https://api.open-meteo.com/v1/forecast",
        description="Open-Meteo forecast endpoint.",
    )
    openweathermap_url: str = Field(
        "https://api.openweathermap.org/data/2.5/weather",
        description="OpenWeatherMap current-weather endpoint (used when WEATHER_API_KEY is set).",
    )

    @field_validator("agent_thinking", mode="before")
    @classmethod
    def _blank_is_default(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("agent_tool_modules", mode="before")
    @classmethod
    def _module_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("weather_geocoding_url", "weather_forecast_url", "openweathermap_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("openai_api_base")
    @classmethod
    def _http_urls(cls, value: str) -> str:
        return ",".join(_check_url(part) for part in value.split(",") if part.strip()) or _check_url(value)

    @field_validator("agent_checkpoint_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if urlsplit(value.get_secret_value().strip()).scheme not in ("postgres", "postgresql"):
            raise ValueError("must be a postgresql:// URL, e.g. postgresql://agent:secret@db:5432/agent")
        return value

    _by_url: dict[str, Settings] = PrivateAttr(default_factory=dict)

    def for_endpoint(self, url: str | None) -> Settings:
        """These settings with `url` as the only endpoint (a run's or a UI session's URL); themselves for none.

        The URL replaces every configured endpoint (AGENT_ENDPOINTS too). Built once per URL, so a model
        factory keyed on the settings' endpoints keeps reusing its connection pools.
        """
        url = (url or "").strip().rstrip("/")
        if not url or url == self.openai_api_base:
            return self
        if url not in self._by_url:
            try:
                self._by_url[url] = Settings(**{**self.model_dump(), "openai_api_base": url, "agent_endpoints": []})
            except ValidationError as err:
                raise ConfigError(f"Endpoint URL {url!r} is not valid: use http://HOST:PORT/v1.") from err
        return self._by_url[url]

    def endpoints(self) -> list[Endpoint]:
        """The endpoints to try, in order, each with its key filled in from OPENAI_API_KEY if unset."""
        return list(self._endpoints)

    @cached_property
    def _endpoints(self) -> tuple[Endpoint, ...]:
        """Built once: the model factory asks for them on every model call."""
        listed = self.agent_endpoints or [Endpoint(base_url=u) for u in self.openai_api_base.split(",")]
        # An endpoint's own model wins; otherwise the run's model (--model, AGENT_MODEL) applies to it.
        return tuple(
            Endpoint(base_url=e.base_url, api_key=e.api_key or self.openai_api_key, model=e.model) for e in listed
        )

    @property
    def base_url(self) -> str:
        """The first endpoint's URL (the one messages about a single server name)."""
        return self.endpoints()[0].base_url

    @field_validator("agent_model")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("openai_api_key")
    @classmethod
    def _blank_key_is_empty(cls, value: SecretStr) -> SecretStr:
        return value if value.get_secret_value().strip() else SecretStr("EMPTY")

    @field_validator("weather_api_key")
    @classmethod
    def _blank_weather_key_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("ui_auth")
    @classmethod
    def _auth_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for pair in value.get_secret_value().split(","):
            user, sep, password = pair.strip().partition(":")
            if not sep or not user or not password:
                raise ValueError("must be user:password (several separated by commas)")
        return value

    def ui_credentials(self) -> list[tuple[str, str]]:
        """UI_AUTH as (user, password) pairs for Gradio's login."""
        if self.ui_auth is None:
            return []
        pairs = [p.strip().partition(":") for p in self.ui_auth.get_secret_value().split(",")]
        return [(user, password) for user, _, password in pairs]

    @field_validator("agent_checkpoint_db")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


def env_names(field: str) -> list[str]:
    """The environment variables that set `field`: its name in capitals, as pydantic-settings derives it
    (only OPENAI_API_BASE has a second name)."""
    alias = Settings.model_fields[field].validation_alias
    return [str(n) for n in alias.choices] if isinstance(alias, AliasChoices) else [field.upper()]


def env_name(field: str) -> str:
    """The environment variable that sets `field`: the one that is set, else the first."""
    names = env_names(field)
    return next((n for n in names if n in os.environ), names[0])


def _explain(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = first["loc"][0] if first["loc"] else ""
    field = str(loc)
    if field not in Settings.model_fields:  # pydantic reports the alias; map it back to the field
        field = next(
            (
                n
                for n, f in Settings.model_fields.items()
                if isinstance(f.validation_alias, AliasChoices)
                and field.lower() in (str(c).lower() for c in f.validation_alias.choices)
            ),
            field,
        )
    name = env_name(field) if field in Settings.model_fields else field.upper()
    msg = first["msg"].removeprefix("Value error, ")
    # Never echo a value that may hold a key: SecretStr fields, and the endpoint list (keys inside).
    secret = (
        field not in Settings.model_fields
        or field == "agent_endpoints"
        or ("Secret" in str(Settings.model_fields[field].annotation))
    )
    shown = "" if secret else f"={first.get('input')!s}"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"Invalid setting {name}{shown}: {msg}{more}. Fix it in .env or the environment."


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from env/.env plus explicit overrides (by field name); raise ConfigError."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as err:
        raise ConfigError(_explain(err)) from None
    except SettingsError as err:  # a complex value (AGENT_ENDPOINTS) that is not JSON
        field = str(err).removeprefix('error parsing value for field "').partition('"')[0]
        name = env_name(field) if field in Settings.model_fields else "a setting"
        raise ConfigError(
            f"Invalid setting {name}: not valid JSON, e.g. "
            '[{"base_url": "http://gpu1:8000/v1"}, {"base_url": "http://gpu2:8000/v1"}]. '
            "Fix it in .env or the environment."
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide Settings from env/.env (cached)."""
    return load_settings()
