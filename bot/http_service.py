"""Health and metrics over HTTP, when `[http] listen` is set (off by default).

`/live` answers while the event loop runs. `/ready` answers 200 when the database takes
a write, every enabled adapter is connected and the scheduler runs, and 503 with the
reasons as JSON otherwise. `/metrics` is Prometheus text from the App's own registry.
Every answer names the instance's `role`: `active`, or `standby` while another instance
holds the database (a standby is ready when it can read the database, and writes
nothing; its service carries on, with the active checks, once it takes over).
Bind it to loopback or a private network: it tells who is connected, never what is said.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.core.clock import Clock
from bot.core.platform import Adapter
from bot.delivery import Delivery
from bot.health_probe import listen_address
from bot.metrics import Backlog, Metrics
from bot.scheduling import Scheduler
from bot.starting import AdapterStarter
from bot.storage.database import Database
from bot.storage.health import StorageUnavailable
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

# A write proves the database is writable; probes closer together share one.
PROBE_EVERY: Final = 2.0
PROBE_KEY: Final = "ready_probe"


@dataclass
class Parts:
    """What the service looks at: the App's pieces, never the App."""

    db: Database
    adapters: Mapping[str, Adapter]
    starter: AdapterStarter
    scheduler: Scheduler
    delivery: Delivery
    metrics: Metrics
    clock: Clock


@dataclass
class StandbyParts:
    """What a warm standby has: its database connection and metrics, and its role."""

    db: Database
    metrics: Metrics
    role: Callable[[], str]


class HttpService:
    def __init__(self, listen: str, parts: Parts | StandbyParts) -> None:
        self.host, self._port = listen_address(listen)
        self._standby = parts if isinstance(parts, StandbyParts) else None
        self._parts: Parts | None = parts if isinstance(parts, Parts) else None
        self._runner: web.AppRunner | None = None
        self.port = 0  # the bound port (the configured one, or what port 0 gave)
        self._probed_at = -PROBE_EVERY
        self._probe: str | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/live", self._live)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self._port
        log.info(
            "health and metrics on http://%s:%d (/live, /ready, /metrics)", self.host, self.port
        )

    def activate(self, parts: Parts) -> None:
        """The standby took over: from now on the active checks apply."""
        self._parts, self._standby = parts, None

    @property
    def role(self) -> str:
        return self._standby.role() if self._standby is not None else "active"

    async def stop(self) -> None:
        # Taken before the first await: a second stop meanwhile finds nothing to do
        # (two cleanups of one runner race, and aiohttp's second finds no server).
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- endpoints --------------------------------------------------------------------

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True, "role": self.role})

    async def _ready(self, request: web.Request) -> web.Response:
        checks = await self.checks()
        problems = {name: why for name, why in checks.items() if why is not None}
        body: dict[str, Any] = {"ready": not problems, "role": self.role, "checks": {
            name: why or "ok" for name, why in checks.items()
        }}  # fmt: skip
        if problems:
            body["reason"] = "; ".join(f"{name}: {why}" for name, why in problems.items())
        return web.json_response(body, status=503 if problems else 200)

    async def _metrics(self, request: web.Request) -> web.Response:
        parts = self._parts
        if parts is None:
            assert self._standby is not None
            body = self._standby.metrics.render()
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
        now = parts.clock.now().timestamp()
        backlog = {
            platform: Backlog(count, max(0.0, now - oldest))
            for platform, (count, oldest) in (await parts.delivery.backlog()).items()
        }
        connected = {name: self._adapter_problem(name) is None for name in parts.adapters}
        await parts.metrics.refresh(connected, backlog, parts.db.health.writable)
        body = parts.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- checks -----------------------------------------------------------------------

    async def checks(self) -> dict[str, str | None]:
        """Each check's problem, or None when it passes."""
        if self._parts is None:
            return {"database": await self._standby_database_problem()}
        found: dict[str, str | None] = {"database": await self._database_problem()}
        for name in self._parts.adapters:
            found[f"adapter:{name}"] = self._adapter_problem(name)
        found["scheduler"] = None if self._parts.scheduler.running else "not running"
        return found

    async def _standby_database_problem(self) -> str | None:
        # Read only: the standby writes nothing while another instance is active.
        assert self._standby is not None
        try:
            await self._standby.db.fetchone("SELECT 1")
        except Exception as exc:
            return f"not reachable ({type(exc).__name__})"
        return None

    async def _database_problem(self) -> str | None:
        assert self._parts is not None
        now = time.monotonic()
        if now - self._probed_at < PROBE_EVERY:
            return self._probe
        self._probed_at = now
        try:
            stamp = self._parts.clock.now().isoformat()
            await AdapterState(self._parts.db, "core").set(PROBE_KEY, stamp)
            self._probe = None
        except StorageUnavailable as exc:
            self._probe = f"not writable ({exc})"
        except Exception as exc:
            log.warning("the readiness probe of the database failed", exc_info=True)
            self._probe = f"failing ({type(exc).__name__})"
        return self._probe

    def _adapter_problem(self, name: str) -> str | None:
        parts = self._parts
        assert parts is not None
        if not parts.starter.started(name):
            why = parts.starter.problems.get(name)
            return f"connecting ({why})" if why else "connecting"
        connected = getattr(parts.adapters[name], "connected", None)
        if connected is not None and not connected():
            return "disconnected"
        return None
