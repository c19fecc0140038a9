"""One occurrence of an event, and the keys that name what is done about it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo

from bot.core.refs import RoomRef
from bot.core.timeparse import format_duration, parse_duration

MANUAL = "manual"  # the source of events added with `event add`


@dataclass(frozen=True, slots=True)
class Occurrence:
    """An event as it happens once. `occ` is its identity: the original start
    (RECURRENCE-ID), kept when the occurrence moves."""

    source: str
    uid: str
    occ: str
    start: datetime  # aware, UTC
    end: datetime
    all_day: bool
    title: str
    location: str = ""
    excerpt: str = ""
    url: str = ""
    associations: tuple[str, ...] = ("*",)
    single: bool = False  # not recurring: matched by uid alone when it moves
    cancelled: bool = False
    id: int | None = None  # row id once stored: the ID users type

    def with_id(self, rowid: int) -> Occurrence:
        return replace(self, id=rowid)

    def same_content(self, other: Occurrence) -> bool:
        return (
            self.title,
            self.location,
            self.excerpt,
            self.url,
            self.associations,
            self.end,
            self.all_day,
        ) == (
            other.title,
            other.location,
            other.excerpt,
            other.url,
            other.associations,
            other.end,
            other.all_day,
        )

    def targets(self, association_id: str) -> bool:
        return "*" in self.associations or association_id in self.associations


def occ_id(when: datetime | date, tz: tzinfo) -> str:
    """The identity string of an original start: UTC for times, the day for all-day."""
    if not isinstance(when, datetime):
        return when.strftime("%Y%m%d")
    aware = when if when.tzinfo is not None else when.replace(tzinfo=tz)
    return aware.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def offset_label(offset: timedelta) -> str:
    return format_duration(offset)


def reminder_key(uid: str, occ: str, offset: timedelta, room: RoomRef) -> str:
    """The delivery key of one reminder, as the issue names it."""
    return f"reminder:{uid}:{occ}:{offset_label(offset)}:{room}"


JOB_PREFIX = "calendar:reminder:"


def job_prefix(o: Occurrence) -> str:
    """The scheduler keys of every reminder of one occurrence start with this."""
    return f"{JOB_PREFIX}{o.source}:{o.uid}:{o.occ}:"


def job_key(o: Occurrence, offset: timedelta) -> str:
    return job_prefix(o) + offset_label(offset)


def parse_job_key(key: str) -> tuple[str, str, str, timedelta] | None:
    """(source, uid, occ, offset) of a reminder's scheduler key: the key says it all, so
    the row needs no payload. Sources and occurrences hold no colons; UIDs may."""
    if not key.startswith(JOB_PREFIX):
        return None
    source, _, rest = key[len(JOB_PREFIX) :].partition(":")
    parts = rest.rsplit(":", 2)
    if not source or len(parts) != 3 or not parts[0]:
        return None
    try:
        offset = parse_duration(parts[2])
    except ValueError:
        return None
    return source, parts[0], parts[1], offset


def parse_reminder_key(key: str, room: RoomRef) -> tuple[str, str] | None:
    """(uid, occ) of a reminder posted into `room`, from its delivery key. UIDs may hold
    colons; the occurrence and offset never do, and the room is known."""
    suffix = f":{room}"
    if not key.startswith("reminder:") or not key.endswith(suffix):
        return None
    head = key[len("reminder:") : -len(suffix)]
    parts = head.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    return parts[0], parts[1]
