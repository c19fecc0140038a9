"""Refreshing the feeds: fetch, parse, and apply the difference to what is stored.

A feed that fails (unreachable, too slow, too big, not iCalendar) keeps its last good
data; the others go on. Organisers hear once when a feed starts failing, and once when
it works again, never at every refresh.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from bot.core.messages import OutgoingMessage
from bot.fetching import Fetcher
from bot.plugin import PluginContext
from plugins.calendar.arming import Reminders
from plugins.calendar.fetching import Conditional, FeedError, fetch
from plugins.calendar.model import JOB_PREFIX, MANUAL, Occurrence
from plugins.calendar.parsing import Parsed, Window, parse_calendar
from plugins.calendar.settings import CalendarSettings, FeedSettings
from plugins.calendar.storage import FeedState, Store

log = logging.getLogger(__name__)

# An unchanged feed is still expanded again this often, so that the window moves on
# (an RRULE without end brings new occurrences into it as days pass).
REEXPAND_AFTER = timedelta(hours=12)


class FeedRefresher:
    def __init__(
        self,
        ctx: PluginContext,
        settings: CalendarSettings,
        store: Store,
        reminders: Reminders,
        fetcher: Fetcher,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.store = store
        self.reminders = reminders
        self.fetcher = fetcher
        # When each feed was last expanded, in this process: after a restart the first
        # fetch is unconditional, so the window is expanded afresh.
        self._expanded: dict[str, datetime] = {}
        known = ctx.associations.ids()
        for feed in settings.feeds:
            unknown = [a for a in feed.associations if a != "*" and a not in known]
            if unknown:
                log.warning("calendar feed %s names unknown associations %s", feed.label, unknown)

    def _config(self, feed: FeedSettings) -> str:
        return f"{feed.url}|{','.join(sorted(feed.associations))}|{self.settings.horizon}"

    async def forget_removed_feeds(self) -> None:
        """A feed taken out of the settings takes its events and reminders with it."""
        configured = {f.key for f in self.settings.feeds} | {MANUAL}
        for source in await self.store.sources() - configured:
            async with self.store.db.transaction():
                await self.ctx.scheduler.cancel_prefix(f"{JOB_PREFIX}{source}:")
                count = await self.store.delete_source(source)
            log.info("calendar feed %s is no longer configured: %d occurrences gone", source, count)

    async def refresh_all(self) -> None:
        now = self.ctx.clock.now()
        await self.store.prune(now - self.settings.retention)
        if not self.settings.feeds:
            return
        # Fetched side by side; applied one after the other (one writer at a time).
        results = await asyncio.gather(*(self._fetch(f, now) for f in self.settings.feeds))
        for feed, (state, result) in zip(self.settings.feeds, results, strict=True):
            try:
                if isinstance(result, FeedError):
                    await self._failed(feed, state, result, now)
                elif result is not None:
                    parsed, fetched_state = result
                    await self._apply(feed, parsed, now)
                    await self._succeeded(feed, state, fetched_state, now)
                else:
                    await self._succeeded(feed, state, state, now)
            except Exception:
                log.exception("calendar feed %s could not be applied", feed.label)

    async def _fetch(
        self, feed: FeedSettings, now: datetime
    ) -> tuple[FeedState | None, FeedError | tuple[Parsed, FeedState] | None]:
        """None: unchanged. A FeedError: failed this time. Else what was parsed."""
        state = await self.store.feed_state(feed.key)
        config = self._config(feed)
        expanded = self._expanded.get(feed.key)
        since = None
        if (
            state is not None
            and state.config == config
            and expanded is not None
            and now - expanded < REEXPAND_AFTER
        ):
            since = Conditional(state.etag, state.last_modified, state.fingerprint)
        try:
            fetched = await fetch(
                feed,
                self.fetcher,
                since,
                max_bytes=self.settings.max_bytes,
                timeout=self.settings.timeout.total_seconds(),
            )
            if fetched.body is None or (
                since is not None and fetched.fingerprint == since.fingerprint
            ):
                log.debug("calendar feed %s unchanged", feed.label)
                return state, None
            window = Window(
                start=now,
                end=now + self.settings.horizon,
                tz=self.reminders.fmt.tz,
                max_occurrences=self.settings.max_occurrences,
                max_per_series=self.settings.max_per_series,
            )
            parsed = await asyncio.to_thread(
                parse_calendar,
                fetched.body,
                source=feed.key,
                associations=tuple(feed.associations),
                window=window,
            )
        except FeedError as exc:
            return state, exc
        new_state = FeedState(
            config, fetched.etag, fetched.last_modified, fetched.fingerprint, None, False, None
        )
        return state, (parsed, new_state)

    async def _apply(self, feed: FeedSettings, parsed: Parsed, now: datetime) -> None:
        end = now + self.settings.horizon
        first = feed.key not in self._expanded
        async with self.store.db.transaction():
            stored = await self.store.load_source(feed.key, now)
            by_key = {(o.uid, o.occ): o for o in stored}
            singles = {o.uid: o for o in stored if o.single}
            seen: set[int] = set()
            added: list[Occurrence] = []
            moved = changed = dropped = 0
            for item in parsed.occurrences:
                new = item
                old = by_key.get((new.uid, new.occ))
                if old is None and new.single and new.uid in singles:
                    # A single event that moved keeps the identity it was first seen with.
                    old = singles[new.uid]
                    new = replace(new, occ=old.occ)
                if old is None:
                    if not new.cancelled:
                        added.append(new)
                    continue
                assert old.id is not None
                if old.id in seen:
                    continue
                seen.add(old.id)
                current = new.with_id(old.id)
                if new.cancelled:
                    if not old.cancelled:
                        await self.store.update(old.id, current)
                        await self.reminders.drop(old, now)
                        dropped += 1
                    continue
                if new.start != old.start or old.cancelled:
                    await self.store.update(old.id, current)
                    if old.cancelled:
                        await self.reminders.arm(current, now)
                    else:
                        await self.reminders.moved(current, now)
                    moved += 1
                else:
                    if not new.same_content(old):
                        await self.store.update(old.id, current)
                        changed += 1
                    if first:
                        # First look in this process: offsets may have changed since.
                        await self.reminders.arm(current, now)
            for old in stored:
                assert old.id is not None
                cutoff = parsed.cutoffs.get(old.uid)
                if (
                    old.id in seen
                    or old.start <= now
                    or old.start > end
                    or (cutoff is not None and old.start > cutoff)
                ):
                    continue
                # Gone from the feed: as good as cancelled.
                if not old.cancelled:
                    await self.reminders.drop(old, now)
                    dropped += 1
                await self.store.delete(old.id)
            await self.store.insert_many(added)
            for new in added:
                await self.reminders.arm(new, now)
        self._expanded[feed.key] = now
        log.info(
            "calendar feed %s: %d occurrences, %d new, %d moved, %d changed, %d off",
            feed.label,
            len(parsed.occurrences),
            len(added),
            moved,
            changed,
            dropped,
        )

    async def _succeeded(
        self, feed: FeedSettings, old: FeedState | None, new: FeedState | None, now: datetime
    ) -> None:
        if new is None:
            return
        self._expanded.setdefault(feed.key, now)
        if old is not None and old.failing_since is not None:
            log.info("calendar feed %s works again", feed.label)
            if old.reported:
                await self._tell_organisers(
                    f"calendar:feedok:{feed.key}:{int(old.failing_since)}",
                    "calendar.feed_recovered",
                    feed=feed.label,
                )
        if old is None or old.failing_since is not None or old != new:
            await self.store.save_feed_state(
                feed.key, replace(new, failing_since=None, reported=False, last_error=None)
            )

    async def _failed(
        self, feed: FeedSettings, state: FeedState | None, error: FeedError, now: datetime
    ) -> None:
        reason = str(error)
        log.warning("calendar feed %s failed: %s; its last good data is kept", feed.label, reason)
        base = state or FeedState(self._config(feed), None, None, None, None, False, None)
        since = base.failing_since if base.failing_since is not None else now.timestamp()
        reported = base.reported
        if not reported:
            reported = await self._tell_organisers(
                f"calendar:feedfail:{feed.key}:{int(since)}",
                "calendar.feed_failed",
                error,
                feed=feed.label,
            )
        await self.store.save_feed_state(
            feed.key, replace(base, failing_since=since, reported=reported, last_error=reason)
        )

    async def _tell_organisers(
        self, key: str, text_key: str, error: FeedError | None = None, **params: object
    ) -> bool:
        rooms = self.ctx.organiser_rooms
        if not rooms:
            log.error("set bot.organiser_rooms to tell organisers in chat: %s", text_key)
            return True
        for room in rooms:
            lang = self.ctx.associations.language_for(room)
            if error is not None:
                # In the room's language, and in plain words: no bytes of the feed.
                params["reason"] = error.reason(self.ctx.t, lang)
            text = self.ctx.t(text_key, lang, **params)
            await self.ctx.delivery.send(f"{key}:{room}", room, OutgoingMessage(text=text))
        return True
