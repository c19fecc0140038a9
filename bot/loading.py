"""Which plugins run, and the settings with every plugin's section: read once, from the
configuration file, before anything else starts."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from bot.config_file import import_plugins, read_config_file
from bot.plugin import Plugin
from bot.settings import RootSettings, load_settings

BUILTIN_PLUGINS: Final = (
    "plugins.help",
    "plugins.bridge",
    "plugins.calendar",
    "plugins.accounts",
    "plugins.polls",
    "plugins.updates",
    "plugins.privacy",
)


def plugin_modules(settings_plugins: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(settings_plugins) if settings_plugins is not None else BUILTIN_PLUGINS


def import_plugin(module_name: str) -> type[Plugin]:
    module = importlib.import_module(module_name)
    cls = getattr(module, "PLUGIN", None)
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise ImportError(f"{module_name} has no PLUGIN (a Plugin subclass)")
    return cls


def plugin_settings_fields(classes: Iterable[type[Plugin]]) -> dict[str, tuple[Any, Any]]:
    return {
        cls.settings_key: (cls.settings_type, cls.settings_default)
        for cls in classes
        if cls.settings_key is not None
    }


def read_settings(path: Path) -> tuple[RootSettings, list[type[Plugin]]]:
    """Load the settings with every plugin's section, and the plugin classes to run;
    ConfigError for a file that cannot be read or a listed module that is no plugin."""
    raw = read_config_file(path)
    section = raw.get("bot")
    listed = section.get("plugins") if isinstance(section, dict) else None
    names = listed if isinstance(listed, list) else None
    classes = import_plugins(path, plugin_modules(names), Plugin, listed=names is not None)
    settings = load_settings(path, plugin_settings_fields(classes), data=raw)
    return settings, classes
