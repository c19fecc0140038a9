"""The composition root: the one place that wires concrete classes together.

Plugins are named by module (`bot.plugins` in the settings, the built-in list by
default) and imported here by name, so the framework's code never imports a feature.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.audit import AuditLog
from bot.commanding import Dispatcher
from bot.core.associations import Association, Directory
from bot.core.clock import Clock, SystemClock
from bot.core.i18n import Translator
from bot.core.platform import Adapter
from bot.core.refs import RoomRef, UserRef
from bot.data_map import framework_namespaces
from bot.delivery import Delivery
from bot.fence import Fence
from bot.fetching import Fetcher
from bot.heartbeat import beat, heartbeat_path
from bot.host import AppHost
from bot.housekeeping import Housekeeping
from bot.loading import BUILTIN_PLUGINS, import_plugin, plugin_settings_fields, read_settings
from bot.metrics import Metrics
from bot.notices import OrganiserNotices
from bot.people import People
from bot.plugin import Plugin
from bot.plugin_loading import load_plugin, unload_plugin
from bot.privacy import Privacy
from bot.scheduling import Scheduler, Waker
from bot.services import Services
from bot.settings import RootSettings
from bot.starting import AdapterStarter
from bot.stopping import drained, log_end, on_stop_signals, stop_inputs
from bot.storage.database import Database
from bot.storage.engines import can_stand_by, lock_instance, open_database, wait_instance
from bot.storage.instance import InstanceLock, InstanceLockedError
from bot.storage.migrations import refuse_newer
from bot.storage.state import AdapterState

if TYPE_CHECKING:
    from bot.http_service import HttpService

log = logging.getLogger(__name__)

# Builds a platform's adapter on the App's database (its state) and clock.
AdapterFactory = Callable[[AdapterState, Clock], Adapter]

__all__ = [
    "BUILTIN_PLUGINS",
    "App",
    "InstanceLockLost",
    "heartbeat_path",
    "import_plugin",
    "plugin_settings_fields",
    "read_settings",
]


_LOCALES = Path(__file__).parent / "locales"


def build_directory(settings: RootSettings) -> Directory:
    return Directory(
        (Association(a.id, a.name, tuple(a.rooms), a.language) for a in settings.associations),
        settings.bot.language,
    )


class InstanceLockLost(Exception):
    """The instance lock was lost while active: the run ended with nothing more sent."""


class App:
    def __init__(
        self,
        settings: RootSettings,
        plugin_classes: Sequence[type[Plugin]],
        *,
        adapters: Mapping[str, Adapter] | None = None,
        clock: Clock | None = None,
        waker: Waker | None = None,
        delivery_backoff: float = 1.0,
        allow_empty_database: bool = False,
        fence: Fence | None = None,
        own_process: bool = False,
        adapter_factories: Mapping[str, AdapterFactory] | None = None,
    ) -> None:
        self.settings = settings
        self._plugin_classes = list(plugin_classes)
        self._given_adapters = adapters
        self.clock: Clock = clock or SystemClock()
        self._waker = waker
        self._delivery_backoff = delivery_backoff
        self._allow_empty_database = allow_empty_database
        self._own_process = own_process
        # Platform adapters built by the caller on the App's own database (the tests and
        # benches, with short timings); by default each platform's `create_adapter`.
        self._adapter_factories = dict(adapter_factories or {})
        self.translator = Translator(settings.bot.language)
        self.directory = build_directory(settings)
        self.fetcher = Fetcher.from_settings(settings.fetching, clock=self.clock)
        self.adapters: dict[str, Adapter] = {}
        self.plugins: list[Plugin] = []
        self._db: Database | None = None
        self._instance: InstanceLock | None = None
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()  # a second stop signal: leave without waiting
        self.metrics = Metrics()  # a registry of its own: two Apps never collide
        # "starting", then "standby" while another instance holds the database, then
        # "active"; "stopped" when asked to stop while standing by.
        self.role = "starting"
        # Open until a lock that can be lost is held; tests may shorten its times.
        self.fence = fence or Fence()
        self.lock_lost: str | None = None  # why, once the instance lock was lost
        self._beat: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._standby_http: HttpService | None = None

    # -- wiring ------------------------------------------------------------------------

    def _make_adapters(self) -> dict[str, Adapter]:
        if self._given_adapters is not None:
            return dict(self._given_adapters)
        adapters: dict[str, Adapter] = {}
        if self.settings.console.enabled:
            adapters["console"] = self._console_adapter()
        for platform in ("matrix", "discord"):
            if getattr(self.settings, platform) is not None:
                adapters[platform] = self._platform_adapter(platform)
        return adapters

    def _console_adapter(self) -> Adapter:
        assert self._db is not None
        given = self._adapter_factories.get("console")
        if given is not None:  # the tests' own input and output
            return given(AdapterState(self._db, "console"), self.clock)
        from bot.adapters.console import ConsoleAdapter

        return ConsoleAdapter(self.settings.bot.name)

    def _platform_adapter(self, platform: str) -> Adapter:
        assert self._db is not None
        state = AdapterState(self._db, platform)
        given = self._adapter_factories.get(platform)
        if given is not None:
            return given(state, self.clock)
        # Imported by name so that a deployment without a platform never loads its library.
        module = importlib.import_module(f"bot.adapters.{platform}")
        adapter: Adapter = module.create_adapter(self.settings, state, self.clock)
        return adapter

    @property
    def db(self) -> Database:
        assert self._db is not None, "start() first"
        return self._db

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        if user in self.settings.bot.organisers:
            return True
        adapter = self.adapters.get(room.platform)
        if adapter is None or adapter.platform != user.platform:
            return False
        try:
            return await adapter.is_organiser(user, room)
        except Exception:
            log.exception("could not check whether %s organises %s", user, room)
            return False

    async def start(self) -> None:
        self.translator.load_dir(_LOCALES)
        self._db = await open_database(
            self.settings.bot.database, allow_empty=self._allow_empty_database
        )
        try:
            # One process per database; the open above only read it and changed nothing.
            # On PostgreSQL a second one waits as a warm standby until the first is gone.
            self._instance = await self._take_instance(self._db)
        except BaseException:
            await self._close_standby()
            await self._db.close()
            self._db = None
            raise
        if self._instance is None:  # asked to stop while standing by
            await self._close_standby()
            await self._db.close()
            self._db = None
            self.role = "stopped"
            return
        self.role = "active"
        self.metrics.active.set(1)
        self._instance.hold(self.fence)
        self._watch = asyncio.create_task(
            self._instance.watch(self.fence, self._lost_lock), name="instance-lock"
        )
        # Every namespace is checked before the first is migrated: a refused database
        # stays as it was.
        plugin_schemas = [c.migrations for c in self._plugin_classes if c.migrations is not None]
        await refuse_newer(self._db, [*framework_namespaces(), *plugin_schemas])
        for namespace in framework_namespaces():  # core, people, audit
            await namespace.upgrade(self._db)
        self.adapters = self._make_adapters()
        self.people = People(self._db)
        self.audit = AuditLog(self._db)
        self.privacy = Privacy(self._db, self.people, self.audit, self._plugin_classes)
        self.delivery = Delivery(
            self._db, self.clock, self.adapters, backoff_base=self._delivery_backoff
        )
        self.delivery.on_attempt = self.metrics.attempt
        self.notices = OrganiserNotices(
            self.settings, self.directory, self.translator, self.delivery
        )
        self.delivery.fence = self.fence
        # With the lock held no other instance runs: claims left by a killed process
        # are stale, and its work goes out now instead of when its leases run out.
        await self.delivery.release_claims()
        self.scheduler = Scheduler(
            self._db,
            self.clock,
            timezone=self.settings.bot.tz,
            grace=self.settings.bot.late_grace,
            on_missed=self.notices.missed,
            waker=self._waker,
        )
        self.dispatcher = Dispatcher(
            translator=self.translator,
            delivery=self.delivery,
            associations=self.directory,
            timezone=self.settings.bot.tz,
            is_organiser=self.is_organiser,
        )
        for cls in self._plugin_classes:
            self.plugins.append(await load_plugin(self, cls))
        # Each in the background: a platform that does not answer holds up no other.
        self.starter = AdapterStarter(
            self.adapters, lambda a: AppHost(self, a), self.delivery, self._stop, self.request_stop
        )
        self.starter.spawn_all()
        housekeeping = Housekeeping(
            self._db,
            self.clock,
            self.delivery,
            self.adapters,
            [c.migrations for c in self._plugin_classes],
            self.settings.privacy.lifetimes,
        )
        await housekeeping.arm(self.scheduler)
        # The outbox and the due jobs resume while the platforms connect: each platform's
        # posts wait for its adapter (delivery holds them), and one that catches up a
        # long outage (a standby taking over a busy Matrix account: 9 s) keeps none of
        # the others' posts back.
        await self.delivery.start()
        await self.scheduler.start()
        await self.starter.first_tries()
        for plugin in self.plugins:
            try:
                await plugin.on_ready()
            except Exception:
                log.exception("plugin %s failed when ready", plugin.name)
        # HTTP (the standby's service carries on), telling of database outages.
        self.services = await Services.start(self, self._standby_http)
        self._standby_http = None
        self.starter.announce(", ".join(p.name for p in self.plugins))
        if self._own_process:
            # What the start built (modules, plugins, caches of both platforms) lives as
            # long as the process: kept out of the cycle collector's full passes, which
            # otherwise walk all of it every thousand messages or so (tens of ms each,
            # measured in bench/discord_bench.py). Not for an App among others in one
            # process (the tests): what they leave behind would never be collected.
            gc.collect()
            gc.freeze()

    async def _take_instance(self, db: Database) -> InstanceLock | None:
        try:
            return await lock_instance(db)
        except InstanceLockedError:
            if not can_stand_by(db):
                raise
        if self.settings.http.listen:
            from bot.http_service import HttpService, StandbyParts

            self._standby_http = HttpService(
                self.settings.http.listen, StandbyParts(db, self.metrics, lambda: self.role)
            )
            await self._standby_http.start()
        # Said once the health service answers, so that whoever sees the role can ask it.
        self.role = "standby"
        self.metrics.active.set(0)
        self._beat = self._heartbeat()
        lock = await wait_instance(db, self._stop)
        if lock is not None:
            log.warning("standby: the active instance is gone; taking over")
        return lock

    async def _close_standby(self) -> None:
        if self._standby_http is not None:
            await self._standby_http.stop()
            self._standby_http = None
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    def _lost_lock(self, reason: str) -> None:
        """The fence is closed already: nothing more leaves this instance. Stop without
        waiting for deliveries (they stay queued for the instance that takes over)."""
        log.error(
            "lost the database's instance lock (%s): this instance posts nothing more and"
            " stops, so that a standby can take over",
            reason,
        )
        self.lock_lost = reason
        self.metrics.active.set(0)
        self.request_stop()
        self._hurry.set()

    async def member_rooms(self, user: UserRef) -> list[RoomRef]:
        """The configured rooms `user` is in, where the platform can tell (optional for
        adapters: `rooms_of_member`)."""
        adapter = self.adapters.get(user.platform)
        finder = getattr(adapter, "rooms_of_member", None)
        if finder is None:
            return []
        try:
            rooms: list[RoomRef] = await finder(user)
        except Exception:
            log.exception("could not tell which rooms %s is in", user)
            return []
        return rooms

    async def check_room(self, room: RoomRef) -> str | None:
        """Why the bot cannot use `room`, or None if it can (as far as the adapter knows)."""
        adapter = self.adapters.get(room.platform)
        if adapter is None:
            return self.translator.t("room.platform_off", None, platform=room.platform)
        checker = getattr(adapter, "check_room", None)
        if checker is None:
            return None
        try:
            problem: str | None = await checker(room)
        except Exception as exc:
            log.exception("checking %s failed", room)
            return repr(exc)
        return problem

    def health(self) -> dict[str, dict[str, str]]:
        return {name: adapter.health() for name, adapter in self.adapters.items()}

    # -- running -----------------------------------------------------------------------

    def request_stop(self, sig: signal.Signals | None = None) -> None:
        if self._stop.is_set():
            # Asked twice: stop waiting for the platforms; what is unsent stays queued.
            log.warning("asked again to stop: not waiting for pending deliveries")
            self._hurry.set()
            return
        if sig is not None:
            log.info("stopping on %s: finishing the work in hand", sig.name)
        self._stop.set()

    async def run(self, *, drain_timeout: float = 30.0) -> None:
        """Start, run until every adapter's input ends or a stop is asked, then stop:
        the event in hand is finished (never cut off between the writes it makes), posts
        in flight are sent while the platforms answer, and nothing new is taken in."""
        on_stop_signals(self.request_stop)
        try:
            await self.start()
            if self.role == "stopped":
                return  # stopped while standing by: nothing was started
            beating = self._beat or self._heartbeat()
            self._beat = beating
            inputs = {
                asyncio.create_task(self.starter.serve(n, a), name=f"adapter:{n}"): a
                for n, a in self.adapters.items()
            }
            stop_wait = asyncio.create_task(self._stop.wait())
            pending: set[asyncio.Task[Any]] = set(inputs)
            while pending and not self._stop.is_set():
                done, pending = await asyncio.wait(
                    pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task is not stop_wait:
                        log_end(task)
                pending.discard(stop_wait)
            stop_wait.cancel()
            await stop_inputs({t: inputs[t] for t in pending}, self._hurry)
            beating.cancel()
            # Finish what is in flight before leaving.
            if not await drained(self.delivery, self._hurry, drain_timeout):
                log.warning("stopping with deliveries still pending; they resume on next start")
        finally:
            await self.stop()
        if self.lock_lost is not None:
            raise InstanceLockLost(self.lock_lost)
        if self.starter.fatal is not None:
            raise self.starter.fatal  # a platform refused the bot: `run` fails with it

    def _heartbeat(self) -> asyncio.Task[None]:
        return asyncio.create_task(
            beat(heartbeat_path(self.settings), self.clock, lambda: self.role), name="heartbeat"
        )

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        await self._close_standby()
        for part in ("services", "starter"):  # those `start` got to
            if hasattr(self, part):
                await getattr(self, part).stop()
        for adapter in self.adapters.values():
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s failed to stop cleanly", adapter.platform)
        for plugin in reversed(self.plugins):
            await unload_plugin(self, plugin)
        self.plugins.clear()
        if hasattr(self, "delivery"):
            await self.delivery.stop()
        if hasattr(self, "scheduler"):
            self.scheduler.shutdown()
        await self.fetcher.close()
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._instance is not None:
            await self._instance.release()
            self._instance = None
