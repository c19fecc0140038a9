"""The daily forgetting: finished deliveries, inbound ids and every table's lifetime.

What is kept, and for how long, is the least-data rule's business (docs/privacy.md):
finished deliveries long enough that a key (a reminder, a relayed message) is never
posted twice while it can still come up, inbound ids long enough to catch repeats across
restarts, and each table as its lifetime says (bot/lifetimes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Final

from bot.core.clock import Clock
from bot.data_map import all_lifetimes
from bot.delivery import Delivery
from bot.lifetimes import purge
from bot.scheduling import JobRun, Scheduler
from bot.storage.database import Database
from bot.storage.migrations import Migrations
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

OUTBOX_RETENTION: Final = timedelta(days=60)
INBOUND_RETENTION: Final = timedelta(days=7)
CRON: Final = "17 4 * * *"

__all__ = ["CRON", "INBOUND_RETENTION", "OUTBOX_RETENTION", "Housekeeping"]


class Housekeeping:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        delivery: Delivery,
        platforms: Iterable[str],
        plugin_schemas: Iterable[Migrations | None],
        lifetimes: Mapping[str, timedelta],
    ) -> None:
        self._db = db
        self._clock = clock
        self._delivery = delivery
        self._platforms = list(platforms)
        self._schemas = list(plugin_schemas)
        self._lifetimes = lifetimes

    async def arm(self, scheduler: Scheduler) -> None:
        """Daily; a run days late (the bot was down) still runs, unreported."""
        scheduler.register("core", "housekeeping", self.run)
        await scheduler.every(
            "core", "housekeeping", CRON, "housekeeping", grace=timedelta(days=3650)
        )

    async def run(self, run: JobRun) -> None:
        now = self._clock.now()
        outbox = await self._delivery.purge(now - OUTBOX_RETENTION)
        seen = 0
        for platform in self._platforms:
            seen += await AdapterState(self._db, platform).forget_before(now - INBOUND_RETENTION)
        log.info("housekeeping: forgot %d finished deliveries and %d inbound ids", outbox, seen)
        await purge(self._db, all_lifetimes(self._schemas), now, self._lifetimes)
