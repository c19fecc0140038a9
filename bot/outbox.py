"""The outbox table: every automated post, by delivery key, and what became of it.

`Delivery` decides when and in which order posts go; this module is what it records and
looks up. Message text (`payload`) is kept only until the post is finished.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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

_FINISH: Final = (
    "UPDATE outbox SET status = ?, message_id = ?, last_error = ?, payload = NULL,"
    " done_at = ? WHERE id = ? AND claimed_by = ?"
)
_ROW_COLUMNS: Final = (
    "id, key, action, room, target, payload, attempts, next_attempt, created_at,"
    " claimed_by, claimed_until"
)


@dataclass(frozen=True, slots=True)
class Row:
    """An outbox row as the lanes handle it. `claimed_by` is the instance that may send
    it, until `claimed_until` (the lease; see `Outbox.claim`)."""

    id: int
    key: str
    action: str
    room: str
    target: str | None
    payload: str | None
    attempts: int
    next_attempt: float
    created_at: float
    claimed_by: str | None
    claimed_until: float | None
    # The message `payload` holds, as it was queued by this process (not read back):
    # the lane need not decode what it was just given.
    message: OutgoingMessage | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, raw: tuple[Any, ...]) -> Row:
        return cls(*raw)


def _chunks(values: Sequence[str], size: int = 400) -> list[Sequence[str]]:
    """Lists short enough for one `IN (...)` (SQLite allows 999 parameters at least)."""
    return [values[i : i + size] for i in range(0, len(values), size)]


@dataclass(frozen=True, slots=True)
class Entry:
    """One post to queue in a batch (`Outbox.insert_many`): `target` encoded."""

    key: str
    lane: str
    action: str
    room: RoomRef
    target: str | None
    payload: str | None


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
    """The outbox as one instance (`instance`, a random id per `Delivery`) sees it.

    A row is sent only by the instance that holds its claim: a row is inserted claimed
    by its writer, and a row read back from the database (left by an earlier process,
    or written by another process on the same database by mistake) is claimed with one
    conditional UPDATE first. Finishing or rescheduling a row acts only on a claim this
    instance holds, so a row is never sent twice by two instances at once.
    """

    def __init__(self, db: Database, instance: str) -> None:
        self._db = db
        self.instance = instance

    async def _caught_up(self) -> None:
        # Outcomes are written behind the lanes (`settle`); whatever reads what they
        # change writes them first, so this process never reads a post of its own as
        # pending. Another process may be a few milliseconds behind.
        if self._db.behind.busy:
            await self._db.behind.flush()

    async def flush(self) -> None:
        """Write the outcomes not written yet (a stop; a test that reads the table)."""
        await self._db.behind.flush()

    async def insert(
        self,
        key: str,
        lane: str,
        action: str,
        room: RoomRef,
        target: Target | None,
        payload: str | None,
        now: float,
        claimed_until: float,
        message: OutgoingMessage | None = None,
    ) -> Row | None:
        """Record a new post, claimed by this instance; None if the key is known.
        `message`: what `payload` encodes, kept with the returned row."""
        values = (key, lane, action, str(room), target.encode() if target else None, payload)
        rowid = await self._db.insert(
            "INSERT INTO outbox (key, lane, action, room, target, payload, status, attempts,"
            " next_attempt, created_at, claimed_by, claimed_until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING",
            (*values, PENDING, now, now, self.instance, claimed_until),
        )
        if rowid is None:
            return None
        return Row(
            rowid,
            key,
            action,
            str(room),
            values[4],
            payload,
            0,
            now,
            now,
            self.instance,
            claimed_until,
            message,
        )

    async def insert_many(
        self, items: Sequence[Entry], now: float, claimed_until: float
    ) -> list[Row]:
        """Record new posts in a few statements, claimed by this instance; returns the
        rows of the keys that were new, in the order given. For a caller inside a
        transaction: no other writer may insert between the statements."""
        known: set[str] = set()
        keys = [item.key for item in items]
        for part in _chunks(keys):
            marks = ", ".join("?" * len(part))
            rows = await self._db.fetchall(f"SELECT key FROM outbox WHERE key IN ({marks})", part)
            known.update(str(r[0]) for r in rows)
        fresh: list[Entry] = []
        for item in items:
            if item.key not in known:
                known.add(item.key)  # a key given twice is queued once
                fresh.append(item)
        await self._db.executemany(
            "INSERT INTO outbox (key, lane, action, room, target, payload, status, attempts,"
            " next_attempt, created_at, claimed_by, claimed_until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            [
                (
                    e.key,
                    e.lane,
                    e.action,
                    str(e.room),
                    e.target,
                    e.payload,
                    PENDING,
                    now,
                    now,
                    self.instance,
                    claimed_until,
                )
                for e in fresh
            ],
        )
        ids: dict[str, int] = {}
        for part in _chunks([item.key for item in fresh]):
            marks = ", ".join("?" * len(part))
            rows = await self._db.fetchall(
                f"SELECT key, id FROM outbox WHERE key IN ({marks}) AND claimed_by = ?",
                (*part, self.instance),
            )
            ids.update((str(k), int(i)) for k, i in rows)
        return [
            Row(
                ids[e.key],
                e.key,
                e.action,
                str(e.room),
                e.target,
                e.payload,
                0,
                now,
                now,
                self.instance,
                claimed_until,
            )
            for e in fresh
            if e.key in ids
        ]

    async def oldest(self, lane: str) -> Row | None:
        await self._caught_up()
        raw = await self._db.fetchone(
            f"SELECT {_ROW_COLUMNS} FROM outbox WHERE lane = ? AND status = ? ORDER BY id LIMIT 1",
            (lane, PENDING),
        )
        return Row.of(raw) if raw is not None else None

    async def claim(self, rowid: int, now: float, until: float) -> bool:
        """Claim a pending row for this instance until `until`, or renew our claim; False
        if it is no longer pending or another instance holds an unexpired claim."""
        await self._caught_up()
        changed = await self._db.execute(
            "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ? AND status = ?"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until < ?)",
            (self.instance, until, rowid, PENDING, self.instance, now),
        )
        return changed > 0

    async def release_own(self) -> int:
        """Give up this instance's claims on pending rows (a clean stop): the next
        process takes them at once."""
        await self._caught_up()
        return await self._db.execute(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
            " WHERE status = ? AND claimed_by = ?",
            (PENDING, self.instance),
        )

    async def release_others(self) -> int:
        """Drop every other instance's claim on pending rows. Only for a process that
        holds the instance lock: it knows those instances are gone."""
        await self._caught_up()
        return await self._db.execute(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
            " WHERE status = ? AND claimed_by IS NOT NULL AND claimed_by <> ?",
            (PENDING, self.instance),
        )

    async def pending_lanes(self) -> list[str]:
        await self._caught_up()
        rows = await self._db.fetchall(
            "SELECT DISTINCT lane FROM outbox WHERE status = ?", (PENDING,)
        )
        return [str(lane) for (lane,) in rows]

    async def foreign_lanes(self, now: float) -> list[str]:
        """Lanes with pending rows that another writer queued (the operator's CLI, an
        earlier process) and whose claim has run out: this instance may take them."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT lane FROM outbox WHERE status = ?"
            " AND (claimed_by IS NULL OR claimed_by <> ?)"
            " AND (claimed_until IS NULL OR claimed_until <= ?)",
            (PENDING, self.instance, now),
        )
        return [str(lane) for (lane,) in rows]

    async def record_retry(
        self, rowid: int, attempts: int, next_attempt: float, error: str
    ) -> bool:
        """Record a failed attempt; False if this instance no longer holds the row."""
        changed = await self._db.execute(
            "UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ?"
            " WHERE id = ? AND claimed_by = ?",
            (attempts, next_attempt, error, rowid, self.instance),
        )
        return changed > 0

    async def finish(
        self, rowid: int, status: str, message_id: str | None, error: str | None, now: float
    ) -> bool:
        """Record the outcome now; False if this instance no longer holds the row."""
        await self._caught_up()
        changed = await self._db.execute(
            _FINISH, (status, message_id, error, now, rowid, self.instance)
        )
        return changed > 0

    def settle(
        self,
        rowid: int,
        status: str,
        message_id: str | None,
        error: str | None,
        now: float,
        lost: Callable[[], None],
    ) -> None:
        """Record the outcome soon (`bot.storage.write_behind`): the lane need not wait.
        Lost with the process, the row is attempted again by the next one with the same
        token, which the platforms drop as a repeat. `lost` is called if this instance
        no longer held the row when the outcome was written."""

        def written(count: int) -> None:
            if count == 0:
                lost()

        params = (status, message_id, error, now, rowid, self.instance)
        self._db.behind.add([(_FINISH, params)], written)

    # -- looking up ------------------------------------------------------------------

    async def status(self, key: str) -> str | None:
        await self._caught_up()
        value = await self._db.fetchval("SELECT status FROM outbox WHERE key = ?", (key,))
        return str(value) if value is not None else None

    async def statuses(self, keys: Sequence[str]) -> dict[str, str]:
        """`status` of many keys, a few hundred per statement; unknown keys left out."""
        await self._caught_up()
        found: dict[str, str] = {}
        for part in _chunks(keys):
            marks = ", ".join("?" * len(part))
            rows = await self._db.fetchall(
                f"SELECT key, status FROM outbox WHERE key IN ({marks})", part
            )
            found.update((str(k), str(v)) for k, v in rows)
        return found

    async def message_ref(self, key: str) -> MessageRef | None:
        await self._caught_up()
        row = await self._db.fetchone(
            "SELECT room, message_id FROM outbox WHERE key = ? AND status = ?", (key, SENT)
        )
        if row is None or row[1] is None:
            return None
        return MessageRef(RoomRef.parse(row[0]), str(row[1]))

    async def key_for(self, ref: MessageRef) -> str | None:
        await self._caught_up()
        value = await self._db.fetchval(
            "SELECT key FROM outbox WHERE room = ? AND message_id = ?", (str(ref.room), ref.id)
        )
        return str(value) if value is not None else None

    async def health(self) -> list[LaneHealth]:
        await self._caught_up()
        rows = await self._db.fetchall(
            "SELECT lane, COUNT(*), MAX(last_error) FROM outbox WHERE status = ? GROUP BY lane",
            (PENDING,),
        )
        return [LaneHealth(str(r[0]), int(r[1]), r[2]) for r in rows]

    async def pending_by_room(self) -> list[tuple[str, int, float]]:
        """(room, rows pending, the oldest one's creation time) for every room."""
        await self._caught_up()
        rows = await self._db.fetchall(
            "SELECT room, COUNT(*), MIN(created_at) FROM outbox WHERE status = ? GROUP BY room",
            (PENDING,),
        )
        return [(str(r[0]), int(r[1]), float(r[2])) for r in rows]

    async def purge(self, before: datetime) -> int:
        await self._caught_up()
        return await self._db.execute(
            "DELETE FROM outbox WHERE status <> ? AND done_at < ?", (PENDING, before.timestamp())
        )

    async def resolve(self, target: Target) -> MessageRef:
        """The message `target` names; transient while the post it names is pending."""
        if target.ref is not None:
            return target.ref
        await self._caught_up()
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
