"""What the updates plugin works with: a parsed entry, a parsed feed, a followed feed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

# An entry's life: old when its feed was added (never posted), filtered out by the
# feed's words, waiting for the next digest, or posted.
OLD: Final = "old"
FILTERED: Final = "filtered"
PENDING: Final = "pending"
POSTED: Final = "posted"
# Skipped: more new entries at once than one refresh may post (see `max_new`).
SKIPPED: Final = "skipped"

# Why a feed is paused.
BY_ORGANISER: Final = "organiser"
GONE: Final = "gone"
FAILING: Final = "failing"

CONFIG: Final = "config"
COMMAND: Final = "command"


def short_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as a post shows it: plain title, core-text summary, an http(s) link."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    published: datetime | None

    @property
    def digest(self) -> str:
        """A hash of what a post shows: a change edits the copies already posted."""
        return short_hash(self.title, self.summary, self.link or "")

    @property
    def primary(self) -> str:
        """What identifies the entry: its guid, else its link, else its content."""
        if self.guid:
            return "g:" + self.guid
        if self.link:
            return "l:" + self.link
        return "h:" + self.digest


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    kind: str  # rss20, atom10, json1.1, ...
    title: str
    link: str | None
    entries: list[Entry] = field(default_factory=list)
    # Entries left out: beyond the cap, and unusable ones (neither title nor content).
    dropped: int = 0
    unusable: int = 0


@dataclass(frozen=True, slots=True)
class FeedRow:
    """A followed feed as stored: its settings, and its fetch and failure state."""

    num: int
    key: str
    origin: str
    url: str
    name: str | None
    title: str | None
    associations: tuple[str, ...]
    rooms: tuple[str, ...]
    mode: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    refresh: float | None
    paused: str | None
    primed: bool
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    last_parsed: float | None  # when the entries were last read (not a 304)
    next_fetch: float | None
    last_success: float | None
    last_error: str | None  # JSON: [reason key, params]
    last_error_at: float | None
    failing_since: float | None
    failures: int
    reported: bool

    @property
    def label(self) -> str:
        return self.name or self.title or self.url

    @property
    def is_remote(self) -> bool:
        return self.url.startswith(("http://", "https://"))
