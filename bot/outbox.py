"""The outbox table: every automated post, by delivery key, and what became of it.

`Delivery` decides when and in which order posts go; this module is what it records and
looks up. Message text (`payload`) is kept only until the post is finished.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef
from bot.storage.database import Database

log = logging.getLogger(__name__)

PENDING: Final = "pending"
SENT: Final = "sent"
FAILED: Final = "failed"

# An outbox row as the lanes handle it: id, key, action, room, target, payload, attempts,
# next attempt, created at.
Row = tuple[Any, ...]
_ROW_COLUMNS: Final = "id, key, action, room, target, payload, attempts, next_attempt, created_at"


def token_for(key: str) -> str:
    """The idempotency token of a delivery key: 24 hex characters (a Discord nonce
    holds 25), the same on every attempt."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Target:
    """What an edit, deletion or reaction acts on: a platform message, or the message
    that another delivery key posted (resolved when that one has been sent)."""

    ref: MessageRef | None = None
    key: str | None = None

    def encode(self) -> str:
        if self.ref is not None:
            return f"ref:{self.ref}"
        if self.key is not None:
            return f"key:{self.key}"
        raise ValueError("empty target")

    @classmethod
    def decode(cls, raw: str) -> Target:
        kind, _, value = raw.partition(":")
        return cls(ref=MessageRef.parse(value)) if kind == "ref" else cls(key=value)


@dataclass(frozen=True, slots=True)
class LaneHealth:
    lane: str
    backlog: int
    last_error: str | None


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(
        self,
        key: str,
        lane: str,
        action: str,
        room: RoomRef,
        target: Target | None,
        payload: str | None,
        now: float,
    ) -> Row | None:
        """Record a new post; None if the key is already known."""
        values = (key, lane, action, str(room), target.encode() if target else None, payload)
        rowid = await self._db.insert(
            "INSERT INTO outbox (key, lane, action, room, target, payload, status, attempts,"
            " next_attempt, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
            " ON CONFLICT (key) DO NOTHING",
            (*values, PENDING, now, now),
        )
        if rowid is None:
            return None
        return (rowid, key, action, str(room), values[4], payload, 0, now, now)

    async def oldest(self, lane: str) -> Row | None:
        return await self._db.fetchone(
            f"SELECT {_ROW_COLUMNS} FROM outbox WHERE lane = ? AND status = ? ORDER BY id LIMIT 1",
            (lane, PENDING),
        )

    async def pending_lanes(self) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT DISTINCT lane FROM outbox WHERE status = ?", (PENDING,)
        )
        return [str(lane) for (lane,) in rows]

    async def record_retry(
        self, rowid: int, attempts: int, next_attempt: float, error: str
    ) -> None:
        await self._db.execute(
            "UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE id = ?",
            (attempts, next_attempt, error, rowid),
        )

    async def finish(
        self, rowid: int, status: str, message_id: str | None, error: str | None, now: float
    ) -> None:
        await self._db.execute(
            "UPDATE outbox SET status = ?, message_id = ?, last_error = ?, payload = NULL,"
            " done_at = ? WHERE id = ?",
            (status, message_id, error, now, rowid),
        )

    # -- looking up ------------------------------------------------------------------

    async def status(self, key: str) -> str | None:
        value = await self._db.fetchval("SELECT status FROM outbox WHERE key = ?", (key,))
        return str(value) if value is not None else None

    async def message_ref(self, key: str) -> MessageRef | None:
        row = await self._db.fetchone(
            "SELECT room, message_id FROM outbox WHERE key = ? AND status = ?", (key, SENT)
        )
        if row is None or row[1] is None:
            return None
        return MessageRef(RoomRef.parse(row[0]), str(row[1]))

    async def key_for(self, ref: MessageRef) -> str | None:
        value = await self._db.fetchval(
            "SELECT key FROM outbox WHERE room = ? AND message_id = ?", (str(ref.room), ref.id)
        )
        return str(value) if value is not None else None

    async def health(self) -> list[LaneHealth]:
        rows = await self._db.fetchall(
            "SELECT lane, COUNT(*), MAX(last_error) FROM outbox WHERE status = ? GROUP BY lane",
            (PENDING,),
        )
        return [LaneHealth(str(r[0]), int(r[1]), r[2]) for r in rows]

    async def purge(self, before: datetime) -> int:
        return await self._db.execute(
            "DELETE FROM outbox WHERE status <> ? AND done_at < ?", (PENDING, before.timestamp())
        )

    async def resolve(self, target: Target) -> MessageRef:
        """The message `target` names; transient while the post it names is pending."""
        if target.ref is not None:
            return target.ref
        row = await self._db.fetchone(
            "SELECT room, message_id, status FROM outbox WHERE key = ?", (target.key,)
        )
        if row is None:
            raise PermanentSendError(f"the message of {target.key} was never queued")
        if row[2] == PENDING:
            raise TransientSendError(f"the message of {target.key} is not sent yet")
        if row[2] != SENT or row[1] is None:
            raise PermanentSendError(f"the message of {target.key} was not posted")
        return MessageRef(RoomRef.parse(row[0]), str(row[1]))

    async def with_reply(self, message: OutgoingMessage) -> OutgoingMessage:
        """Resolve `reply_to_key` and `thread_key`: wait while that post is pending; if
        it was never posted, send without the reply (or outside the thread) rather than
        not at all."""
        if message.reply_to_key is not None and message.reply_to is None:
            ref = await self._posted_or_none(message.reply_to_key, "reply target")
            message = replace(message, reply_to=ref, reply_to_key=None)
        if message.thread_key is not None and message.thread is None:
            root = await self._posted_or_none(message.thread_key, "thread root")
            message = replace(message, thread=root, thread_key=None)
        return message

    async def _posted_or_none(self, key: str, what: str) -> MessageRef | None:
        try:
            return await self.resolve(Target(key=key))
        except PermanentSendError:
            log.info("%s %s was not posted; sending without it", what, key)
            return None
