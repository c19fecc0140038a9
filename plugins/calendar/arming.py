"""Reminders: when they fall due, arming them, and what a change of event does to them.

One scheduled row per occurrence and offset (the scheduler's table is the truth); when
it runs, one post per room of the targeted associations, each keyed
`reminder:<uid>:<occurrence>:<offset>:<room>`. A move re-arms the pending rows (a row
that already ran is left alone by the scheduler) and tells the rooms that were already
reminded; a cancellation drops the pending rows and tells the rooms that were reminded.

Everything here works on many occurrences at once, in a few statements: arming a feed
of ten thousand events, or posting a thousand reminders due at one instant, costs the
database, not a round trip per row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.messages import Button, OutgoingMessage
from bot.core.refs import RoomRef
from bot.plugin import PluginContext
from plugins.calendar.formatting import Formatter
from plugins.calendar.model import Occurrence, job_prefix, offset_label, reminder_key
from plugins.calendar.storage import Store

log = logging.getLogger(__name__)

RSVP_YES = "calendar:rsvp:yes"
RSVP_NO = "calendar:rsvp:no"
# The reactions offered on Matrix for the same answers (rsvp.py reads these and others).
YES_EMOJI = "👍"
NO_EMOJI = "👎"
# Rows per statement when arming: each chunk's await lets the event loop breathe.
_CHUNK = 5000
# Part of `Reminders.spec`: raised when the way a reminder's key or time is worked out
# changes, so that the first start of the new code arms every event again.
_SPEC_VERSION = 1

Post = tuple[str, RoomRef, OutgoingMessage]


def due_at(o: Occurrence, offset: timedelta, tz: ZoneInfo, all_day_time: time) -> datetime:
    """When the reminder `offset` before `o` is due. Whole days are counted on the local
    calendar, so "1d" before an 18.00 event is 18.00 the day before, DST or not; the rest
    is exact. All-day events count from `all_day_time` on their first day."""
    return dues_of(o, [offset], tz, all_day_time)[0]


def dues_of(
    o: Occurrence, offsets: Sequence[timedelta], tz: ZoneInfo, all_day_time: time
) -> list[datetime]:
    """`due_at` for each of `offsets`, the local time worked out once."""
    local = o.start.astimezone(tz)
    if o.all_day:
        local = datetime.combine(local.date(), all_day_time, tz)
    anchor = local.astimezone(UTC)
    dues = []
    for offset in offsets:
        if offset.days:
            wall = local.replace(tzinfo=None) - timedelta(days=offset.days)
            base = wall.replace(tzinfo=tz).astimezone(UTC)
        else:
            base = anchor
        dues.append(base - timedelta(seconds=offset.seconds) if offset.seconds else base)
    return dues


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
        self._labels = [offset_label(offset) for offset in offsets]

    @property
    def spec(self) -> str:
        """What decides every reminder's key and time besides the event: stored once
        every event is armed for it, so that a start with the same one can skip that."""
        offsets = ",".join(self._labels)
        return f"{_SPEC_VERSION}|{self.fmt.tz.key}|{self.all_day_time.isoformat()}|{offsets}"

    def rooms(self, o: Occurrence) -> list[RoomRef]:
        return self.ctx.associations.rooms_for(o.associations)

    def due_times(self, o: Occurrence) -> list[tuple[timedelta, datetime]]:
        dues = dues_of(o, self.offsets, self.fmt.tz, self.all_day_time)
        return list(zip(self.offsets, dues, strict=True))

    def _keys(self, o: Occurrence) -> list[str]:
        prefix = job_prefix(o)
        return [prefix + label for label in self._labels]

    async def arm(self, o: Occurrence, now: datetime) -> int:
        return await self.arm_many([o], now)

    async def arm_many(self, items: Sequence[Occurrence], now: datetime) -> int:
        """Arm (or move) every reminder of `items` still ahead; one whose time has
        passed is dropped if it was pending. Returns how many were armed."""
        armed = 0
        for i in range(0, len(items), _CHUNK):
            rows: list[tuple[str, datetime, str, dict[str, Any] | None]] = []
            gone: list[str] = []
            for o in items[i : i + _CHUNK]:
                prefix = job_prefix(o)
                dues = dues_of(o, self.offsets, self.fmt.tz, self.all_day_time)
                for label, due in zip(self._labels, dues, strict=True):
                    if o.cancelled or due <= now:
                        gone.append(prefix + label)
                        continue
                    # No payload: the key names the occurrence and the offset.
                    rows.append((prefix + label, due, "reminder", None))
            await self.ctx.scheduler.cancel_many(gone)
            armed += await self.ctx.scheduler.at_many(rows)
        return armed

    async def reminded_rooms(self, items: Sequence[Occurrence]) -> dict[int, list[RoomRef]]:
        """For each of `items` (by position), the rooms where one of its reminders was
        posted or is on its way; one look-up for all of them."""
        wanted: dict[str, tuple[int, RoomRef]] = {}
        for index, o in enumerate(items):
            for room in self.rooms(o):
                for offset in self.offsets:
                    wanted[reminder_key(o.uid, o.occ, offset, room)] = (index, room)
        found: dict[int, list[RoomRef]] = {}
        for key in await self.ctx.delivery.statuses(list(wanted)):
            index, room = wanted[key]
            rooms = found.setdefault(index, [])
            if room not in rooms:
                rooms.append(room)
        return found

    async def drop(self, o: Occurrence, now: datetime) -> None:
        await self.drop_many([o], now)

    async def drop_many(self, items: Sequence[Occurrence], now: datetime) -> None:
        """Cancelled, removed or vanished occurrences: no more reminders, and a notice
        where one was already posted."""
        if not items:
            return
        await self.ctx.scheduler.cancel_many([k for o in items for k in self._keys(o)])
        live = [o for o in items if o.end > now]
        notices: list[Post] = []
        for index, rooms in (await self.reminded_rooms(live)).items():
            o = live[index]
            for room in rooms:
                lang = self.ctx.associations.language_for(room)
                text = self.fmt.cancelled(o, lang)
                notices.append(
                    (f"cancelled:{o.uid}:{o.occ}:{room}", room, OutgoingMessage(text=text))
                )
            log.info("event %s (%s) is off; its reminders are dropped", o.uid, o.occ)
        await self.ctx.delivery.send_many(notices)

    async def moved(self, o: Occurrence, now: datetime) -> None:
        await self.moved_many([o], now)

    async def moved_many(self, items: Sequence[Occurrence], now: datetime) -> None:
        """`items` (already stored) have new times: re-arm, and tell the reminded rooms."""
        if not items:
            return
        await self.arm_many(items, now)
        live = [o for o in items if o.end > now]
        notices: list[Post] = []
        for index, rooms in (await self.reminded_rooms(live)).items():
            o = live[index]
            stamp = o.start.strftime("%Y%m%dT%H%M%SZ")
            for room in rooms:
                lang = self.ctx.associations.language_for(room)
                text = self.fmt.moved(o, lang)
                key = f"moved:{o.uid}:{o.occ}:{stamp}:{room}"
                notices.append((key, room, OutgoingMessage(text=text)))
            log.info("event %s (%s) moved to %s; reminders re-armed", o.uid, o.occ, stamp)
        await self.ctx.delivery.send_many(notices)

    async def post(self, o: Occurrence, offset: timedelta, *, late: bool) -> int:
        return await self.post_many([(o, offset, late)])

    async def post_many(self, items: Sequence[tuple[Occurrence, timedelta, bool]]) -> int:
        """Post each reminder (`offset` before `o`, late or not) into each targeted room;
        all of them queued in one transaction, in the order given."""
        counts = await self.store.counts_many((o.uid, o.occ) for o, _off, _late in items)
        posts: list[Post] = []
        buttons: dict[str, tuple[Button, Button]] = {}
        for o, offset, late in items:
            if o.cancelled:
                continue
            for room in self.rooms(o):
                lang = self.ctx.associations.language_for(room)
                if lang not in buttons:
                    buttons[lang] = (
                        Button(RSVP_YES, self.ctx.t("calendar.button.yes", lang), YES_EMOJI),
                        Button(RSVP_NO, self.ctx.t("calendar.button.no", lang), NO_EMOJI),
                    )
                text = self.fmt.reminder(
                    o, offset, lang, late=late, counts=counts.get((o.uid, o.occ), {})
                )
                message = OutgoingMessage(text=text, buttons=buttons[lang])
                posts.append((reminder_key(o.uid, o.occ, offset, room), room, message))
        posted = await self.ctx.delivery.send_many(posts)
        log.debug("%d reminder(s) due: %d post(s) queued", len(items), posted)
        return posted
