"""Reminders: when they fall due, arming them, and what a change of event does to them.

One scheduled row per occurrence and offset (the scheduler's table is the truth); when
it runs, one post per room of the targeted associations, each keyed
`reminder:<uid>:<occurrence>:<offset>:<room>`. A move re-arms the pending rows (a row
that already ran is left alone by the scheduler) and tells the rooms that were already
reminded; a cancellation drops the pending rows and tells the rooms that were reminded.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.core.messages import Button, OutgoingMessage
from bot.core.refs import RoomRef
from bot.plugin import PluginContext
from plugins.calendar.formatting import Formatter
from plugins.calendar.model import Occurrence, job_key, job_prefix, offset_label, reminder_key
from plugins.calendar.storage import Store

log = logging.getLogger(__name__)

RSVP_YES = "calendar:rsvp:yes"
RSVP_NO = "calendar:rsvp:no"
# The reactions offered on Matrix for the same answers (rsvp.py reads these and others).
YES_EMOJI = "👍"
NO_EMOJI = "👎"


def due_at(o: Occurrence, offset: timedelta, tz: ZoneInfo, all_day_time: time) -> datetime:
    """When the reminder `offset` before `o` is due. Whole days are counted on the local
    calendar, so "1d" before an 18.00 event is 18.00 the day before, DST or not; the rest
    is exact. All-day events count from `all_day_time` on their first day."""
    local = o.start.astimezone(tz)
    if o.all_day:
        local = datetime.combine(local.date(), all_day_time, tz)
    wall = local.replace(tzinfo=None) - timedelta(days=offset.days)
    anchored = wall.replace(tzinfo=tz)
    return anchored.astimezone(UTC) - timedelta(seconds=offset.seconds)


class Reminders:
    def __init__(
        self,
        ctx: PluginContext,
        store: Store,
        formatter: Formatter,
        offsets: list[timedelta],
        all_day_time: time,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.fmt = formatter
        self.offsets = offsets
        self.all_day_time = all_day_time

    def rooms(self, o: Occurrence) -> list[RoomRef]:
        return self.ctx.associations.rooms_for(o.associations)

    def due_times(self, o: Occurrence) -> list[tuple[timedelta, datetime]]:
        return [(off, due_at(o, off, self.fmt.tz, self.all_day_time)) for off in self.offsets]

    async def arm(self, o: Occurrence, now: datetime) -> int:
        """Arm (or move) every reminder of `o` still ahead; one whose time has passed is
        dropped if it was pending. Returns how many are armed."""
        armed = 0
        for offset, due in self.due_times(o):
            key = job_key(o, offset)
            if o.cancelled or due <= now:
                await self.ctx.scheduler.cancel(key)
                continue
            payload = {
                "source": o.source,
                "uid": o.uid,
                "occ": o.occ,
                "offset": int(offset.total_seconds()),
            }
            if await self.ctx.scheduler.at(key, due, "reminder", payload):
                armed += 1
        return armed

    async def reminded_rooms(self, o: Occurrence) -> list[RoomRef]:
        """Rooms where a reminder of `o` was posted (or is on its way)."""
        found = []
        for room in self.rooms(o):
            for offset in self.offsets:
                if await self.ctx.delivery.status(reminder_key(o.uid, o.occ, offset, room)):
                    found.append(room)
                    break
        return found

    async def drop(self, o: Occurrence, now: datetime) -> None:
        """A cancelled, removed or vanished occurrence: no more reminders, and a notice
        where one was already posted."""
        await self.ctx.scheduler.cancel_prefix(job_prefix(o))
        if o.end <= now:
            return
        for room in await self.reminded_rooms(o):
            lang = self.ctx.associations.language_for(room)
            await self.ctx.delivery.send(
                f"cancelled:{o.uid}:{o.occ}:{room}",
                room,
                OutgoingMessage(text=self.fmt.cancelled(o, lang)),
            )
        log.info("event %s (%s) is off; its reminders are dropped", o.uid, o.occ)

    async def moved(self, o: Occurrence, now: datetime) -> None:
        """`o` (already stored) has a new time: re-arm, and tell the reminded rooms."""
        await self.arm(o, now)
        if o.end <= now:
            return
        stamp = o.start.strftime("%Y%m%dT%H%M%SZ")
        for room in await self.reminded_rooms(o):
            lang = self.ctx.associations.language_for(room)
            await self.ctx.delivery.send(
                f"moved:{o.uid}:{o.occ}:{stamp}:{room}",
                room,
                OutgoingMessage(text=self.fmt.moved(o, lang)),
            )
        log.info("event %s (%s) moved to %s; reminders re-armed", o.uid, o.occ, stamp)

    async def post(self, o: Occurrence, offset: timedelta, *, late: bool) -> int:
        """Post the reminder `offset` before `o` into each targeted room."""
        if o.cancelled:
            return 0
        counts = await self.store.counts(o.uid, o.occ)
        posted = 0
        for room in self.rooms(o):
            lang = self.ctx.associations.language_for(room)
            message = OutgoingMessage(
                text=self.fmt.reminder(o, offset, lang, late=late, counts=counts),
                buttons=(
                    Button(RSVP_YES, self.ctx.t("calendar.button.yes", lang), YES_EMOJI),
                    Button(RSVP_NO, self.ctx.t("calendar.button.no", lang), NO_EMOJI),
                ),
            )
            if await self.ctx.delivery.send(
                reminder_key(o.uid, o.occ, offset, room), room, message
            ):
                posted += 1
        log.debug(
            "reminder %s before %s (%s): %d post(s)", offset_label(offset), o.uid, o.occ, posted
        )
        return posted
