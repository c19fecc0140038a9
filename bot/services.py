"""What runs beside the adapters and plugins: telling organisers of a database outage
once it is over, and the HTTP service of health and metrics (when `[http]` is on)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from bot.http_service import HttpService, Parts
from bot.outages import OutageReporter

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


class Services:
    def __init__(self, reporter: OutageReporter, http: HttpService | None) -> None:
        self.reporter = reporter
        self.http = http
        self._task = asyncio.create_task(self._report(), name="outages")

    @classmethod
    async def start(cls, app: App, standby_http: HttpService | None = None) -> Services:
        """Start what runs beside the adapters; `standby_http` is the service a warm
        standby ran while waiting, which carries on as the active one's."""
        bot = app.settings.bot
        reporter = OutageReporter(
            app.db, app.delivery, app.translator, app.directory, bot.organiser_rooms, bot.tz
        )
        http = standby_http
        if app.settings.http.listen:
            parts = Parts(
                app.db,
                app.adapters,
                app.starter,
                app.scheduler,
                app.delivery,
                app.metrics,
                app.clock,
            )
            if http is not None:
                http.activate(parts)
            else:
                http = HttpService(app.settings.http.listen, parts)
                await http.start()
        return cls(reporter, http)

    async def _report(self) -> None:
        try:
            await self.reporter.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("telling organisers of database outages stopped")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self.http is not None:
            await self.http.stop()
