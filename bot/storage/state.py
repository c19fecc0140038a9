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
        # Values given to `set_soon` and not written yet, each with its turn: a read of
        # one of them is answered from here, so that a read of one key waits for no
        # other write (a webhook post reads its record while the previous post's
        # outcome is still queued).
        self._soon: dict[str, tuple[int, str]] = {}
        self._turn = 0

    async def _caught_up(self) -> None:
        # Whatever reads several keys, or deletes, goes after every queued value.
        if self._soon:
            await self._db.behind.flush()

    async def _caught_up_on(self, key: str) -> None:
        # A write of `key` goes after its queued value, or that would overwrite it.
        if key in self._soon:
            await self._db.behind.flush()

    async def get(self, key: str) -> str | None:
        queued = self._soon.get(key)
        if queued is not None:
            return queued[1]
        value = await self._db.fetchval(
            "SELECT value FROM adapter_state WHERE platform = ? AND key = ?", (self.platform, key)
        )
        return str(value) if value is not None else None

    async def set(self, key: str, value: str) -> None:
        await self._caught_up_on(key)
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
        # `inbound_seen` is never written behind.
        row = await self._db.fetchone(
            "SELECT 1 FROM inbound_seen WHERE platform = ? AND event_id = ?",
            (self.platform, event_id),
        )
        return row is not None

    async def mark_seen(self, event_id: str, now: datetime) -> bool:
        """Record `event_id`; False if it was already recorded (a repeat)."""
        changed = await self._db.execute(_MARK_SEEN, (self.platform, event_id, now.timestamp()))
        return changed > 0

    async def mark_handled(self, event_id: str, now: datetime, key: str, value: str) -> None:
        """Record `event_id` as seen and set `key` to `value`, together (one commit)."""
        await self._caught_up_on(key)
        await self._db.execute_all(
            [
                (_MARK_SEEN, (self.platform, event_id, now.timestamp())),
                (_SET, (self.platform, key, value)),
            ]
        )

    def set_soon(self, key: str, value: str) -> None:
        """`set`, written behind the caller (`bot.storage.write_behind`): for a value
        whose loss makes the next process do again what doubles nothing. This
        instance's `get` answers it at once; another reader (another process) may see
        it `DELAY` later."""
        self._turn += 1
        turn = self._turn
        self._soon[key] = (turn, value)

        def written(_count: int) -> None:
            if self._soon.get(key, (0, ""))[0] == turn:  # not queued again since
                del self._soon[key]

        self._db.behind.add([(_SET, (self.platform, key, value))], written)

    async def forget_before(self, cutoff: datetime) -> int:
        return await self._db.execute(
            "DELETE FROM inbound_seen WHERE platform = ? AND seen_at < ?",
            (self.platform, cutoff.timestamp()),
        )

    @staticmethod
    def retention() -> timedelta:
        return timedelta(days=7)
