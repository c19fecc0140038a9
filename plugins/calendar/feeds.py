"""Refreshing the feeds: fetch, parse, and apply the difference to what is stored.

Each feed is refreshed on its own: fetched side by side with the others, parsed in a
worker process under a time and memory budget (`isolation.py`), one parse at a time, and
applied (one writer at a time) as soon as it is parsed. A feed that fails
(unreachable, too slow, too big, not iCalendar, over a budget, or an error of ours)
keeps its last good data, and the others go on: nothing a feed does makes the refresh
raise. Organisers hear once when a feed starts failing, once when it works again, and
once about each set of events left out of it, never at every refresh. What the parse
said in the log is said once per feed (later repeats go to debug).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from bot.core.messages import OutgoingMessage
from bot.fetching import Fetcher
from bot.plugin import PluginContext
from bot.storage.health import StorageUnavailable
from plugins.calendar.applying import apply, plan
from plugins.calendar.arming import Reminders
from plugins.calendar.components import LeftOut
from plugins.calendar.fetching import Conditional, FeedError, fetch
from plugins.calendar.isolation import Budget, ParseWorker, Record, Stopping
from plugins.calendar.model import JOB_PREFIX, MANUAL
from plugins.calendar.parsing import Parsed, Window
from plugins.calendar.settings import CalendarSettings, FeedSettings
from plugins.calendar.storage import FeedState, Store

log = logging.getLogger(__name__)

# An unchanged feed is still expanded again this often, so that the window moves on
# (an RRULE without end brings new occurrences into it as days pass).
REEXPAND_AFTER = timedelta(hours=12)
# Distinct log lines remembered per feed, to be said once.
_SAID_MAX = 500


def _unexpected() -> FeedError:
    return FeedError(
        "an unexpected error while refreshing it (the log has the traceback)",
        "calendar.reason.unexpected",
    )


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
        self.budget = Budget(settings.parse_timeout.total_seconds(), settings.parse_memory)
        # When each feed was last expanded, in this process: after a restart the first
        # fetch is unconditional, so the window is expanded afresh.
        self._expanded: dict[str, datetime] = {}
        # One worker, one parse at a time: the memory of parsing stays one budget.
        self.worker = ParseWorker()
        self._applying = asyncio.Lock()
        self._said: dict[str, set[str]] = {}
        # The last parse of each feed: seconds in the worker, and its peak memory (KiB).
        self.parse_costs: dict[str, tuple[float, int]] = {}
        known = ctx.associations.ids()
        for feed in settings.feeds:
            unknown = [a for a in feed.associations if a != "*" and a not in known]
            if unknown:
                log.warning("calendar feed %s names unknown associations %s", feed.label, unknown)

    async def prepare(self) -> None:
        """Start the parse worker now, if there are feeds to parse: the first refresh
        then finds it ready."""
        if self.settings.feeds:
            await self.worker.start(self.budget.memory_mib)

    async def close(self) -> None:
        await self.worker.close()

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
        """Refresh every feed. Raises nothing a feed causes; only `StorageUnavailable`
        (the bot's own disk), so that the job is tried again later."""
        now = self.ctx.clock.now()
        try:
            await self.store.prune(now - self.settings.retention)
        except StorageUnavailable:
            raise
        except Exception:
            log.exception("calendar: past occurrences could not be pruned")
        results = await asyncio.gather(
            *(self._refresh_one(feed, now) for feed in self.settings.feeds),
            return_exceptions=True,
        )
        for feed, result in zip(self.settings.feeds, results, strict=True):
            if isinstance(result, StorageUnavailable):
                raise result
            if isinstance(result, BaseException):  # _refresh_one lets nothing else out
                log.error("calendar feed %s: refresh ended by %r", feed.label, result)

    async def _refresh_one(self, feed: FeedSettings, now: datetime) -> None:
        """Fetch, parse and apply one feed: whatever goes wrong stays with it, logged with
        its traceback and told to organisers as any failure of the feed is."""
        try:
            state = await self.store.feed_state(feed.key)
            try:
                outcome = await self._fetch(feed, state, now)
            except Stopping:
                log.info("calendar feed %s: not read, the bot is stopping", feed.label)
                return
            except StorageUnavailable:
                raise
            except Exception:
                log.exception("calendar feed %s could not be read", feed.label)
                outcome = _unexpected()
            async with self._applying:
                try:
                    await self._settle(feed, state, outcome, now)
                except StorageUnavailable:
                    raise
                except Exception:
                    log.exception("calendar feed %s could not be applied", feed.label)
                    state = await self.store.feed_state(feed.key)
                    await self._failed(feed, state, _unexpected(), now)
        except StorageUnavailable:
            raise
        except Exception:
            log.exception("calendar feed %s: its failure could not be recorded", feed.label)

    async def _settle(
        self,
        feed: FeedSettings,
        state: FeedState | None,
        outcome: FeedError | tuple[Parsed, FeedState] | None,
        now: datetime,
    ) -> None:
        if isinstance(outcome, FeedError):
            await self._failed(feed, state, outcome, now)
            return
        if outcome is None:
            await self._succeeded(feed, state, state, now)
            return
        parsed, fetched_state = outcome
        await self._apply(feed, parsed, now)
        await self._succeeded(feed, state, fetched_state, now)
        await self._tell_left_out(feed, parsed.left_out)

    async def _fetch(
        self, feed: FeedSettings, state: FeedState | None, now: datetime
    ) -> FeedError | tuple[Parsed, FeedState] | None:
        """None: unchanged. A FeedError: failed this time. Else what was parsed."""
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
                return None
            window = Window(
                start=now,
                end=now + self.settings.horizon,
                tz=self.reminders.fmt.tz,
                max_occurrences=self.settings.max_occurrences,
                max_per_series=self.settings.max_per_series,
            )
            parsed = await self.worker.parse(
                fetched.body,
                source=feed.key,
                associations=tuple(feed.associations),
                window=window,
                budget=self.budget,
                say=lambda record: self._say(feed, record),
                label=feed.label,
            )
        except FeedError as exc:
            return exc
        new_state = FeedState(
            config, fetched.etag, fetched.last_modified, fetched.fingerprint, None, False, None
        )
        return parsed, new_state

    def _say(self, feed: FeedSettings, record: Record) -> None:
        """Log what the worker logged, once per feed: a repeat goes to debug."""
        name, level, message, args = record
        try:
            text = message % args
        except (TypeError, ValueError):
            text = message
        said = self._said.setdefault(feed.key, set())
        if text in said:
            level = logging.DEBUG
        elif len(said) < _SAID_MAX:
            said.add(text)
        logging.getLogger(name).log(level, message, *args)

    async def _apply(self, feed: FeedSettings, parsed: Parsed, now: datetime) -> None:
        first = feed.key not in self._expanded
        async with self.store.db.transaction():
            stored = await self.store.load_source(feed.key, now)
            changes = plan(stored, parsed, now, now + self.settings.horizon, first)
            await apply(self.store, self.reminders, changes, now)
        self._expanded[feed.key] = now
        self.parse_costs[feed.key] = (parsed.seconds, parsed.peak_kib)
        log.info(
            "calendar feed %s: %d occurrences, %d new, %d moved, %d changed, %d off,"
            " %d left out; parsed in %.2f s, %d MiB at most",
            feed.label,
            len(parsed.occurrences),
            len(changes.added),
            len(changes.moved),
            changes.changed,
            len(changes.off) + len([o for o in changes.vanished if not o.cancelled]),
            len(parsed.left_out),
            parsed.seconds,
            parsed.peak_kib // 1024,
        )

    async def _tell_left_out(self, feed: FeedSettings, left_out: list[LeftOut]) -> None:
        """Organisers hear once about each set of events that cannot be read."""
        told = await self.store.left_out_digest(feed.key)
        if not left_out:
            if told is not None:
                await self.store.save_left_out_digest(feed.key, None)
            return
        marks = sorted(f"{item.uid}\0{item.code}" for item in left_out)
        digest = hashlib.sha256("\n".join(marks).encode()).hexdigest()[:16]
        if digest == told:
            return
        first = min(left_out, key=lambda item: item.line)
        count = len(left_out)
        for room in self.ctx.organiser_rooms:
            lang = self.ctx.associations.language_for(room)
            text = self.ctx.t(
                "calendar.left_out.one" if count == 1 else "calendar.left_out.many",
                lang,
                feed=feed.label,
                n=count,
                line=first.line,
                reason=self.ctx.t(f"calendar.left_out.{first.code}", lang),
            )
            key = f"calendar:leftout:{feed.key}:{digest}:{room}"
            await self.ctx.delivery.send(key, room, OutgoingMessage(text=text))
        if not self.ctx.organiser_rooms:
            log.error("set bot.organiser_rooms to tell organisers in chat: calendar.left_out")
        await self.store.save_left_out_digest(feed.key, digest)

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
