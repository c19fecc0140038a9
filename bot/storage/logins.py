"""Gateway logins counted in the database: one row per login (a Discord IDENTIFY), so
that every instance on one database and every restart counts against the same day.

`take` counts a login unless the limit is reached, in one transaction that no other
instance can interleave with: SQLite's transactions take the write lock at BEGIN
(IMMEDIATE); on PostgreSQL the table is locked against other writers first (its
default isolation would let two instances both see one login short of the limit).
Rows older than the window are deleted as they go; the privacy purge removes them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from bot.storage.database import Database
from bot.storage.state import AdapterState

WINDOW: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Logins:
    """The logins in the window before `now`, and whether this one was counted."""

    count: int  # including this one, if taken
    taken: bool
    times: tuple[float, ...]  # epoch seconds, oldest first (this one included)

    def allowed_again(self, limit: int) -> datetime | None:
        """When fewer than `limit` logins are left in the window (the moment the oldest
        that must go leaves it); None while there are fewer already."""
        if len(self.times) < limit:
            return None
        return _at(self.times[len(self.times) - limit]) + WINDOW


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class GatewayLogins:
    """The logins of one platform (the table `gateway_logins`, core migration 4)."""

    def __init__(self, db: Database, platform: str) -> None:
        self._db = db
        self.platform = platform

    @classmethod
    def of(cls, state: AdapterState) -> GatewayLogins:
        # The adapter's state lives in the same database (one module of this package
        # reading another's handle, rather than a second argument to every factory).
        return cls(state._db, state.platform)

    async def take(self, now: datetime, limit: int) -> Logins:
        """Count a login at `now` unless `limit` were already counted in the day
        before it; either way, the logins of that day."""
        stamp = now.timestamp()
        cutoff = (now - WINDOW).timestamp()
        async with self._db.transaction() as db:
            if db.engine == "postgresql":
                # Other readers go on; a second `take` waits here until this commits.
                await db.execute("LOCK TABLE gateway_logins IN SHARE ROW EXCLUSIVE MODE")
            await db.execute(
                "DELETE FROM gateway_logins WHERE platform = ? AND at <= ?",
                (self.platform, cutoff),
            )
            times = await self._times(db, cutoff)
            if len(times) >= limit:
                return Logins(len(times), False, times)
            await db.execute(
                "INSERT INTO gateway_logins (platform, at) VALUES (?, ?)", (self.platform, stamp)
            )
        return Logins(len(times) + 1, True, (*times, stamp))

    async def recent(self, now: datetime) -> Logins:
        """The logins of the day before `now`, counting none."""
        times = await self._times(self._db, (now - WINDOW).timestamp())
        return Logins(len(times), False, times)

    async def _times(self, db: Database, cutoff: float) -> tuple[float, ...]:
        rows = await db.fetchall(
            "SELECT at FROM gateway_logins WHERE platform = ? AND at > ? ORDER BY at, id",
            (self.platform, cutoff),
        )
        return tuple(float(r[0]) for r in rows)
