"""Adapter state and inbound repeats, for adapters that persist their position."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.storage.database import Database, like_prefix

_SET = (
    "INSERT INTO adapter_state (platform, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value"
)
_MARK_SEEN = (
    "INSERT INTO inbound_seen (platform, event_id, seen_at) VALUES (?, ?, ?) "
    "ON CONFLICT (platform, event_id) DO NOTHING"
)


class AdapterState:
    """Key-value state of one adapter, and the ids of events it already handled."""

    def __init__(self, db: Database, platform: str) -> None:
        self._db = db
        self.platform = platform

    async def _caught_up(self) -> None:
        # Positions may be written behind (`set_soon`): whatever reads or writes what
        # they change goes after them.
        if self._db.behind.busy:
            await self._db.behind.flush()

    async def get(self, key: str) -> str | None:
        await self._caught_up()
        value = await self._db.fetchval(
            "SELECT value FROM adapter_state WHERE platform = ? AND key = ?", (self.platform, key)
        )
        return str(value) if value is not None else None

    async def set(self, key: str, value: str) -> None:
        await self._caught_up()
        await self._db.execute(_SET, (self.platform, key, value))

    async def with_prefix(self, prefix: str) -> dict[str, str]:
        """Every key that starts with `prefix`, with its value."""
        await self._caught_up()
        rows = await self._db.fetchall(
            "SELECT key, value FROM adapter_state WHERE platform = ? AND key LIKE ? ESCAPE '\\'",
            (self.platform, like_prefix(prefix)),
        )
        return {str(k): str(v) for k, v in rows}

    async def delete(self, keys: list[str]) -> None:
        await self._caught_up()
        await self._db.executemany(
            "DELETE FROM adapter_state WHERE platform = ? AND key = ?",
            [(self.platform, k) for k in keys],
        )

    async def delete_prefix(self, prefix: str) -> int:
        """Forget every key that starts with `prefix` (state that served its purpose)."""
        await self._caught_up()
        return await self._db.execute(
            "DELETE FROM adapter_state WHERE platform = ? AND key LIKE ? ESCAPE '\\'",
            (self.platform, like_prefix(prefix)),
        )

    async def seen(self, event_id: str) -> bool:
        await self._caught_up()
        row = await self._db.fetchone(
            "SELECT 1 FROM inbound_seen WHERE platform = ? AND event_id = ?",
            (self.platform, event_id),
        )
        return row is not None

    async def mark_seen(self, event_id: str, now: datetime) -> bool:
        """Record `event_id`; False if it was already recorded (a repeat)."""
        await self._caught_up()
        changed = await self._db.execute(_MARK_SEEN, (self.platform, event_id, now.timestamp()))
        return changed > 0

    async def mark_handled(self, event_id: str, now: datetime, key: str, value: str) -> None:
        """Record `event_id` as seen and set `key` to `value`, together (one commit)."""
        await self._caught_up()
        await self._db.execute_all(
            [
                (_MARK_SEEN, (self.platform, event_id, now.timestamp())),
                (_SET, (self.platform, key, value)),
            ]
        )

    def set_soon(self, key: str, value: str) -> None:
        """`set`, written behind the caller (`bot.storage.write_behind`): for a position
        whose loss makes the next process do again what doubles nothing."""
        self._db.behind.add([(_SET, (self.platform, key, value))])

    async def forget_before(self, cutoff: datetime) -> int:
        await self._caught_up()
        return await self._db.execute(
            "DELETE FROM inbound_seen WHERE platform = ? AND seen_at < ?",
            (self.platform, cutoff.timestamp()),
        )

    @staticmethod
    def retention() -> timedelta:
        return timedelta(days=7)
