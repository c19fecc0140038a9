"""The one path every automated post takes.

A post is submitted with a *delivery key* that names it uniquely (say
`reminder:<event>:<occurrence>:<offset>:<room>`). The key is recorded in the outbox before
anything is sent and the platform's message id after; a key already recorded is never
sent again. Sends run per *lane* (by default the target room; the bridge uses source and
target) in submission order: a lane whose platform is down waits and retries with
backoff, while other lanes go on. The adapter receives a token derived from the key (the
Matrix transaction id, the Discord nonce), the same on every retry, so a retry after a
crash between sending and recording is recognised by the platform.

Each `Delivery` is an instance with a random id, and sends only rows it has claimed
(see `Outbox`): what it queues is claimed as it is written, and a row read back from the
database is claimed before it is tried. A row another instance holds is not sent, and
neither is anything after it in its lane, so two processes on one database by mistake
(the instance lock should keep them apart) still send each row once and in order. The
claim is a lease, renewed on an attempt only when less than half of it is left, so the
usual post costs one insert and one update.

While the database cannot be written (`StorageUnavailable`) a lane keeps its place: a
post that went out but could not be recorded is recorded later, never sent again by
this process. A platform still connecting is *held*: its lanes wait, untried, until it
is released (`hold`, `release`), so that nothing fails for good because it came early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Final

from bot.core.clock import Clock
from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import OutgoingMessage
from bot.core.platform import Adapter
from bot.core.refs import RoomRef
from bot.delivery_actions import AttemptObserver, observed
from bot.delivery_api import DeliveryApi
from bot.delivery_replies import DirectReplies
from bot.fence import Fence, Fenced
from bot.outbox import FAILED, PENDING, SENT, Entry, LaneHealth, Outbox, Row, Target, token_for
from bot.storage.database import Database
from bot.storage.health import StorageUnavailable

log = logging.getLogger(__name__)

# An unexpected exception from an adapter is our bug or theirs: retried a few times in
# case it was passing, then given up with the traceback in the log.
_MAX_UNEXPECTED: Final = 5
# How soon a lane tries again after the database refused a write.
STORAGE_RETRY: Final = 2.0

__all__ = ["FAILED", "PENDING", "SENT", "Delivery", "LaneHealth", "Target", "token_for"]


class Delivery(DeliveryApi, DirectReplies):
    def __init__(
        self,
        db: Database,
        clock: Clock,
        adapters: Mapping[str, Adapter],
        *,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        give_up_after: timedelta = timedelta(days=1),
        lease: timedelta = timedelta(minutes=10),
        held_wait: float = 2.0,
        sweep_every: float = 60.0,
    ) -> None:
        self._db = db
        # How often the outbox is read for rows written by another process while this
        # one runs (`samverkan privacy erase` queues its deletions there).
        self._sweep_every = sweep_every
        self._sweeper: asyncio.Task[None] | None = None
        self.instance = secrets.token_hex(8)
        self._outbox = Outbox(db, self.instance)
        self._lease = lease.total_seconds()
        # How long a lane waits before reading again when another instance holds its
        # oldest row.
        self._held_wait = held_wait
        self._held: set[str] = set()
        self._clock = clock
        self._adapters = adapters
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._give_up_after = give_up_after
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._wakers: dict[str, asyncio.Event] = {}
        # When a lane may try again, on the event loop's monotonic clock: retry timing is
        # about the platform's health, not the bot's notion of time. After a restart there
        # is no entry, so pending work is tried at once.
        self._not_before: dict[str, float] = {}
        # Lanes waiting out our own backoff (not a server's retry-after), by platform:
        # `retry_now` cuts their wait short when the platform is back.
        self._backing_off: dict[str, str] = {}
        # Rows submitted by this process and not yet finished, per lane, in order: the
        # lane takes its next row from here without reading it back from the database,
        # once the database has shown that nothing older is pending in it. Until then
        # (a lane's first turn in this process) it reads the database: rows left by the
        # previous process go first, also when new rows are queued before `start()`
        # (adapters catch up and plugins relay while starting).
        self._fresh: dict[str, deque[Row]] = {}
        self._drained: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._held_platforms: set[str] = set()
        self._parked: dict[str, str] = {}  # lane -> the held platform it waits for
        self.on_attempt: AttemptObserver | None = None
        self.fence = Fence()  # the App's, once it holds the instance lock

    # -- submitting ------------------------------------------------------------------

    async def _submit_many(self, entries: Sequence[Entry]) -> int:
        now = self._clock.now().timestamp()
        if self._db.in_transaction():
            rows = await self._outbox.insert_many(entries, now, now + self._lease)
        else:
            async with self._db.transaction():
                rows = await self._outbox.insert_many(entries, now, now + self._lease)
        lanes = {entry.key: entry.lane for entry in entries}

        def queued() -> None:
            for row in rows:
                self._fresh.setdefault(lanes[row.key], deque()).append(row)
            for lane in {lanes[row.key] for row in rows}:
                self._wake(lane)

        self._db.after_commit(queued)
        return len(rows)

    async def _submit(
        self,
        key: str,
        action: str,
        room: RoomRef,
        target: Target | None,
        payload: str | None,
        lane: str | None,
        message: OutgoingMessage | None = None,
    ) -> bool:
        lane = lane or str(room)
        now = self._clock.now().timestamp()
        row = await self._outbox.insert(
            key, lane, action, room, target, payload, now, now + self._lease, message
        )
        if row is None:
            log.debug("delivery %s already known; not queued again", key)
            return False

        def queued() -> None:
            self._fresh.setdefault(lane, deque()).append(row)
            self._wake(lane)

        # Inside a caller's transaction the row exists only once it commits: a lane must
        # not send what a rollback takes back.
        self._db.after_commit(queued)
        return True

    # -- running ---------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every lane with pending work (after a restart)."""
        lanes = await self._outbox.pending_lanes()
        for lane in lanes:
            self._wake(lane)
        if lanes:
            log.info("resuming delivery in %d lane(s)", len(lanes))
        if self._sweep_every > 0 and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="delivery-sweep")

    async def sweep(self) -> int:
        """Take up rows another process queued while this one runs: their lanes read
        the database again. Returns how many lanes were woken."""
        lanes = await self._outbox.foreign_lanes(self._clock.now().timestamp())
        for lane in lanes:
            self._drained.discard(lane)
            self._wake(lane)
        return len(lanes)

    async def _sweep_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._sweep_every)
            if not self.fence.may_send():
                continue
            try:
                if woken := await self.sweep():
                    log.info("took up outbox rows queued elsewhere in %d lane(s)", woken)
            except StorageUnavailable:
                pass  # logged once by the database; the next sweep tries again

    async def release_claims(self) -> int:
        """Drop the claims of every other instance on pending rows, so that work left by
        a process that was killed goes out now rather than when its lease runs out.
        Only for a caller that holds the database's instance lock (no other instance
        can be running then); returns how many rows were released."""
        count = await self._outbox.release_others()
        if count:
            log.info("released %d outbox row(s) claimed by an earlier process", count)
        return count

    async def stop(self) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        tasks = list(self._lanes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # What is still pending goes to the next process at once, lease or not (the
        # outcomes written behind the lanes are written first: `release_own` reads them).
        try:
            await self._outbox.release_own()
        except Exception:
            log.warning("could not release this instance's outbox claims", exc_info=True)

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no lane has work that can go now; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        with contextlib.suppress(StorageUnavailable):
            await self._outbox.flush()  # what the lanes did is in the database too
        return True

    def retry_now(self, platform: str) -> int:
        """Retry at once the lanes backing off from `platform`; returns how many."""
        lanes = [lane for lane, p in self._backing_off.items() if p == platform]
        for lane in lanes:
            del self._backing_off[lane]
            self._not_before.pop(lane, None)
            self._wake(lane)
        if lanes:
            log.info("%s is back: retrying %d waiting lane(s) now", platform, len(lanes))
        return len(lanes)

    def hold(self, platform: str) -> None:
        """Try nothing for `platform` until `release`: it is still connecting."""
        self._held_platforms.add(platform)

    def release(self, platform: str) -> None:
        """`platform` is ready: its lanes go now."""
        self._held_platforms.discard(platform)
        lanes = [lane for lane, p in self._parked.items() if p == platform]
        for lane in lanes:
            del self._parked[lane]
            self._wake(lane)

    def _wake(self, lane: str) -> None:
        if self._stopping:
            return
        waker = self._wakers.setdefault(lane, asyncio.Event())
        waker.set()
        self._idle.clear()
        task = self._lanes.get(lane)
        if task is None or task.done():
            self._lanes[lane] = asyncio.create_task(self._run_lane(lane), name=f"delivery:{lane}")

    async def _run_lane(self, lane: str) -> None:
        try:
            while not self._stopping and not self.fence.lost:
                waker = self._wakers[lane]
                waker.clear()
                row = await self._head(lane)
                if row is None:
                    if waker.is_set():
                        continue  # queued while the database was read
                    return
                platform = row.room.partition(":")[0]
                if platform in self._held_platforms:
                    self._parked[lane] = platform
                    self._settle()
                    await waker.wait()
                    continue
                wait = self._not_before.get(lane, 0.0) - asyncio.get_running_loop().time()
                if wait > 0:
                    # Held up by a retry: other lanes go on; new work in this lane waits
                    # behind it so that order is kept.
                    self._settle()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waker.wait(), wait)
                    continue
                if not await self._hold(lane, row):
                    # Another instance has it: neither it nor anything after it in the
                    # lane goes from here; look again in a while.
                    self._drained.discard(lane)
                    self._not_before[lane] = asyncio.get_running_loop().time() + self._held_wait
                    continue
                await self._attempt(lane, row)
        except asyncio.CancelledError:
            raise
        except StorageUnavailable as exc:
            # Reading or claiming failed (logged once by the database), or the fence is
            # closed: the lane is started again, in its place, after a while (a new
            # holder of the instance lock, once its wait is over).
            if not self._stopping:
                wait = STORAGE_RETRY
                if isinstance(exc, Fenced) and not self.fence.lost:
                    wait = self.fence.clear_in() + 0.01
                asyncio.get_running_loop().call_later(wait, self._wake, lane)
        except Exception:
            log.exception("delivery lane %s stopped by an unexpected error", lane)
        finally:
            if self._lanes.get(lane) is asyncio.current_task():
                del self._lanes[lane]
            self._settle()

    async def _head(self, lane: str) -> Row | None:
        """The lane's oldest pending row."""
        fresh = self._fresh.get(lane)
        if lane in self._drained:
            return fresh[0] if fresh else None
        known = [r.id for r in fresh] if fresh else []
        row = await self._outbox.oldest(lane)
        if known:
            # Rows of ours older than the oldest pending one were finished by another
            # instance (they were pending once committed); those queued while reading
            # are not in `known` and stay.
            done = {i for i in known if row is None or i < row.id}
            self._drop_fresh(lane, done)
            fresh = self._fresh.get(lane)
        if row is None or (fresh and fresh[0].id == row.id):
            # Nothing from before this process is left: from now on the lane is the rows
            # this process queued, in order.
            self._drained.add(lane)
        return row

    def _drop_fresh(self, lane: str, ids: set[int]) -> None:
        fresh = self._fresh.get(lane)
        if not fresh or not ids:
            return
        kept = deque(r for r in fresh if r.id not in ids)
        if kept:
            self._fresh[lane] = kept
        else:
            del self._fresh[lane]

    async def _hold(self, lane: str, row: Row) -> bool:
        """Whether this instance may attempt `row` now: it holds the claim with at least
        half the lease left, or claims (or renews) it now."""
        now = self._clock.now().timestamp()
        if row.claimed_by == self.instance and (row.claimed_until or 0.0) - now > self._lease / 2:
            return True
        until = now + self._lease
        if not await self._outbox.claim(row.id, now, until):
            if lane not in self._held:
                self._held.add(lane)
                log.warning(
                    "delivery %s in lane %s is held by another instance on this database; waiting",
                    row.key,
                    lane,
                )
            return False
        self._held.discard(lane)
        fresh = self._fresh.get(lane)
        if fresh and fresh[0].id == row.id:
            fresh[0] = replace(fresh[0], claimed_by=self.instance, claimed_until=until)
        return True

    def _settle(self) -> None:
        """Set the idle flag when every live lane is waiting on a retry or done."""
        current = asyncio.current_task()
        busy = [t for t in self._lanes.values() if t is not current and not t.done()]
        if not busy:
            self._idle.set()

    async def _attempt(self, lane: str, row: Row) -> None:
        rowid, key, attempts, created = row.id, row.key, row.attempts, row.created_at
        room = RoomRef.parse(row.room)
        adapter = self._adapters.get(room.platform)
        try:
            if adapter is None:
                raise PermanentSendError(f"the {room.platform} adapter is not enabled")
            self.fence.check()  # nothing leaves an instance without the lock (bot.fence)
            message_id = await observed(self._outbox, adapter, row, room, self.on_attempt)
        except StorageUnavailable:
            raise  # resolving a target read the database: the lane waits, nothing sent
        except TransientSendError as exc:
            if exc.retry_after is None:
                self._backing_off[lane] = room.platform
            else:
                self._backing_off.pop(lane, None)
            await self._retry(lane, rowid, key, attempts, created, str(exc), exc.retry_after)
        except PermanentSendError as exc:
            log.warning("delivery %s to %s failed for good: %s", key, room, exc)
            await self._finish(lane, rowid, key, FAILED, None, str(exc))
        except Exception as exc:
            log.exception("delivery %s to %s raised unexpectedly", key, room)
            if attempts + 1 >= _MAX_UNEXPECTED:
                await self._finish(lane, rowid, key, FAILED, None, f"unexpected: {exc!r}")
            else:
                await self._retry(lane, rowid, key, attempts, created, f"unexpected: {exc!r}", None)
        else:
            await self._finish(lane, rowid, key, SENT, message_id, None)

    async def _retry(
        self,
        lane: str,
        rowid: int,
        key: str,
        attempts: int,
        created: float,
        error: str,
        retry_after: float | None,
    ) -> None:
        now = self._clock.now().timestamp()
        if now - created > self._give_up_after.total_seconds():
            log.error("delivery %s given up after %d attempts: %s", key, attempts + 1, error)
            await self._finish(lane, rowid, key, FAILED, None, error)
            return
        delay = min(self._backoff_max, self._backoff_base * 2**attempts)
        delay = delay * (0.5 + random.random() / 2)  # jitter: retries of many lanes spread out
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.info("delivery %s failed (%s); retry %d in %.1fs", key, error, attempts + 1, delay)
        self._not_before[lane] = asyncio.get_running_loop().time() + delay
        fresh = self._fresh.get(lane)
        if fresh and fresh[0].id == rowid:
            fresh[0] = replace(fresh[0], attempts=attempts + 1, next_attempt=now + delay)
        if not await self._persist(
            lambda: self._outbox.record_retry(rowid, attempts + 1, now + delay, error)
        ):
            self._lost(lane, rowid, key)

    async def _finish(
        self,
        lane: str,
        rowid: int,
        key: str,
        status: str,
        message_id: str | None,
        error: str | None,
    ) -> None:
        # Written behind the lane (`Outbox.settle`): the next post need not wait for it.
        now = self._clock.now().timestamp()
        self._outbox.settle(
            rowid, status, message_id, error, now, lambda: self._lost(lane, rowid, key)
        )
        self._backing_off.pop(lane, None)
        fresh = self._fresh.get(lane)
        if fresh and fresh[0].id == rowid:
            fresh.popleft()
            if not fresh:
                del self._fresh[lane]

    async def _persist(self, write: Callable[[], Awaitable[bool]]) -> bool:
        """Record what became of an attempt, however long the database refuses: the
        post is not made again, and the lane waits (in order) until it is recorded."""
        while True:
            try:
                return await write()
            except StorageUnavailable:
                if self._stopping:
                    raise  # left pending: the next process tries it (tokens dedupe)
                await asyncio.sleep(STORAGE_RETRY)

    def _lost(self, lane: str, rowid: int, key: str) -> None:
        """Our lease on a row ran out during an attempt and another instance took it:
        what we did is not recorded, and the lane reads the database again."""
        log.warning("delivery %s was taken over by another instance during an attempt", key)
        self._drained.discard(lane)
        self._drop_fresh(lane, {rowid})
