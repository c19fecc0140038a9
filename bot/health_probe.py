"""What `samverkan health` needs of the configuration, read without the rest of the bot.

A container's health check runs every few seconds: loading every plugin and validating
the whole file each time cost about a second of CPU a probe. The probe needs two keys,
`bot.database` (the heartbeat lives beside it) and `http.listen`, from the same file and
environment as `run`; `run` and `check-config` validate the rest.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEFAULT_CONFIG: Final = Path("config/samverkan.toml")
DEFAULT_DATABASE: Final = "data/samverkan.db"


class ProbeConfigError(Exception):
    """The file cannot be read for the probe; `str()` names the key or the file."""


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    database: str
    listen: str

    @property
    def heartbeat(self) -> Path:
        # As bot.storage.target.local_dir, not imported: the probe loads nothing of the bot.
        if self.database.startswith(("postgresql://", "postgres://")):
            return Path("data") / "heartbeat"
        return Path(self.database).with_name("heartbeat")


def config_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("SAMVERKAN_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def _key(raw: dict[str, Any], section: str, key: str, default: str) -> str:
    # The environment overrides the file, as for `run`.
    env = os.environ.get(f"SAMVERKAN_{section.upper()}__{key.upper()}")
    if env is not None:
        return env
    part = raw.get(section)
    value = part.get(key, default) if isinstance(part, dict) else default
    if not isinstance(value, str):
        raise ProbeConfigError(f"{section}.{key}: must be text")
    return value


def probe_settings(explicit: str | None) -> ProbeSettings:
    path = config_path(explicit)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProbeConfigError(f"{path}: cannot be read ({type(exc).__name__})") from None
    return ProbeSettings(
        _key(raw, "bot", "database", DEFAULT_DATABASE), _key(raw, "http", "listen", "").strip()
    )


def listen_address(value: str) -> tuple[str, int]:
    """`host:port` (`[::1]:9180` for IPv6) as (host, port); ValueError if it is not."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("write it as host:port, like 127.0.0.1:9180")
    return host, int(port)
