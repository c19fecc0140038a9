"""Where a SQLite statement runs: on the event loop when it is short, on aiosqlite's
thread when it must wait or runs long.

A trip to aiosqlite's thread wakes that thread and then the event loop again: 80-100 µs
of CPU per statement (measured here), against 15-20 µs for a point statement itself (one
row read or written; WAL with synchronous=NORMAL, so no fsync at commit). Those trips
were most of a bridged message's storage cost, and more than half of the bot's CPU per
Discord message beyond a bare discord.py client's. So a statement runs where its caller
is, with three guards that keep the loop from stalling:

- `busy_timeout` is 0 there: when another process holds the write lock (a CLI `erase`
  beside the running bot, say), SQLite answers SQLITE_BUSY at once and the statement
  goes to the thread, which waits for the lock as before (`BUSY_TIMEOUT_MS`);
- a progress handler interrupts it after `LOOP_BUDGET` seconds of work (a purge, a
  large read), and it runs again on the thread. Only one statement, or one whole
  explicit transaction, is run on the loop at a time, so one that was interrupted has
  left nothing behind (SQLite takes the statement back, the transaction is rolled back);
- checkpoints, which copy the WAL into the file and fsync both, do not run at the end of
  a commit on the loop (`wal_autocheckpoint=0`): a PASSIVE checkpoint runs on the thread
  after every `CHECKPOINT_EVERY` writes, as SQLite's own would after about as many pages.

What stays on the thread: statements inside a `Database.transaction()` (its holder may
run heavy work, and an interrupt would take its whole transaction back), `executemany`
(each row commits by itself outside a transaction, so it cannot be interrupted and run
again), and PRAGMAs and VACUUM (checkpoints, checks: file work the handler cannot cut).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Final, TypeVar

import aiosqlite

from bot.storage.health import StorageHealth, is_outage

log = logging.getLogger(__name__)

_T = TypeVar("_T")

BUSY_TIMEOUT_MS: Final = 5000
# Longer than any point statement takes (tens of µs), short enough that an event loop
# serving two platforms does not notice it.
LOOP_BUDGET: Final = 0.002
# SQLite calls the progress handler every this many virtual-machine steps (a few µs).
_PROGRESS_STEPS: Final = 1000
# SQLite's own default checkpoints at 1,000 WAL pages; a point write commits 2-4 pages.
CHECKPOINT_EVERY: Final = 300
_RETRY_ON_THREAD: Final = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_INTERRUPT}
)
_THREAD_ONLY: Final = ("PRAGMA", "VACUUM", "ANALYZE", "REINDEX")


def thread_only(sql: str) -> bool:
    """Whether `sql` is file work rather than a statement the loop may run."""
    return sql.lstrip()[:7].upper().startswith(_THREAD_ONLY)


class _ToThread(Exception):
    """Busy or cut off on the loop: nothing was done, the thread does it."""


def _checkpoint(conn: sqlite3.Connection) -> None:
    # Read to the end and closed: a PRAGMA statement left open keeps its locks.
    cursor = conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    try:
        cursor.fetchall()
    finally:
        cursor.close()


class Calls:
    """The one sqlite3 connection, and the choice of where each call on it runs. Every
    call holds `lock` (or runs on the loop while nobody holds it), so the connection is
    never used from two threads at once."""

    def __init__(self, conn: aiosqlite.Connection, health: StorageHealth) -> None:
        self._conn = conn
        self._raw: sqlite3.Connection = conn._conn  # aiosqlite's, opened check_same_thread=False
        self._health = health
        self.lock = asyncio.Lock()
        self._deadline = 0.0  # set while a statement runs on the loop
        self._writes = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self.on_loop = 0  # statements run on the loop; those sent on to the thread:
        self.to_thread = 0
        self._raw.set_progress_handler(self._progress, _PROGRESS_STEPS)

    @property
    def raw(self) -> sqlite3.Connection:
        return self._raw

    def _progress(self) -> int:
        # Non-zero interrupts the statement (SQLITE_INTERRUPT); only on the loop.
        return 1 if self._deadline and time.perf_counter() > self._deadline else 0

    async def run(self, work: Callable[[sqlite3.Connection], _T], *, may_loop: bool) -> _T:
        """Run `work` (one statement, or one explicit transaction of its own) outside any
        caller's transaction: on the loop if `may_loop` and nobody holds the lock and it
        is short, else on the thread under the lock."""
        if may_loop and not self.lock.locked():
            try:
                return self._on_loop(work)
            except _ToThread:
                self.to_thread += 1
        async with self.lock:
            return await self._checked(work, wait=True)

    async def in_transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` inside the calling task's transaction (the lock is its)."""
        return await self.thread(work, wait=False)

    def _on_loop(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` here; `_ToThread` when it must go to the thread instead."""
        raw = self._raw
        before = raw.total_changes
        self._deadline = time.perf_counter() + LOOP_BUDGET
        try:
            result = work(raw)
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if isinstance(code, int) and (code & 0xFF) in _RETRY_ON_THREAD:
                raise _ToThread from None
            if is_outage(exc):
                raise self._health.failed(exc) from exc
            raise
        except sqlite3.Error as exc:
            if is_outage(exc):
                raise self._health.failed(exc) from exc
            raise
        finally:
            self._deadline = 0.0
        self.on_loop += 1
        if raw.total_changes != before:
            self.wrote()
        return result

    async def _checked(self, work: Callable[[sqlite3.Connection], _T], *, wait: bool) -> _T:
        before = self._raw.total_changes
        try:
            result = await self.thread(work, wait=wait)
        except sqlite3.Error as exc:
            if is_outage(exc):
                raise self._health.failed(exc) from exc
            raise
        if self._raw.total_changes != before:
            self.wrote()
        return result

    async def thread(self, work: Callable[[sqlite3.Connection], _T], *, wait: bool) -> _T:
        """Run `work` on aiosqlite's thread, in one trip; the caller holds the lock.
        `wait`: SQLite waits up to BUSY_TIMEOUT_MS for another process's write lock.

        aiosqlite's cursor API takes a trip per call (execute, fetch, close); its
        private `_execute` is the queue those calls go through."""
        raw = self._raw

        def run() -> _T:
            if not wait:
                return work(raw)
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            try:
                return work(raw)
            finally:
                raw.execute("PRAGMA busy_timeout=0")

        result: _T = await self._conn._execute(run)  # type: ignore[no-untyped-call]
        return result

    def wrote(self) -> None:
        """A write went through (a statement, or a transaction's commit): `health` hears
        of it, and every CHECKPOINT_EVERY of them a checkpoint runs on the thread."""
        self._health.wrote()
        self._writes += 1
        if self._writes >= CHECKPOINT_EVERY and self._checkpoint is None:
            self._writes = 0
            self._checkpoint = asyncio.get_running_loop().create_task(
                self._run_checkpoint(), name="sqlite-checkpoint"
            )

    async def _run_checkpoint(self) -> None:
        try:
            async with self.lock:
                await self.thread(_checkpoint, wait=False)
        except sqlite3.Error as exc:
            # A checkpoint that cannot run now runs after the next writes (or at close).
            log.debug("checkpoint not taken: %s", exc)
        finally:
            self._checkpoint = None

    async def close(self) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        self._raw.set_progress_handler(None, 0)
