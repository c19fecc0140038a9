"""What the bot tells its organisers by itself: work missed while it was down, and
alerts an adapter raises (`AdapterHost.alert`), in each of `bot.organiser_rooms`, once
per key, through the delivery; a log line when no organiser room is set."""

from __future__ import annotations

import logging

from bot.core.associations import Directory
from bot.core.i18n import Translator
from bot.core.messages import OutgoingMessage
from bot.delivery import Delivery
from bot.scheduling import MissedJob
from bot.settings import RootSettings

log = logging.getLogger(__name__)


class OrganiserNotices:
    def __init__(
        self,
        settings: RootSettings,
        directory: Directory,
        translator: Translator,
        delivery: Delivery,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._t = translator
        self._delivery = delivery

    async def missed(self, job: MissedJob) -> None:
        """Tell organisers once about work that fell due too long ago to post now."""
        rooms = self._settings.bot.organiser_rooms
        if not rooms:
            log.error(
                "missed while down: %s (due %s); set bot.organiser_rooms to be told in chat",
                job.key,
                job.due_at.isoformat(),
            )
            return
        for room in rooms:
            lang = self._directory.language_for(room)
            text = self._t.t(
                "schedule.missed",
                lang,
                job=self._t.t(f"jobs.{job.owner}.{job.handler}", lang),
                when=self._t.datetime(job.due_at.astimezone(self._settings.bot.tz), lang),
                key=job.key,
            )
            await self._delivery.send(f"missed:{job.key}:{room}", room, OutgoingMessage(text=text))

    async def alert(self, key: str, text_key: str, /, **params: object) -> int:
        """Tell organisers once, in each organiser room (see `AdapterHost.alert`); how
        many posts were queued (0 when each was known already)."""
        rooms = self._settings.bot.organiser_rooms
        if not rooms:
            log.warning(
                "%s (set bot.organiser_rooms to be told in chat)",
                self._t.t(text_key, "en", **params),
            )
            return 0
        queued = 0
        for room in rooms:
            text = self._t.t(text_key, self._directory.language_for(room), **params)
            queued += await self._delivery.send(f"{key}:{room}", room, OutgoingMessage(text=text))
        return queued
