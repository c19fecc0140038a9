"""The audit log of organisers' actions, each entry chained to the one before by a hash.

An entry's hash is sha256 over the previous entry's hash and a canonical encoding of the
entry (sequence number, time, action, association, details, and a digest of the actor).
The digest is sha256 over a random per-entry salt and the actor's reference; the raw
reference and the salt sit in columns of their own, outside the hash. Erasing a person
clears both: the entry stays in the chain, still verifiable, but nothing ties it to
them any longer (without the salt the digest cannot be tried against known ids).

What a chain cannot show is the loss of its newest entries, or of its oldest ones
(which the purge removes when their lifetime ends): verification starts from the
oldest entry kept, trusting the hash it points back to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bot.core.refs import UserRef
from bot.lifetimes import Lifetime
from bot.storage.database import Database
from bot.storage.migrations import Migrations

log = logging.getLogger(__name__)

GENESIS: Final = "0" * 64
audit_migrations = Migrations("audit")


@audit_migrations.step(1)
async def _initial(db: Database) -> None:
    await db.execute(
        "CREATE TABLE audit_log ("
        " seq INTEGER PRIMARY KEY,"
        " at REAL NOT NULL,"
        " action TEXT NOT NULL,"
        " association TEXT NOT NULL,"
        " detail TEXT NOT NULL,"
        " actor_digest TEXT NOT NULL,"
        " actor TEXT,"
        " actor_salt TEXT,"
        " prev TEXT NOT NULL,"
        " hash TEXT NOT NULL)"
    )
    await db.execute("CREATE INDEX audit_log_actor ON audit_log (actor)")
    await db.execute("CREATE INDEX audit_log_at ON audit_log (at)")


audit_migrations.keep(
    Lifetime(
        "audit_log",
        "organisers' actions: who (erasable), when, what, where",
        timedelta(days=730),
        "at",
    )
)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: datetime
    action: str
    association: str
    detail: dict[str, Any]
    actor: str | None  # None once erased (or for the bot's own actions)


@dataclass(frozen=True, slots=True)
class Broken:
    seq: int
    reason: str


def actor_digest(actor: str | None, salt: str | None) -> str:
    if actor is None or salt is None:
        return ""
    return hashlib.sha256(f"{salt}\0{actor}".encode()).hexdigest()


def canonical(
    seq: int, at: float, action: str, association: str, detail: str, digest: str
) -> bytes:
    body = [seq, repr(float(at)), action, association, json.loads(detail), digest]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev: str, entry: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev) + entry).hexdigest()


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        actor: UserRef | None,
        action: str,
        association: str,
        detail: Mapping[str, Any] | None,
        now: datetime,
    ) -> None:
        """Add one entry after the newest (inside the caller's transaction, if any)."""
        if self._db.in_transaction():
            await self._append(actor, action, association, detail, now)
        else:
            async with self._db.transaction():
                await self._append(actor, action, association, detail, now)
        log.debug("audit: %s in %s", action, association or "-")

    async def _append(
        self,
        actor: UserRef | None,
        action: str,
        association: str,
        detail: Mapping[str, Any] | None,
        now: datetime,
    ) -> None:
        row = await self._db.fetchone("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        seq, prev = (int(row[0]) + 1, str(row[1])) if row is not None else (1, GENESIS)
        who = str(actor) if actor is not None else None
        salt = secrets.token_hex(16) if who is not None else None
        digest = actor_digest(who, salt)
        text = json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"))
        at = now.timestamp()
        entry_hash = chain_hash(prev, canonical(seq, at, action, association, text, digest))
        await self._db.execute(
            "INSERT INTO audit_log (seq, at, action, association, detail, actor_digest,"
            " actor, actor_salt, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, action, association, text, digest, who, salt, prev, entry_hash),
        )

    async def entries(
        self,
        *,
        since: datetime | None = None,
        associations: Sequence[str] | None = None,
        actors: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """Newest first."""
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("at >= ?")
            params.append(since.timestamp())
        if associations is not None:
            where.append(f"association IN ({', '.join('?' * len(associations))})")
            params.extend(associations)
        if actors is not None:
            where.append(f"actor IN ({', '.join('?' * len(actors))})")
            params.extend(actors)
        sql = "SELECT seq, at, action, association, detail, actor FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = await self._db.fetchall(sql, params)
        return [
            Entry(
                int(r[0]),
                datetime.fromtimestamp(float(r[1]), UTC),
                str(r[2]),
                str(r[3]),
                json.loads(r[4]),
                str(r[5]) if r[5] is not None else None,
            )
            for r in rows
        ]

    async def pseudonymise(self, actors: Sequence[str]) -> int:
        """Untie every entry of these actors from them; the chain stays verifiable."""
        if not actors:
            return 0
        marks = ", ".join("?" * len(actors))
        return await self._db.execute(
            f"UPDATE audit_log SET actor = NULL, actor_salt = NULL WHERE actor IN ({marks})",
            list(actors),
        )

    async def verify(self) -> tuple[int, Broken | None]:
        """Check every link of the chain: how many entries were checked, and the first
        broken one (None if the chain holds)."""
        rows = await self._db.fetchall(
            "SELECT seq, at, action, association, detail, actor_digest, actor, actor_salt,"
            " prev, hash FROM audit_log ORDER BY seq"
        )
        expected_prev: str | None = None  # the oldest kept entry is trusted for its prev
        last_seq: int | None = None
        for n, r in enumerate(rows, 1):
            seq, prev, stored = int(r[0]), str(r[8]), str(r[9])
            if last_seq is not None and seq != last_seq + 1:
                return n, Broken(seq, f"entry {last_seq + 1} is missing")
            if expected_prev is not None and prev != expected_prev:
                return n, Broken(seq, "does not point at the entry before it")
            try:
                body = canonical(seq, float(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]))
            except (ValueError, TypeError):
                return n, Broken(seq, "cannot be read")
            if chain_hash(prev, body) != stored:
                return n, Broken(seq, "its content does not match its hash")
            if r[6] is not None and actor_digest(str(r[6]), r[7]) != str(r[5]):
                return n, Broken(seq, "its actor does not match the actor's digest")
            expected_prev, last_seq = stored, seq
        return len(rows), None
