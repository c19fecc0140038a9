"""Whether the database can be written now, and the outage in progress if not.

A full disk or an I/O error is not a bug of whoever wrote: the write is taken back and
tried again later. `Database` reports every such failure here and every write that
succeeds; the adapters, delivery and the scheduler hold their work while writes fail,
and the App tells organisers once, when writing works again, how long it did not.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

log = logging.getLogger(__name__)

# SQLite's primary result codes for a disk that is full or failing; the extended codes
# (SQLITE_IOERR_WRITE, SQLITE_IOERR_SHMSIZE, ...) carry the primary one in the low byte.
_OUTAGE_CODES: Final = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})


class StorageUnavailable(Exception):
    """The database cannot be written now (disk full, I/O error). Nothing of the write
    was kept; the work it belonged to is to be done again once writes succeed."""


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` is SQLite saying the disk is full or failing (not a bug in SQL)."""
    if not isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _OUTAGE_CODES
    text = str(exc)
    return "disk is full" in text or "disk I/O error" in text


@dataclass(frozen=True, slots=True)
class Outage:
    began: datetime
    ended: datetime | None
    reason: str
    failures: int


class StorageHealth:
    """The database's writability as the last writes found it."""

    def __init__(self) -> None:
        self._began: datetime | None = None
        self._began_mono = 0.0
        self._reason = ""
        self._failures = 0
        self._ended: datetime | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._unreported = asyncio.Event()

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    @property
    def reason(self) -> str | None:
        """Why writes fail now, or None while they succeed."""
        return None if self.writable else self._reason

    def failed(self, exc: BaseException) -> StorageUnavailable:
        """Record a failed write; returns the exception to raise in its place."""
        reason = str(exc) or type(exc).__name__
        if self._began is None:
            self._began = datetime.now(UTC)
            self._began_mono = time.monotonic()
            self._failures = 0
        if self.writable:
            # Logged once per outage (and once more if it comes back before being
            # reported): a traceback per held event would bury the one line that matters.
            log.error(
                "the database cannot be written (%s): inbound events and posts are held "
                "and retried until writes succeed",
                reason,
            )
        self._reason = reason
        self._failures += 1
        self._ended = None
        self._writable.clear()
        self._unreported.set()
        return StorageUnavailable(reason)

    def wrote(self) -> None:
        """Record a write that succeeded."""
        if self.writable:
            return
        self._ended = datetime.now(UTC)
        log.warning(
            "the database can be written again after %.0fs (%d failed writes)",
            time.monotonic() - self._began_mono,
            self._failures,
        )
        self._writable.set()

    def outage(self) -> Outage | None:
        """The outage not reported yet (ended or not), if any."""
        if self._began is None:
            return None
        return Outage(self._began, self._ended, self._reason, self._failures)

    def reported(self, outage: Outage) -> None:
        """The ended `outage` was told: forget it (unless writes failed again since)."""
        if self._began == outage.began and self.writable:
            self._began = None
            self._unreported.clear()

    async def wait_writable(self, timeout: float | None = None) -> bool:
        """Until a write has succeeded again (True), or `timeout` passed (False)."""
        try:
            await asyncio.wait_for(self._writable.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_outage(self) -> None:
        """Until there is an outage not reported yet."""
        await self._unreported.wait()
