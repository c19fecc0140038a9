"""Traces a secret poll leaves outside its own tables, and wiping them.

The answers the bot sent to voters sit in the outbox (the room of each, and a direct
message is a person); deleted bytes sit in SQLite's free space and in the write-ahead
log. Delivery has no call to forget rows by key yet: the statement here is the one its
`purge` makes, by key instead of by age, and never touches a post still pending.
"""

from __future__ import annotations

import logging

from bot.storage.database import Database, like_prefix

log = logging.getLogger(__name__)


class Traces:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def forget_deliveries(self, prefix: str) -> int:
        """Drop finished outbox rows whose key starts with `prefix`."""
        return await self.db.execute(
            "DELETE FROM outbox WHERE key LIKE ? ESCAPE '\\' AND status <> ?",
            (like_prefix(prefix), "pending"),
        )

    async def pending_deliveries(self, prefix: str) -> int:
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM outbox WHERE key LIKE ? ESCAPE '\\' AND status = ?",
            (like_prefix(prefix), "pending"),
        )
        return int(value or 0)

    async def secure_delete(self) -> None:
        """Have SQLite overwrite deleted content with zeros, so that a destroyed ballot
        key or HMAC does not stay in the file's free space. A setting of the (one)
        connection: it also covers what other features delete."""
        if self.db.engine != "sqlite":
            # PostgreSQL has no such setting: what a deleted row held stays in its dead
            # tuples until VACUUM reuses the space (see `checkpoint`), and in the WAL
            # segments the server's operator keeps (docs/storage.md).
            return
        try:
            await self.db.execute("PRAGMA secure_delete=ON")
        except Exception:
            log.warning("could not turn on secure_delete", exc_info=True)

    async def checkpoint(self) -> bool:
        """Copy the write-ahead log into the database file and truncate it: deleted
        ballots must not live on in old WAL frames. False if it could not complete.
        On PostgreSQL: VACUUM the outbox, so that the forgotten answers' dead tuples
        are pruned (the server's own WAL is its operator's)."""
        if self.db.engine != "sqlite":
            try:
                await self.db.execute("VACUUM outbox")
            except Exception:
                log.warning("could not vacuum the outbox", exc_info=True)
                return False
            return True
        try:
            row = await self.db.fetchone("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:
            log.warning("could not checkpoint the database's write-ahead log", exc_info=True)
            return False
        if row is not None and row[0]:
            log.warning("the write-ahead log checkpoint was blocked by a reader")
            return False
        return True
