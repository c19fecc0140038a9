"""Telling organisers, once, that the database could not be written for a while.

While writes fail nothing can be queued (a post is a database write), so the news waits
until writing works again and has held for `settle` seconds: then one post per organiser
room, keyed by the outage's start, says from when to when. Without organiser rooms it
is a log line. An outage that starts again before it was told is told as one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import tzinfo
from typing import Final

from bot.core.associations import Directory
from bot.core.i18n import Translator
from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from bot.delivery import Delivery
from bot.storage.database import Database
from bot.storage.health import Outage, StorageHealth, StorageUnavailable

log = logging.getLogger(__name__)

SETTLE: Final = 5.0


class OutageReporter:
    def __init__(
        self,
        db: Database,
        delivery: Delivery,
        translator: Translator,
        directory: Directory,
        rooms: Sequence[RoomRef],
        timezone: tzinfo,
        *,
        settle: float = SETTLE,
    ) -> None:
        self._db = db
        self._health: StorageHealth = db.health
        self._delivery = delivery
        self._t = translator
        self._directory = directory
        self._rooms = list(rooms)
        self._tz = timezone
        self._settle = settle
        self.told = 0

    async def run(self) -> None:
        health = self._health
        while True:
            await health.wait_outage()
            await health.wait_writable()
            await asyncio.sleep(self._settle)
            outage = health.outage()
            if outage is None or outage.ended is None or not health.writable:
                continue  # failing again: told when that ends
            try:
                await self._tell(outage)
            except StorageUnavailable:
                continue
            except Exception:
                log.exception("could not tell organisers about the database outage")
            health.reported(outage)

    async def _tell(self, outage: Outage) -> None:
        assert outage.ended is not None
        if not self._rooms:
            log.error(
                "the database could not be written from %s to %s (%s); set "
                "bot.organiser_rooms to be told in chat",
                outage.began.isoformat(timespec="seconds"),
                outage.ended.isoformat(timespec="seconds"),
                outage.reason,
            )
            return
        # One transaction: every room is told, or none is and the next try tells all.
        async with self._db.transaction():
            for room in self._rooms:
                lang = self._directory.language_for(room)
                text = self._t.t(
                    "storage.recovered",
                    lang,
                    began=self._t.datetime(outage.began.astimezone(self._tz), lang),
                    ended=self._t.datetime(outage.ended.astimezone(self._tz), lang),
                )
                key = f"storage:{outage.began.timestamp():.3f}:{room}"
                await self._delivery.send(key, room, OutgoingMessage(text=text))
        self.told += 1
        log.info("told organisers in %d room(s) about the database outage", len(self._rooms))
