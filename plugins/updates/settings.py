"""The `[updates]` section: the digest's schedule, the refresh interval, caps, feeds."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator

from bot.settings import Cron, Duration, Identifier, Section

# A feed is never fetched more often than this, whatever its settings say.
REFRESH_FLOOR = timedelta(minutes=1)

Mode = Literal["digest", "instant"]
Word = Annotated[str, Field(min_length=1, max_length=100)]


def config_key(url: str) -> str:
    """A configured feed's stable key when it has no id of its own: a hash of its URL."""
    return "f" + hashlib.sha256(url.encode()).hexdigest()[:10]


def refresh_cron(every: timedelta) -> str:
    """The crontab of a refresh interval; ValueError for one that does not fit a clock
    (whole minutes dividing an hour, or hours dividing a day)."""
    seconds = int(every.total_seconds())
    minutes, rest = divmod(seconds, 60)
    if rest == 0 and 0 < minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    hours, rest = divmod(minutes, 60)
    if rest == 0 and 0 < hours <= 24 and 24 % hours == 0:
        return f"0 */{hours} * * *" if hours < 24 else "0 0 * * *"
    raise ValueError("refresh must be whole minutes dividing an hour or hours dividing a day")


def _refresh_fits(value: timedelta) -> timedelta:
    if value < REFRESH_FLOOR:
        raise ValueError("refresh must be at least 1m")
    refresh_cron(value)
    return value


class FeedConfig(Section):
    # An http(s) URL or a local path (relative to the working directory).
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    # Shown in posts and to organisers; defaults to the feed's own title, then the URL.
    name: Annotated[str, Field(max_length=100)] | None = None
    # Stable id (kept in the database and in delivery keys); defaults to a hash of `url`.
    id: Identifier | None = None
    associations: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["*"])
    mode: Mode = "digest"
    # Plain words (no patterns): an entry must hold one of `include` (when given) and
    # none of `exclude`, in its title or summary, case aside.
    include: list[Word] = Field(default_factory=list)
    exclude: list[Word] = Field(default_factory=list)
    # This feed's own interval; defaults to `updates.refresh`.
    refresh: Duration | None = None

    @property
    def key(self) -> str:
        return self.id or config_key(self.url)

    @field_validator("refresh")
    @classmethod
    def _fits(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _refresh_fits(value)


class UpdatesSettings(Section):
    # When digests are posted (crontab in bot.timezone).
    schedule: Cron = "0 8 * * mon-fri"
    # How often feeds are fetched (a floor of 1m).
    refresh: Duration = timedelta(minutes=15)
    feeds: list[FeedConfig] = Field(default_factory=list)
    # How many of a new feed's latest entries are posted when it is added (0: none, only
    # what appears afterwards).
    initial_posts: Annotated[int, Field(ge=0, le=20)] = 0
    # Caps on what one feed may cost: bytes, seconds, entries read per fetch.
    max_bytes: Annotated[int, Field(ge=1024, le=50_000_000)] = 5_000_000
    timeout: Duration = timedelta(seconds=20)
    max_entries: Annotated[int, Field(ge=1, le=20_000)] = 5_000
    # Instant posts per feed and refresh; more new entries than that are recorded as
    # seen, not posted (a feed that renumbers everything must not flood the rooms).
    max_new: Annotated[int, Field(ge=1, le=100)] = 10
    # Entries per digest; the rest are counted in a closing line.
    digest_max: Annotated[int, Field(ge=1, le=50)] = 15
    # A summary is cut to this many lines and characters.
    summary_lines: Annotated[int, Field(ge=0, le=10)] = 3
    summary_chars: Annotated[int, Field(ge=0, le=2000)] = 300
    # Failed fetches in a row (server unreachable, 5xx) before organisers are told; a
    # refusal (4xx, not a feed, blocked address) is told at the first failure.
    report_after: Annotated[int, Field(ge=1, le=100)] = 3
    # The longest wait between tries of a failing feed.
    max_backoff: Duration = timedelta(hours=6)
    # A feed failing this long is paused (organisers are told; `feed resume` restarts it).
    pause_after: Duration = timedelta(days=1)
    # Entries gone from their feed are forgotten this long after last seen; organisers'
    # texts this long after posting (no edits after that).
    retention: Duration = timedelta(days=30)

    @field_validator("refresh")
    @classmethod
    def _refresh(cls, value: timedelta) -> timedelta:
        return _refresh_fits(value)

    @field_validator("feeds")
    @classmethod
    def _unique_feeds(cls, value: list[FeedConfig]) -> list[FeedConfig]:
        keys = [f.key for f in value]
        if len(set(keys)) != len(keys):
            raise ValueError("two feeds have the same id (or the same url)")
        return value

    def interval(self, feed_refresh: timedelta | None) -> timedelta:
        return max(REFRESH_FLOOR, feed_refresh or self.refresh)
