"""Settings and prompts: the only place configuration is read."""

from configs.settings import ConfigError, Settings, get_settings, load_settings

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings"]
