"""The `[calendar]` section: reminder offsets, the agenda's schedule, and the feeds."""

from __future__ import annotations

import hashlib
import re
from datetime import time, timedelta
from typing import Annotated

from pydantic import Field, field_validator

from bot.settings import Cron, Duration, Section, between

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def feed_id(url: str) -> str:
    """A feed's stable id when it has none of its own: a short hash of its address."""
    return "f" + hashlib.sha256(url.encode()).hexdigest()[:10]


class FeedSettings(Section):
    # An http(s) URL or a local path (relative to the working directory).
    url: Annotated[str, Field(min_length=1)]
    # Shown to organisers when the feed fails; defaults to the address.
    name: str | None = None
    # Stable id (used in the database); defaults to a hash of `url`.
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")] | None = None
    associations: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["*"])

    @property
    def key(self) -> str:
        return self.id or feed_id(self.url)

    @property
    def label(self) -> str:
        return self.name or self.url

    @property
    def is_remote(self) -> bool:
        return self.url.startswith(("http://", "https://"))


class CalendarSettings(Section):
    # Reminders go out this long before each event (in local days, then exact time).
    reminders: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=7), timedelta(days=1), timedelta(hours=1)]
    )
    # The weekly agenda (crontab in bot.timezone).
    digest: Cron = "30 7 * * mon"
    # How often feeds are fetched: whole minutes dividing an hour, or hours dividing a day.
    refresh: Duration = timedelta(minutes=15)
    feeds: list[FeedSettings] = Field(default_factory=list)
    # Recurrence is expanded this far ahead, never further (RRULEs without end).
    # Two years at most: further is never needed, and each day costs occurrences.
    horizon: Annotated[Duration, between(timedelta(days=1), timedelta(days=730))] = timedelta(
        days=90
    )
    # Caps on what one feed may cost: bytes, seconds, occurrences in all, per series.
    max_bytes: Annotated[int, Field(ge=1024)] = 5_000_000
    timeout: Annotated[Duration, between(timedelta(seconds=1), timedelta(minutes=5))] = timedelta(
        seconds=20
    )
    max_occurrences: Annotated[int, Field(ge=1)] = 20_000
    max_per_series: Annotated[int, Field(ge=1)] = 500
    # Each feed is parsed in a process of its own, under these budgets: the wall time of
    # the whole parse, and its memory in MiB. Past either, the feed is refused (and keeps
    # its last good data).
    parse_timeout: Duration = timedelta(seconds=60)
    parse_memory: Annotated[int, Field(ge=64, le=65536)] = 1024
    # All-day events are reminded as if they began at this local time.
    all_day_time: str = "09:00"
    # RSVP answers (and past events) are forgotten this long after the event ended.
    retention: Duration = timedelta(days=7)

    @field_validator("reminders")
    @classmethod
    def _distinct(cls, value: list[timedelta]) -> list[timedelta]:
        if len(set(value)) != len(value):
            raise ValueError("each reminder offset may appear only once")
        return sorted(value, reverse=True)

    @field_validator("refresh")
    @classmethod
    def _refresh_fits(cls, value: timedelta) -> timedelta:
        refresh_cron(value)
        return value

    @field_validator("all_day_time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        all_day_clock(value)
        return value

    @field_validator("feeds")
    @classmethod
    def _unique_feeds(cls, value: list[FeedSettings]) -> list[FeedSettings]:
        keys = [f.key for f in value]
        if len(set(keys)) != len(keys):
            raise ValueError("two feeds have the same id (or the same url)")
        return value


def refresh_cron(every: timedelta) -> str:
    """The crontab of a refresh interval; raises ValueError for one that does not fit."""
    seconds = int(every.total_seconds())
    minutes, rest = divmod(seconds, 60)
    if rest == 0 and 0 < minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    hours, rest = divmod(minutes, 60)
    if rest == 0 and 0 < hours <= 24 and 24 % hours == 0:
        return f"0 */{hours} * * *" if hours < 24 else "0 0 * * *"
    raise ValueError("refresh must be whole minutes dividing an hour or hours dividing a day")


def all_day_clock(text: str) -> time:
    m = _HHMM.match(text.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        # The value is not quoted: it may be a secret put under the wrong key.
        raise ValueError("not a time of day written HH:MM")
    return time(int(m[1]), int(m[2]))
