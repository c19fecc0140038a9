"""Wake-ups. The `schedule` table is the truth; APScheduler only wakes the bot.

A plugin asks for a job at an instant (`at`) or on a crontab (`every`); the row is
stored first, then the waker is armed for the earliest pending row. When woken, every due
row runs: on time, or *late* (marked, so the post can say so) if it fell due while the bot
was down but within the grace period; beyond the grace it is reported once to organisers
instead. A handler runs at least once; the posts it makes are keyed, so a rerun after a
crash posts nothing twice. A handler registered for batches (`register_batch`) gets
the due rows of one wake-up together, a thousand reminders in two calls rather than a
thousand. Time comes from an injected clock. While the database cannot
be written (`StorageUnavailable`) a due row stays pending and the run is tried again a
little later, so a job is neither dropped nor marked failed for a full disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.core.clock import Clock
from bot.job_runs import (
    DONE,
    FAILED,
    MISSED,
    PENDING,
    BatchHandler,
    Handler,
    JobRun,
    MissedJob,
    MissedReporter,
    run_together,
)
from bot.storage.database import Database, like_prefix
from bot.storage.health import StorageUnavailable
from bot.wakers import APSchedulerWaker, ManualWaker, Waker

__all__ = [
    "DONE",
    "FAILED",
    "MISSED",
    "PENDING",
    "APSchedulerWaker",
    "BatchHandler",
    "Handler",
    "JobRun",
    "ManualWaker",
    "MissedJob",
    "Scheduler",
    "Waker",
    "next_cron_fire",
]

log = logging.getLogger(__name__)

_REARM_DELAY: Final = 0.05
STORAGE_RETRY: Final = 5.0  # seconds before due rows the database refused run again
# Due rows handed to one batch handler at most: a thousand reminders due at one
# instant go out in two transactions rather than one long one.
BATCH_MAX: Final = 500
# One encoder for all rows: `json.dumps` with options builds one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode
# Insert a row, or move a pending one; a row that ran stays as it is.
_AT: Final = (
    "INSERT INTO schedule (key, owner, handler, due_at, payload, cron, status, grace)"
    " VALUES (?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT (key) DO UPDATE SET"
    " due_at = excluded.due_at, payload = excluded.payload, handler = excluded.handler,"
    " grace = excluded.grace WHERE schedule.status = ?"
)


def next_cron_fire(cron: str, tz: ZoneInfo, after: datetime) -> datetime:
    trigger = CronTrigger.from_crontab(cron, timezone=tz)
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if fire is None:
        raise ValueError(f"{cron!r} never fires")
    return fire.astimezone(UTC)


class Scheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        timezone: ZoneInfo,
        grace: timedelta,
        on_missed: MissedReporter,
        waker: Waker | None = None,
        late_after: timedelta = timedelta(minutes=1),
    ) -> None:
        self._db = db
        self._clock = clock
        self._tz = timezone
        self._grace = grace
        self._late_after = late_after
        self._on_missed = on_missed
        self._waker = waker or APSchedulerWaker()
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._batches: dict[tuple[str, str], BatchHandler] = {}
        self._run_lock = asyncio.Lock()
        self._unhandled_warned: set[tuple[str, str]] = set()
        self._running = False
        self._rearm_pending = False
        self._rearm_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._retry_timer: asyncio.TimerHandle | None = None

    # -- registration (by the plugin loader) -------------------------------------------

    def register(self, owner: str, name: str, handler: Handler) -> None:
        if (owner, name) in self._handlers:
            raise ValueError(f"job handler {owner}.{name} registered twice")
        self._handlers[(owner, name)] = handler

    def register_batch(self, owner: str, name: str, handler: BatchHandler) -> None:
        """Run due one-off rows of `owner.name` together: consecutive due rows go to
        `handler` as one list (at most BATCH_MAX), their statuses in one statement. The
        handler given to `register` stays the fallback: should the batch raise, each of
        its rows runs alone, so one bad row does not fail the others."""
        self._batches[(owner, name)] = handler

    def unregister(self, owner: str) -> None:
        for key in [k for k in self._handlers if k[0] == owner]:
            del self._handlers[key]
        for key in [k for k in self._batches if k[0] == owner]:
            del self._batches[key]

    # -- asking for wake-ups ----------------------------------------------------------

    async def at(
        self,
        owner: str,
        key: str,
        when: datetime,
        handler: str,
        payload: dict[str, Any] | None = None,
        *,
        grace: timedelta | None = None,
    ) -> bool:
        """Run `handler` at `when`. A pending row with the same key is moved; a row that
        already ran is left alone (returns False), so re-arming never runs a job twice.
        `grace` replaces the bot's late grace for this row (work that must be done
        however late, such as closing a poll)."""
        if when.tzinfo is None:
            raise ValueError("scheduler times must be timezone-aware")
        body = json.dumps(payload or {}, ensure_ascii=False)
        grace_s = grace.total_seconds() if grace is not None else None
        changed = await self._db.execute(
            _AT, (key, owner, handler, when.timestamp(), body, PENDING, grace_s, PENDING)
        )
        if not changed:
            return False
        await self._rearm()
        return True

    async def at_many(
        self,
        owner: str,
        rows: Sequence[tuple[str, datetime, str, dict[str, Any] | None]],
        *,
        grace: timedelta | None = None,
    ) -> int:
        """`at` for many rows (key, when, handler, payload) in one statement: arming a
        calendar costs the database, not a round trip per row. Returns how many rows
        were inserted or moved."""
        grace_s = grace.total_seconds() if grace is not None else None
        params = []
        for key, when, handler, payload in rows:
            if when.tzinfo is None:
                raise ValueError("scheduler times must be timezone-aware")
            body = _encode(payload) if payload else "{}"
            params.append((key, owner, handler, when.timestamp(), body, PENDING, grace_s, PENDING))
        if not params:
            return 0
        changed = await self._db.executemany(_AT, params)
        await self._rearm()
        return changed

    async def every(
        self,
        owner: str,
        name: str,
        cron: str,
        handler: str,
        payload: dict[str, Any] | None = None,
        *,
        grace: timedelta | None = None,
    ) -> datetime:
        """Run `handler` on a crontab in the bot's zone. Returns the next fire time.

        Keeps a pending fire that is already due (so a fire missed while down is handled
        by the late/missed rule), unless the crontab itself changed."""
        key = self.cron_key(owner, name)
        row = await self._db.fetchone(
            "SELECT cron, due_at, status FROM schedule WHERE key = ?", (key,)
        )
        now = self._clock.now()
        body = json.dumps(payload or {}, ensure_ascii=False)
        grace_s = grace.total_seconds() if grace is not None else None
        if row is not None and row[0] == cron and row[2] == PENDING:
            await self._db.execute(
                "UPDATE schedule SET handler = ?, payload = ?, grace = ? WHERE key = ?",
                (handler, body, grace_s, key),
            )
            due = datetime.fromtimestamp(float(row[1]), UTC)
        else:
            due = next_cron_fire(cron, self._tz, now)
            await self._db.execute(
                "INSERT INTO schedule (key, owner, handler, due_at, payload, cron, status, grace)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " handler = excluded.handler, due_at = excluded.due_at,"
                " payload = excluded.payload, cron = excluded.cron, status = excluded.status,"
                " grace = excluded.grace",
                (key, owner, handler, due.timestamp(), body, cron, PENDING, grace_s),
            )
        await self._rearm()
        return due

    @staticmethod
    def cron_key(owner: str, name: str) -> str:
        return f"cron:{owner}:{name}"

    async def cancel(self, key: str) -> bool:
        changed = await self._db.execute(
            "DELETE FROM schedule WHERE key = ? AND status = ?", (key, PENDING)
        )
        await self._rearm()
        return changed > 0

    async def cancel_many(self, keys: Sequence[str]) -> int:
        """Cancel the pending rows of these keys in one statement."""
        if not keys:
            return 0
        changed = await self._db.executemany(
            "DELETE FROM schedule WHERE key = ? AND status = ?", [(k, PENDING) for k in keys]
        )
        await self._rearm()
        return changed

    async def cancel_prefix(self, prefix: str) -> int:
        changed = await self._db.execute(
            "DELETE FROM schedule WHERE key LIKE ? ESCAPE '\\' AND status = ?",
            (like_prefix(prefix), PENDING),
        )
        await self._rearm()
        return changed

    async def pending(self, prefix: str = "") -> list[tuple[str, datetime]]:
        rows = await self._db.fetchall(
            "SELECT key, due_at FROM schedule WHERE status = ? AND key LIKE ? ESCAPE '\\'"
            " ORDER BY due_at",
            (PENDING, like_prefix(prefix)),
        )
        return [(str(k), datetime.fromtimestamp(float(d), UTC)) for k, d in rows]

    async def count_pending(self, prefix: str = "") -> int:
        """How many rows `pending` would list, counted by the database (a metric's
        scrape, where a national calendar has 100,000)."""
        value = await self._db.fetchval(
            "SELECT COUNT(*) FROM schedule WHERE status = ? AND key LIKE ? ESCAPE '\\'",
            (PENDING, like_prefix(prefix)),
        )
        return int(value or 0)

    async def status(self, key: str) -> str | None:
        value = await self._db.fetchval("SELECT status FROM schedule WHERE key = ?", (key,))
        return str(value) if value is not None else None

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Re-arm from the table: whatever fell due while the bot was down runs now."""
        self._running = True
        await self.run_due()

    def shutdown(self) -> None:
        self._running = False
        for timer in (self._rearm_timer, self._retry_timer):
            if timer is not None:
                timer.cancel()
        for task in self._tasks:
            task.cancel()
        self._waker.shutdown()

    async def next_due(self) -> datetime | None:
        value = await self._db.fetchval(
            "SELECT MIN(due_at) FROM schedule WHERE status = ?", (PENDING,)
        )
        return datetime.fromtimestamp(float(value), UTC) if value is not None else None

    async def _rearm(self) -> None:
        """Arm the waker for the earliest pending row. Many changes in a row (arming a
        whole calendar) share one look-up, a moment later: wake-ups need no better
        precision than that, and the look-up would otherwise double the statements."""
        if not self._running or self._rearm_pending:
            return
        self._rearm_pending = True
        self._rearm_timer = asyncio.get_running_loop().call_later(_REARM_DELAY, self._spawn_rearm)

    def _spawn_rearm(self) -> None:
        task = asyncio.ensure_future(self._do_rearm())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _do_rearm(self) -> None:
        self._rearm_pending = False
        try:
            when = await self.next_due()
        except Exception:
            log.exception("could not read the next wake-up")
            return
        # The bot may have stopped while the look-up ran.
        if self._running:
            self._waker.arm(when, self.run_due)

    @property
    def running(self) -> bool:
        return self._running

    async def run_due(self) -> int:
        """Run every pending row whose time has come; returns how many were handled."""
        try:
            return await self._run_due()
        except StorageUnavailable:
            # The row in hand stays pending (its handler's keyed posts make a rerun
            # harmless): the run is tried again once a while has passed.
            if self._running:
                loop = asyncio.get_running_loop()
                self._retry_timer = loop.call_later(STORAGE_RETRY, self._spawn_run)
            return 0

    def _spawn_run(self) -> None:
        task = asyncio.ensure_future(self.run_due())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_due(self) -> int:
        async with self._run_lock:
            handled = 0
            now = self._clock.now()
            rows = await self._db.fetchall(
                "SELECT key, owner, handler, due_at, payload, cron, grace FROM schedule"
                " WHERE status = ? AND due_at <= ? ORDER BY due_at, key",
                (PENDING, now.timestamp()),
            )
            i = 0
            while i < len(rows):
                end = self._batch_end(rows, i)
                if end > i:
                    await self._run_batch(rows[i:end], now)
                    handled += end - i
                    i = end
                    continue
                key, owner, handler, due_ts, payload, cron, grace = rows[i]
                i += 1
                limit = timedelta(seconds=grace) if grace is not None else self._grace
                if await self._run_one(
                    str(key), str(owner), str(handler), float(due_ts), payload, cron, now, limit
                ):
                    handled += 1
        await self._rearm()
        return handled

    def _batch_end(self, rows: list[tuple[Any, ...]], i: int) -> int:
        """The end of the run of one-off rows from `i` that one batch handler takes
        (at most BATCH_MAX); `i` itself when the row at `i` has none."""
        owner, handler, cron = rows[i][1], rows[i][2], rows[i][5]
        if cron or (str(owner), str(handler)) not in self._batches:
            return i
        end = i + 1
        while end < len(rows) and end - i < BATCH_MAX and not rows[end][5]:
            if (rows[end][1], rows[end][2]) != (owner, handler):
                break
            end += 1
        return end

    async def _run_batch(self, rows: list[tuple[Any, ...]], now: datetime) -> None:
        owner, handler = str(rows[0][1]), str(rows[0][2])
        statuses = await run_together(
            rows,
            self._batches[(owner, handler)],
            self._handlers.get((owner, handler)),
            now,
            grace=self._grace,
            late_after=self._late_after,
            on_missed=self._on_missed,
        )
        await self._db.executemany(
            "UPDATE schedule SET status = ?, done_at = ? WHERE key = ?", statuses
        )

    async def _run_one(
        self,
        key: str,
        owner: str,
        name: str,
        due_ts: float,
        payload: str,
        cron: str | None,
        now: datetime,
        grace: timedelta,
    ) -> bool:
        fn = self._handlers.get((owner, name))
        if fn is None:
            if (owner, name) not in self._unhandled_warned:
                self._unhandled_warned.add((owner, name))
                log.warning("job %s is due but %s.%s is not loaded; it waits", key, owner, name)
            return False
        due = datetime.fromtimestamp(due_ts, UTC)
        data = json.loads(payload)
        lateness = now - due
        if lateness > grace:
            log.warning("job %s was due %s ago, beyond the grace period: reporting", key, lateness)
            status = MISSED
            try:
                await self._on_missed(MissedJob(key, owner, name, data, due))
            except StorageUnavailable:
                raise
            except Exception:
                log.exception("could not report the missed job %s", key)
        else:
            run = JobRun(key, owner, name, data, due, now, lateness > self._late_after)
            try:
                await fn(run)
                status = DONE
            except StorageUnavailable:
                raise
            except Exception:
                log.exception("job %s (%s.%s) failed", key, owner, name)
                status = FAILED
        if cron:
            nxt = next_cron_fire(cron, self._tz, max(now, due))
            await self._db.execute(
                "UPDATE schedule SET due_at = ?, status = ?, done_at = ? WHERE key = ?",
                (nxt.timestamp(), PENDING, now.timestamp(), key),
            )
        else:
            await self._db.execute(
                "UPDATE schedule SET status = ?, done_at = ? WHERE key = ?",
                (status, now.timestamp(), key),
            )
        return True
