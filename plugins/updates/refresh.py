"""Refreshing feeds: fetch, parse, sort entries against what is known, post, back off.

Due feeds are fetched side by side (the fetcher bounds connections), each parsed in a
thread as soon as it arrives (so that at most a few bodies are held at once), and
applied in one transaction each: the entries seen, their posts queued and the feed's
state commit together, so a crash either leaves the entries new (to be posted on the
next refresh) or posted. A failing feed backs off: a server that is down or busy is
tried again soon, a refusal (4xx, not a feed) less often; 410 Gone pauses it, and so
does a day of failures. Organisers hear once per failure streak and once on recovery.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from bot.core.messages import OutgoingMessage
from bot.fetching import Fetched, FetchError
from bot.plugin import PluginContext
from plugins.updates import dedup
from plugins.updates.filters import passes
from plugins.updates.model import (
    CONFIG,
    FAILING,
    FILTERED,
    GONE,
    OLD,
    PENDING,
    POSTED,
    SKIPPED,
    Entry,
    FeedRow,
    ParsedFeed,
)
from plugins.updates.parsing import parse_feed, unusable
from plugins.updates.posting import Poster
from plugins.updates.settings import UpdatesSettings
from plugins.updates.storage import Store, StoredEntry

log = logging.getLogger(__name__)

ACCEPT: Final = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json,"
    " application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# Parsing is CPU work in threads: two at a time is what the machine has to give.
_PARSERS: Final = 2
# How often a feed that answers 304 has its entries marked as still there.
_SEEN_EVERY: Final = timedelta(days=1)


class Source(Protocol):
    """What the refresher needs of `bot.fetching.Fetcher` (tests may stand in)."""

    async def fetch(
        self,
        location: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,
        accept: str | None = None,
        local: bool = True,
    ) -> Fetched: ...


@dataclass(frozen=True, slots=True)
class Got:
    """A fetch and what it parsed to (None: the same as last time)."""

    fetched: Fetched
    parsed: ParsedFeed | None
    body_hash: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one refresh of one feed did."""

    feed: FeedRow
    parsed: ParsedFeed | None = None  # None: unchanged since the last fetch
    error: FetchError | None = None
    new: int = 0
    posts: int = 0
    edits: int = 0


def reason_json(err: FetchError) -> str:
    return json.dumps([err.reason_key, err.params], ensure_ascii=False, default=str)


def _transient(err: FetchError) -> bool:
    """A server down or busy, as opposed to one that refuses: worth trying again soon."""
    if err.kind == "offline":
        return True
    return (
        err.kind == "http" and err.status is not None and (err.status >= 500 or err.status == 429)
    )


class Refresher:
    def __init__(
        self,
        ctx: PluginContext,
        settings: UpdatesSettings,
        store: Store,
        poster: Poster,
        source: Source,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.store = store
        self.poster = poster
        self.source = source
        self._locks: dict[str, asyncio.Lock] = {}
        self._parsers = asyncio.Semaphore(_PARSERS)

    def interval(self, feed: FeedRow) -> timedelta:
        return self.settings.interval(timedelta(seconds=feed.refresh) if feed.refresh else None)

    def is_due(self, feed: FeedRow, now: datetime) -> bool:
        if feed.paused:
            return False
        if feed.next_fetch is None:
            return True
        # A tick a moment before the due time (timers are not exact) still counts.
        slack = min(30.0, self.interval(feed).total_seconds() / 4)
        return feed.next_fetch <= now.timestamp() + slack

    async def refresh_due(self, now: datetime) -> list[Outcome]:
        due = [f for f in await self.store.feeds() if self.is_due(f, now)]
        if not due:
            return []
        results = await asyncio.gather(*(self.refresh(f, now) for f in due), return_exceptions=True)
        outcomes = []
        for feed, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                log.error("refreshing feed %s failed", feed.label, exc_info=result)
            else:
                outcomes.append(result)
        return outcomes

    async def first(self, feed: FeedRow, now: datetime) -> Outcome:
        """The fetch of `feed add`: a failure is the organiser's answer, and the feed is
        not kept (nothing recorded, nothing told to anyone else)."""
        async with self._locks.setdefault(feed.key, asyncio.Lock()):
            try:
                got = await self.fetch(feed)
                if got.parsed is None:
                    raise unusable("empty", "nothing to read")
            except FetchError as err:
                await self.store.delete_feed(feed.key)
                return Outcome(feed, error=err)
            return await self.apply(feed, got, now)

    async def refresh(self, feed: FeedRow, now: datetime) -> Outcome:
        """Fetch and apply one feed; a failure is recorded, backed off and told."""
        lock = self._locks.setdefault(feed.key, asyncio.Lock())
        async with lock:
            current = await self.store.feed(feed.key)
            if current is None or not self.is_due(current, now):
                return Outcome(feed)  # removed, paused or fetched meanwhile
            try:
                got = await self.fetch(current)
            except FetchError as err:
                await self._failed(current, err, now)
                return Outcome(current, error=err)
            if got.parsed is None:
                await self._unchanged(current, got.fetched, now)
                return Outcome(current)
            return await self.apply(current, got, now)

    async def fetch(self, feed: FeedRow) -> Got:
        """Fetch and parse `feed` (None parsed: unchanged); raises FetchError."""
        fetched = await self.source.fetch(
            feed.url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            max_bytes=self.settings.max_bytes,
            timeout=self.settings.timeout.total_seconds(),
            accept=ACCEPT,
            # An address typed in chat is never a path on the bot's machine.
            local=feed.origin == CONFIG,
        )
        body_hash = hashlib.sha256(fetched.body).hexdigest() if fetched.body else None
        if fetched.unchanged or (body_hash is not None and body_hash == feed.body_hash):
            return Got(fetched, None, body_hash)
        async with self._parsers:
            parsed = await asyncio.to_thread(
                parse_feed,
                fetched.body,
                content_type=fetched.content_type,
                url=fetched.url,
                max_entries=self.settings.max_entries,
                summary_lines=self.settings.summary_lines,
                summary_chars=self.settings.summary_chars,
            )
        return Got(fetched, parsed, body_hash)

    # -- success ------------------------------------------------------------------------

    def _success_state(self, feed: FeedRow, now: datetime) -> dict[str, object]:
        return {
            "next_fetch": (now + self.interval(feed)).timestamp(),
            "last_success": now.timestamp(),
            "failures": 0,
            "failing_since": None,
            "reported": 0,
        }

    async def _unchanged(self, feed: FeedRow, fetched: Fetched, now: datetime) -> None:
        log.debug("feed %s unchanged", feed.label)
        async with self.store.db.transaction():
            await self._recovered(feed)
            parsed = feed.last_parsed
            if parsed is not None and now.timestamp() - parsed > _SEEN_EVERY.total_seconds():
                # Not at every 304: a day late is soon enough for a retention of weeks.
                await self.store.still_there(feed.key, parsed, now.timestamp())
            await self.store.set_feed(
                feed.key,
                etag=fetched.etag or feed.etag,
                last_modified=fetched.last_modified or feed.last_modified,
                **self._success_state(feed, now),
            )

    async def apply(self, feed: FeedRow, got: Got, now: datetime) -> Outcome:
        """Record what `got` holds, post what is new, edit what changed: one transaction."""
        parsed, fetched = got.parsed, got.fetched
        assert parsed is not None
        ts = now.timestamp()
        if parsed.dropped:
            log.warning(
                "feed %s has %d entries more than the %d read",
                feed.label,
                parsed.dropped,
                self.settings.max_entries,
            )
        async with self.store.db.transaction():
            known = await self.store.known(feed.key)
            found = dedup.match(feed.key, parsed.entries, known)
            states = self._states(feed, found.new)
            # Feeds list newest first: stored (and posted) oldest first, so digests and
            # rooms read in order.
            ordered = list(reversed([(i, e, states[i]) for i, e in found.new]))
            await self.store.add_entries(feed.key, ordered, ts, await self.store.next_seq())
            edits = 0
            for old, entry in found.changed:
                await self.store.update_entry(feed.key, old.id, entry, revise=True)
                stored = await self.store.entry(feed.key, old.id)
                if stored is not None and old.state == POSTED:
                    edits += await self.poster.changed(feed, stored, now)
            for old, entry in found.moved:
                await self.store.update_entry(feed.key, old.id, entry, revise=False)
            seen = [k.id for k in found.unchanged] + [k.id for k, _ in found.changed + found.moved]
            await self.store.touch(feed.key, seen, ts)
            trimmed = await self.store.trim(feed.key, 2 * self.settings.max_entries, ts)
            if trimmed:
                log.warning("feed %s: %d entries gone from it forgotten early", feed.label, trimmed)
            posts = 0
            if feed.mode == "instant":
                to_post = [
                    StoredEntry(feed.key, i, e, PENDING, 0, ts)
                    for i, e, state in ordered
                    if state == PENDING
                ]
                if to_post:
                    posts = await self.poster.instant(feed, to_post, now)
            await self._recovered(feed)
            await self.store.set_feed(
                feed.key,
                title=parsed.title or None,
                primed=1,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                body_hash=got.body_hash,
                last_parsed=ts,
                **self._success_state(feed, now),
            )
        log.info(
            "feed %s (%s): %d entries, %d new, %d changed, %d posts, %d edits",
            feed.label,
            parsed.kind,
            len(parsed.entries),
            len(found.new),
            len(found.changed),
            posts,
            edits,
        )
        return Outcome(feed, parsed, new=len(found.new), posts=posts, edits=edits)

    def _states(self, feed: FeedRow, new: list[tuple[str, Entry]]) -> dict[str, str]:
        """What becomes of each new entry: old (the first fetch), filtered, skipped
        (beyond `max_new` at once in instant mode), or pending (to post)."""
        states: dict[str, str] = {}
        wanted = 0
        limit = self.settings.max_new if feed.mode == "instant" else None
        for position, (entry_id, entry) in enumerate(new):
            if not feed.primed and position >= self.settings.initial_posts:
                states[entry_id] = OLD
            elif not passes(entry, feed.include, feed.exclude):
                states[entry_id] = FILTERED
            elif limit is not None and wanted >= limit:
                states[entry_id] = SKIPPED
            else:
                states[entry_id] = PENDING
                wanted += 1
        skipped = sum(1 for s in states.values() if s == SKIPPED)
        if skipped:
            log.warning(
                "feed %s has %d new entries at once: posting the latest %d only",
                feed.label,
                wanted + skipped,
                wanted,
            )
        return states

    # -- failure ------------------------------------------------------------------------

    async def _failed(self, feed: FeedRow, err: FetchError, now: datetime) -> None:
        ts = now.timestamp()
        failures = feed.failures + 1
        since = feed.failing_since if feed.failing_since is not None else ts
        interval = self.interval(feed)
        paused: str | None = None
        notice: str | None = None
        if err.gone:
            paused, notice = GONE, "updates.notice.gone"
        elif ts - since >= self.settings.pause_after.total_seconds():
            paused, notice = FAILING, "updates.notice.paused"
        elif not feed.reported and (failures >= self.settings.report_after or not _transient(err)):
            notice = "updates.notice.failed"
        # Down or busy: doubling from the interval; refused: doubling from an hour.
        base = interval if _transient(err) else max(interval, timedelta(hours=1))
        delay = min(base * 2 ** min(failures - 1, 16), self.settings.max_backoff)
        if err.retry_after:
            delay = max(delay, timedelta(seconds=err.retry_after))
        delay = max(delay, interval)
        log.warning(
            "feed %s failed (%d in a row): %s; next try in %s%s",
            feed.label,
            failures,
            err,
            delay,
            f"; paused ({paused})" if paused else "",
        )
        async with self.store.db.transaction():
            if notice is not None:
                await self._tell(notice, feed, since, err)
            await self.store.set_feed(
                feed.key,
                failures=failures,
                failing_since=since,
                last_error=reason_json(err),
                last_error_at=ts,
                next_fetch=(now + delay).timestamp(),
                reported=int(feed.reported or notice is not None),
                paused=paused,
            )

    async def _recovered(self, feed: FeedRow) -> None:
        if feed.failing_since is not None:
            log.info("feed %s works again", feed.label)
            if feed.reported:
                await self._tell("updates.notice.recovered", feed, feed.failing_since, None)

    async def _tell(self, key: str, feed: FeedRow, since: float, err: FetchError | None) -> None:
        """A notice to organisers, keyed by the failure streak it belongs to, so that
        it is posted once per streak whatever happens."""
        rooms = self.ctx.organiser_rooms
        what = key.rsplit(".", 1)[1]
        if not rooms:
            log.error(
                "set bot.organiser_rooms to tell organisers in chat: feed %s %s", feed.label, what
            )
            return
        for room in rooms:
            lang = self.ctx.associations.language_for(room)
            text = self.ctx.t(
                key,
                lang,
                feed=self.poster.fmt.source(feed),
                num=feed.num,
                reason=err.reason(self.ctx.t, lang) if err else "",
                since=self.poster.fmt.stamp(since, lang),
            )
            notice_key = f"updates:notice:{what}:{feed.key}:{int(since)}:{room}"
            await self.ctx.delivery.send(notice_key, room, OutgoingMessage(text=text))
