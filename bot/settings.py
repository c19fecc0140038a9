"""Settings: one pydantic-settings model over the TOML file and the environment.

The keys are the public contract (see config/example.toml). Sections of platforms may be
absent. Plugins bring their own sections: the root model is built with one field per
plugin (`Plugin.settings_key`), so every key, a plugin's too, is validated at start and by
`samverkan check-config`, with its path in the error.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

from bot.config_file import (
    ConfigError,
    environment_problems,
    read_config_file,
    settings_error_problem,
    validation_problems,
)
from bot.core.refs import RoomRef, UserRef
from bot.core.timeparse import (
    OutOfRangeError,
    checked_duration,
    format_duration,
    parse_duration,
)
from bot.health_probe import listen_address
from bot.storage.target import DatabaseUrl, parse_target

__all__ = ["ConfigError"]  # where it has always been imported from

DEFAULT_CONFIG = Path("config/samverkan.toml")


# Reasons below never quote the value: it may be a secret put under the wrong key.


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A bare number counts seconds; zero, negative, infinite or huge ones are
        # refused here rather than breaking the schedule later.
        if not math.isfinite(value):
            raise ValueError("not a finite duration; write it like 90s, 30m, 1h, 1d or 7d")
        return checked_duration(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("a duration is written like 90s, 30m, 1h, 1d or 7d")


def between(low: timedelta, high: timedelta) -> BeforeValidator:
    """A narrower range for one duration key: `Annotated[Duration, between(a, b)]`.
    It runs before Duration's own parsing, so a value past every range is told this
    key's range, not the general one."""

    def check(value: object) -> timedelta:
        message = f"must be between {format_duration(low)} and {format_duration(high)}"
        try:
            parsed = _duration(value)
        except OutOfRangeError:
            raise ValueError(message) from None
        if not low <= parsed <= high:
            raise ValueError(message)
        return parsed

    return BeforeValidator(check)


def _cron(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a schedule is a crontab string such as '30 7 * * mon'")
    try:
        CronTrigger.from_crontab(value)
    except ValueError:
        fields = len(value.split())
        why = f" ({fields} field{'' if fields == 1 else 's'}, not 5)" if fields != 5 else ""
        raise ValueError(
            f"not a crontab schedule{why}: minute hour day month weekday, such as '30 7 * * mon'"
        ) from None
    return value


def _room(value: object) -> RoomRef:
    if isinstance(value, RoomRef):
        return value
    try:
        return RoomRef.parse(str(value))
    except ValueError:
        raise ValueError(
            "not a room reference: matrix:!room:server, discord:<channel id> or console:<name>"
        ) from None


def _user(value: object) -> UserRef:
    if isinstance(value, UserRef):
        return value
    try:
        return UserRef.parse(str(value))
    except ValueError:
        raise ValueError(
            "not a user reference: matrix:@user:server, discord:<user id> or console:<name>"
        ) from None


Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)
]
Cron = Annotated[str, AfterValidator(_cron)]
Room = Annotated[RoomRef, BeforeValidator(_room), PlainSerializer(str, return_type=str)]
User = Annotated[UserRef, BeforeValidator(_user), PlainSerializer(str, return_type=str)]
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


def _network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        # Host bits are forgiven (10.1.2.3/8 is 10.0.0.0/8); a bare address is a /32.
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        # The value is not echoed: the key's path says which entry it is.
        raise ValueError("not a network; write it like 127.0.0.0/8 or fc00::/7") from None


Network = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(_network),
    PlainSerializer(str, return_type=str),
]


# A file path (SQLite) or a postgresql:// URL, whose password never shows (see
# bot/storage/target.py).
DatabaseTarget = Annotated[
    Path | DatabaseUrl, PlainValidator(parse_target), PlainSerializer(str, return_type=str)
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSettings(Section):
    name: str = "Samverkan"
    language: Literal["sv", "en"] = "sv"
    timezone: str = "Europe/Stockholm"
    database: DatabaseTarget = Path("data/samverkan.db")
    organisers: list[User] = []
    organiser_rooms: list[Room] = []
    late_grace: Duration = timedelta(hours=1)
    plugins: list[str] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known time zone (e.g. Europe/Stockholm)") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ConsoleSettings(Section):
    enabled: bool = False


class MatrixSettings(Section):
    homeserver: Annotated[str, Field(pattern=r"^https?://\S+$")]
    user_id: Annotated[str, Field(pattern=r"^@[^:\s]+:\S+$")]
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    device_id: str | None = None
    store_path: Path = Path("data/matrix")
    pickle_key: SecretStr | None = None
    command_prefix: Annotated[str, Field(min_length=1, max_length=3)] = "!"
    organiser_power_level: Annotated[int, Field(ge=0, le=100)] = 50

    @model_validator(mode="after")
    def _credentials(self) -> MatrixSettings:
        if self.password is None and self.access_token is None:
            raise ValueError("give password or access_token")
        return self


class DiscordSettings(Section):
    token: SecretStr
    guild_ids: list[int] = []
    organiser_roles: list[int] = []
    api_base_url: Annotated[str, Field(pattern=r"^https?://\S+$")] = "https://discord.com/api/v10"
    gateway_url: str = ""
    native_polls: bool = True
    # Gateway logins (IDENTIFY) in a rolling 24 h, counted in the database across
    # instances and restarts: organisers are told at identify_warn; at identify_limit
    # the bot stops logging in to Discord (which resets a token after 1000 a day).
    # Below identify_limit (bot/config_checks.py says so otherwise).
    identify_warn: Annotated[int, Field(ge=1)] = 100
    identify_limit: Annotated[int, Field(ge=1, lt=1000)] = 500
    # A crash loop (5 logins within 10 minutes) makes the next start wait this long before
    # its login, doubling with each further one, up to 15 minutes.
    identify_backoff: Duration = timedelta(seconds=30)


class FetchingSettings(Section):
    # Networks that may be fetched from although internal (loopback, private,
    # link-local...), which the guard against request forgery refuses otherwise.
    allow: list[Network] = []


class HttpSettings(Section):
    # Health (/live, /ready) and Prometheus metrics (/metrics); empty: no HTTP server.
    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value.strip():
            listen_address(value)
        return value.strip()


class PrivacySettings(Section):
    # How long each table keeps its rows, by table name, where the defaults declared
    # beside the migrations do not suit (`samverkan privacy report` lists them).
    lifetimes: dict[str, Duration] = {}


class AssociationSettings(Section):
    id: Identifier
    name: str
    rooms: list[Room] = []
    language: Literal["sv", "en"] | None = None


class RootSettings(BaseSettings):
    """The fields every deployment has; `build_settings_class` adds the plugins'."""

    model_config = SettingsConfigDict(
        env_prefix="SAMVERKAN_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )
    # What the configuration file holds, read once by `load_settings`.
    file_data: ClassVar[dict[str, Any] | None] = None

    bot: BotSettings = BotSettings()
    console: ConsoleSettings = ConsoleSettings()
    matrix: MatrixSettings | None = None
    discord: DiscordSettings | None = None
    associations: list[AssociationSettings] = []
    fetching: FetchingSettings = FetchingSettings()
    http: HttpSettings = HttpSettings()
    privacy: PrivacySettings = PrivacySettings()

    @model_validator(mode="after")
    def _consistent(self) -> RootSettings:
        # Named by their place, not their value: the key paths say which entries.
        seen: dict[str, str] = {}
        ids: dict[str, int] = {}
        for n, assoc in enumerate(self.associations):
            if assoc.id in ids:
                raise ValueError(f"associations.{n}.id is the same as associations.{ids[assoc.id]}")
            ids[assoc.id] = n
            for r, room in enumerate(assoc.rooms):
                if str(room) in seen:
                    raise ValueError(
                        f"associations.{n}.rooms.{r} belongs to both {seen[str(room)]} "
                        f"and associations.{n}"
                    )
                seen[str(room)] = f"associations.{n}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        data = getattr(settings_cls, "file_data", None)
        if data is not None:
            # Lowest priority, as the TOML source was: the environment overrides it.
            sources.append(InitSettingsSource(settings_cls, init_kwargs=data))
        return tuple(sources)

    def plugin_section(self, key: str) -> Any:
        return getattr(self, key)

    def all_rooms(self) -> list[RoomRef]:
        """Every room named anywhere in the settings, plugins' sections included, in
        the order they first appear."""
        found = {str(v): v for v in leaf_values(self) if isinstance(v, RoomRef)}
        return list(found.values())

    def secrets(self) -> list[str]:
        """Every secret's value, for the log filter that redacts them."""
        return [v.get_secret_value() for v in leaf_values(self) if isinstance(v, SecretStr)]


def leaf_values(value: object) -> Iterator[object]:
    """Every value inside a settings model, depth first, in declaration order."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from leaf_values(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from leaf_values(item)
    else:
        yield value


def build_settings_class(plugin_fields: Mapping[str, tuple[Any, Any]]) -> type[RootSettings]:
    """The root model with one extra field per plugin section: name -> (type, default)."""
    fields: dict[str, Any] = {
        name: (annotation, Field(default_factory=_factory(default)))
        for name, (annotation, default) in plugin_fields.items()
    }
    model: type[RootSettings] = create_model("Settings", __base__=RootSettings, **fields)
    return model


def _factory(default: Any) -> Any:
    if callable(default):
        return default
    return lambda: default


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("SAMVERKAN_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def load_settings(
    path: Path,
    plugin_fields: Mapping[str, tuple[Any, Any]] | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> RootSettings:
    """Read (unless `data` is what the file held) and validate; raise ConfigError
    naming every bad key. Never echoes values, so a secret in the wrong place is not
    printed back."""
    if data is None:
        data = read_config_file(path)
    cls = build_settings_class(plugin_fields or {})
    problems = environment_problems(cls)
    if problems:
        raise ConfigError(str(path), problems)
    cls.file_data = data
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigError(str(path), validation_problems(exc)) from None
    except SettingsError as exc:
        raise ConfigError(str(path), [settings_error_problem(exc)]) from None
    except (ArithmeticError, TypeError, ValueError) as exc:
        # A validator that failed in a way of its own: still one line, no traceback.
        reason = f"a value cannot be used ({type(exc).__name__})"
        raise ConfigError(str(path), [("(settings)", reason)]) from None
