"""Fencing: no post leaves an instance that does not hold the database's instance lock.

On SQLite the lock is an `flock` that only the process's death ends, so the fence is
always open. On PostgreSQL it is a session advisory lock, which the server drops when
the holder's connection dies: a cut network or a hung server can take it from an
instance that does not know yet. So the holder counts as holding only for a lease after
each confirmation (a query answered on the lock's own connection), and an instance that
has just taken the lock waits one lease, and a margin, before its first post: by then
the instance that had it before has seen its own lease run out, whatever happened to it.

The check sits where every post leaves (delivery's attempt); `Fenced` is an outage to
the delivery lanes, which hold their rows and try again, so nothing is lost by waiting.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Final

from bot.storage.health import StorageUnavailable

log = logging.getLogger(__name__)

# Seconds a confirmation of the lock counts for; the watch confirms every CHECK_EVERY.
LEASE: Final = 3.0
CHECK_EVERY: Final = 1.0
# Added to the new holder's wait for what the old one had in flight when its lease ran
# out (a request already on the wire is not called back).
MARGIN: Final = 1.0

__all__ = ["CHECK_EVERY", "LEASE", "MARGIN", "Fence", "Fenced"]


class Fenced(StorageUnavailable):
    """This instance may not post now: it does not (or not yet) hold the lock."""


class Fence:
    """Whether this instance may post now (`may_send`), on a monotonic clock."""

    def __init__(
        self,
        *,
        lease: float = LEASE,
        grace: float = LEASE + MARGIN,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._now = monotonic
        self._clear_at = 0.0
        self._valid_until = math.inf  # open: no lock that can be lost without us
        self.lease = lease
        # How long a new holder waits before its first post. Tests that start one
        # instance on a fresh database may make it 0; a deployment never does.
        self.grace = grace
        self.lost = False

    @property
    def check_every(self) -> float:
        """How often the lock is confirmed: three times a lease."""
        return self.lease / 3

    def leased(self, taken_at: float) -> None:
        """The lock was taken at `taken_at`: hold it for a lease after each
        confirmation, and post only from `grace` after taking it."""
        self._valid_until = taken_at + self.lease
        self._clear_at = taken_at + self.grace
        self.lost = False

    def confirmed(self, asked_at: float) -> None:
        """The lock's connection answered a query sent at `asked_at` (the time before
        the query: the server held our session, and so the lock, at some moment after
        it)."""
        if not self.lost:
            self._valid_until = max(self._valid_until, asked_at + self.lease)

    def lose(self) -> None:
        if not self.lost:
            log.debug("fence closed: the instance lock is lost")
        self.lost = True
        self._valid_until = -math.inf

    def may_send(self) -> bool:
        now = self._now()
        return not self.lost and self._clear_at <= now < self._valid_until

    def expired(self) -> bool:
        """No confirmation within the lease: the lock may be gone."""
        return self.lost or self._now() >= self._valid_until

    def clear_in(self) -> float:
        """Seconds until a new holder may post (0 when it may)."""
        return max(0.0, self._clear_at - self._now())

    def check(self) -> None:
        """Raise `Fenced` unless this instance may post now."""
        if self.may_send():
            return
        if self.lost or self.expired():
            raise Fenced("this instance does not hold the database's instance lock")
        raise Fenced(f"taking over: posts begin in {self.clear_in():.1f}s")
