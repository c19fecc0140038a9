"""Plugins: the base class, the context they get, decorators, and the loader.

A plugin subclasses `Plugin`, overrides the hooks it needs (they do nothing by default)
and marks methods with `@command`, `@on` and `@job`. It gets a narrow `PluginContext`
(delivery, database, scheduler, its settings section, logger, clock, translations,
associations), never the app. The loader runs a plugin's migrations and `on_start`
first, then registers all its handlers at once, rolling back if any registration fails;
unloading unregisters in `finally`, whatever `on_stop` does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bot.core.associations import Directory
from bot.core.clock import Clock
from bot.core.commands import CommandSpec, Flag, Param
from bot.core.events import InboundEvent
from bot.core.i18n import Translator
from bot.core.permissions import Level
from bot.core.refs import RoomRef, UserRef
from bot.delivery import Delivery
from bot.fetching import Fetcher
from bot.metrics import PluginMetrics, no_metrics
from bot.people import People
from bot.privacy import PersonalData, Privacy
from bot.scheduling import BatchHandler, JobRun, Scheduler
from bot.storage.database import Database
from bot.storage.migrations import Migrations

if TYPE_CHECKING:
    from bot.commanding import CommandCall

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[None]])

_COMMAND_ATTR = "__samverkan_command__"
_EVENT_ATTR = "__samverkan_events__"
_JOB_ATTR = "__samverkan_job__"


def command(
    name: str,
    *,
    sv: str,
    help: str,
    params: Sequence[Param] = (),
    flags: Sequence[Flag] = (),
    level: Level = Level.MEMBER,
) -> Callable[[F], F]:
    """Declare a command once: `@command("poll new", sv="omröstning ny", help="polls.new")`."""

    def mark(fn: F) -> F:
        spec = CommandSpec(
            path=tuple(name.split()),
            sv_path=tuple(sv.split()),
            help=help,
            params=tuple(params),
            flags=tuple(flags),
            level=level,
        )
        setattr(fn, _COMMAND_ATTR, spec)
        return fn

    return mark


def on(*event_types: type[InboundEvent]) -> Callable[[F], F]:
    """Handle inbound events of these types (commands are not delivered here)."""

    def mark(fn: F) -> F:
        setattr(fn, _EVENT_ATTR, tuple(event_types))
        return fn

    return mark


def job(name: str) -> Callable[[F], F]:
    """A handler for scheduled rows whose `handler` is `name`."""

    def mark(fn: F) -> F:
        setattr(fn, _JOB_ATTR, name)
        return fn

    return mark


class PluginScheduler:
    """The scheduler, bound to one plugin: its rows are owned and named by it."""

    def __init__(self, scheduler: Scheduler, owner: str) -> None:
        self._scheduler = scheduler
        self._owner = owner

    async def at(
        self,
        key: str,
        when: datetime,
        handler: str,
        payload: dict[str, Any] | None = None,
        *,
        grace: timedelta | None = None,
    ) -> bool:
        return await self._scheduler.at(self._owner, key, when, handler, payload, grace=grace)

    async def every(
        self,
        name: str,
        cron: str,
        handler: str,
        payload: dict[str, Any] | None = None,
        *,
        grace: timedelta | None = None,
    ) -> datetime:
        return await self._scheduler.every(self._owner, name, cron, handler, payload, grace=grace)

    async def at_many(
        self,
        rows: Sequence[tuple[str, datetime, str, dict[str, Any] | None]],
        *,
        grace: timedelta | None = None,
    ) -> int:
        """`at` for many rows (key, when, handler, payload) in one statement."""
        return await self._scheduler.at_many(self._owner, rows, grace=grace)

    def batch(self, name: str, handler: BatchHandler) -> None:
        """Hand the due rows of handler `name` to `handler` together (see
        `Scheduler.register_batch`); the `@job` handler stays the fallback."""
        self._scheduler.register_batch(self._owner, name, handler)

    async def cancel(self, key: str) -> bool:
        return await self._scheduler.cancel(key)

    async def cancel_many(self, keys: Sequence[str]) -> int:
        return await self._scheduler.cancel_many(keys)

    async def cancel_every(self, name: str) -> bool:
        """Stop a crontab job started with `every(name, ...)`."""
        return await self._scheduler.cancel(self._scheduler.cron_key(self._owner, name))

    async def cancel_prefix(self, prefix: str) -> int:
        return await self._scheduler.cancel_prefix(prefix)

    async def pending(self, prefix: str = "") -> list[tuple[str, datetime]]:
        return await self._scheduler.pending(prefix)

    async def count_pending(self, prefix: str = "") -> int:
        return await self._scheduler.count_pending(prefix)


OrganiserCheck = Callable[[UserRef, RoomRef], Awaitable[bool]]
MemberRooms = Callable[[UserRef], Awaitable[list[RoomRef]]]


async def _no_rooms(user: UserRef) -> list[RoomRef]:
    return []


# An organiser's action for the audit log: who, what, the room it was done from (whose
# association it is filed under), and details (ids, never message text).
AuditRecorder = Callable[
    [UserRef | None, str, RoomRef | None, Mapping[str, Any] | None], Awaitable[None]
]


async def _no_audit(
    actor: UserRef | None, action: str, room: RoomRef | None, detail: Mapping[str, Any] | None
) -> None:
    return None


@dataclass(frozen=True)
class PluginContext:
    name: str
    settings: Any
    db: Database
    delivery: Delivery
    scheduler: PluginScheduler
    clock: Clock
    translator: Translator
    associations: Directory
    timezone_name: str
    organiser_rooms: tuple[RoomRef, ...]
    is_organiser: OrganiserCheck
    health: Callable[[], dict[str, dict[str, str]]]
    commands: Callable[[], list[CommandSpec]]
    check_room: Callable[[RoomRef], Awaitable[str | None]]
    people: People
    # Every outgoing HTTP fetch (feeds, calendars) goes through it: caps, SSRF guard.
    fetcher: Fetcher
    # The configured rooms `user` is a member of, as far as its platform can tell (a
    # direct message's sender, say): for platforms that cannot tell, none.
    member_rooms: MemberRooms = _no_rooms
    # Gauges read at each scrape of /metrics: `ctx.metrics.gauge(name, help, fn)`.
    metrics: PluginMetrics = field(default_factory=no_metrics)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("plugins"))
    audit: AuditRecorder = _no_audit
    # Every feature's data of one person (export, erase): for the privacy commands.
    privacy: Privacy | None = None

    def t(self, key: str, language: str | None = None, /, **params: object) -> str:
        return self.translator.t(key, language, **params)


class Plugin:
    """Base of every feature. Hooks do nothing by default."""

    name: ClassVar[str] = ""
    settings_key: ClassVar[str | None] = None
    settings_type: ClassVar[Any] = None
    settings_default: ClassVar[Any] = None
    migrations: ClassVar[Migrations | None] = None
    locales: ClassVar[str | None] = None  # folder of sv.toml / en.toml, beside the plugin
    # A person's rows in the plugin's tables, exported or erased on request (the
    # lifetimes of its tables are declared on its `migrations`).
    personal_data: ClassVar[PersonalData] = PersonalData()

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.log = ctx.log

    async def on_start(self) -> None:
        """After migrations, before handlers are registered: load state, arm jobs."""

    async def on_ready(self) -> None:
        """After every plugin and adapter has started."""

    async def on_stop(self) -> None:
        """Before the plugin's handlers are removed."""

    # -- discovered by the loader ------------------------------------------------------

    def command_handlers(
        self,
    ) -> list[tuple[CommandSpec, Callable[[CommandCall], Awaitable[None]]]]:
        found = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            spec = getattr(fn, _COMMAND_ATTR, None)
            if isinstance(spec, CommandSpec):
                owned = CommandSpec(
                    spec.path,
                    spec.sv_path,
                    spec.help,
                    spec.params,
                    spec.flags,
                    spec.level,
                    self.name,
                )
                found.append((owned, getattr(self, attr)))
        return found

    def event_handlers(self) -> list[tuple[type[InboundEvent], Callable[[Any], Awaitable[None]]]]:
        found = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            for event_type in getattr(fn, _EVENT_ATTR, ()):
                found.append((event_type, getattr(self, attr)))
        return found

    def job_handlers(self) -> list[tuple[str, Callable[[JobRun], Awaitable[None]]]]:
        found = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            name = getattr(fn, _JOB_ATTR, None)
            if isinstance(name, str):
                found.append((name, getattr(self, attr)))
        return found
