"""Writes that must reach the database soon, but need not before their caller goes on.

Two writes follow every message the bot relays or answers: the delivery's outcome (sent,
with the platform's message id) and the inbound mark (the message handled, the
channel's position). Neither must be durable before the next step: the post is out, the
message is handled. Written one by one, each is a commit of its own (50-75 µs of CPU
inside the running bot, measured in bench/discord_bench.py, where the same statement
alone in a loop takes 20 µs); queued here and written together `DELAY` later, a burst
of them is one commit, its statements back to back.

What is queued and not yet written is lost if the process dies, and the next process
then repeats that work: a delivery whose outcome was lost is attempted again with the
same token, which the platforms drop as a repeat (the Matrix transaction id, the Discord
nonce, the webhook's records); a message whose mark was lost is handled again, and what
its handling queued is known by its delivery key. Only such writes belong here. Their
owners write what is queued before they read back what it changes (`flush`), so one
process never reads its own past; another (a CLI `health`) may be `DELAY` behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from bot.storage.health import StorageUnavailable

log = logging.getLogger(__name__)

DELAY: Final = 0.02
_BUSY: Final = ("SQLITE_BUSY", "SQLITE_LOCKED")
STORAGE_RETRY: Final = 2.0

Done = Callable[[int], None]  # told the statement's count of changed rows once written


class _Writes(Protocol):
    def in_transaction(self) -> bool: ...

    async def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]: ...


class WriteBehind:
    def __init__(self, db: _Writes, *, delay: float = DELAY) -> None:
        self._db = db
        self._delay = delay
        self._queued: list[tuple[str, Sequence[Any], Done | None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._outage: StorageUnavailable | None = None  # while the writer waits to retry
        self._order = asyncio.Lock()  # one batch at a time, in the order taken
        self._retry = asyncio.Event()

    @property
    def busy(self) -> bool:
        """Whether anything is queued or being written."""
        return bool(self._queued) or self._writing is not None

    def add(
        self, statements: Sequence[tuple[str, Sequence[Any]]], done: Done | None = None
    ) -> None:
        """Queue statements (written together, in order, within `delay` or at the next
        `flush`); `done` is told the first one's count of changed rows."""
        for i, (sql, params) in enumerate(statements):
            self._queued.append((sql, params, done if i == 0 else None))
        if self._timer is None and self._writing is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._start)

    def _start(self) -> None:
        self._timer = None
        if self._writing is None and self._queued:
            self._writing = asyncio.create_task(self._write_all(), name="write-behind")

    async def _write_all(self) -> None:
        try:
            while self._queued:
                try:
                    await self._write_once()
                except StorageUnavailable as exc:
                    # Logged once by the database; kept, and tried again (sooner if a
                    # flush finds the database back).
                    self._outage = exc
                    self._retry.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._retry.wait(), STORAGE_RETRY)
                    self._outage = None
        finally:
            self._writing = None
            self._outage = None

    async def _write_once(self) -> None:
        async with self._order:
            batch, self._queued = self._queued, []
            if not batch:
                return
            try:
                counts = await self._db.execute_all([(sql, params) for sql, params, _ in batch])
            except StorageUnavailable:
                self._queued[:0] = batch  # in order, before what came meanwhile
                raise
            except Exception as exc:
                if getattr(exc, "sqlite_errorname", "").startswith(_BUSY):
                    # Another connection kept the file's write lock past the busy
                    # timeout: an outage of its own kind, waited out like a full disk.
                    self._queued[:0] = batch
                    raise StorageUnavailable(f"the database is locked ({exc})") from exc
                log.exception("%d queued write(s) failed and are dropped", len(batch))
                return
        for (_, _, done), count in zip(batch, counts, strict=True):
            if done is not None:
                done(count)

    async def flush(self) -> None:
        """Write what is queued now, and wait for a write under way. Raises
        `StorageUnavailable` if the database takes nothing now (what is queued stays
        queued). Inside the caller's transaction nothing is written: a rollback would
        take it back after its owner was told it is written."""
        if self._db.in_transaction():
            # A writer under way waits for this very transaction (the database runs one
            # at a time): waiting for it would never end, and writing here would be
            # taken back with the caller's work if it rolls back. The caller reads the
            # database as it stands; what is queued is written after its commit.
            return
        if self._outage is not None:
            # The writer waits out an outage; the database may be back before it is
            # (PostgreSQL connects again at the next statement). Tried once now, as
            # the caller's own statement would be: a caller that stops (releasing its
            # claims for a standby) must not give up on a database that takes writes
            # again. The writer sleeps meanwhile; `_order` keeps the batches in turn.
            await self._write_once()
            self._outage = None
            self._retry.set()  # the writer: nothing left to wait for
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            await asyncio.shield(self._writing)
        if self._queued:
            await self._write_once()
        if self._queued and self._timer is None and self._writing is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._start)
