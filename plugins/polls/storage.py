"""The polls' tables. Stored is the least a tally needs, for as long as it needs it.

- `polls_polls`: the poll, its rooms and state; after the close, the folded tally only.
- `polls_votes`: an open poll's current vote per person (deleted at the close).
- `polls_seen`: what each native post last reported per person, so that a platform's
  voter list read after downtime tells a change there from an older vote (deleted at
  the close).
- `polls_ballots`: a secret poll's ballots while it runs, keyed by an HMAC of the person
  under the poll's own random key (deleted, with the key, at the close).
- `polls_receipts`: a secret poll's receipt hashes and what each ballot chose; nothing
  ties them to a person, and at the close they are rewritten in random order so that
  not even their order remains.

Times are seconds since the epoch (REAL), lists JSON or comma-joined text: portable SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.core.refs import RoomRef
from bot.storage.database import Database
from plugins.polls.model import CLOSED, CLOSING, OPEN, PollRecord
from plugins.polls.tally import Tally

_COLUMNS = (
    "id, question, answers, max_selections, secret, creator, created_at, closes_at,"
    " closed_at, state, associations, rooms"
)


def _when(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def _row(r: Sequence[Any]) -> PollRecord:
    return PollRecord(
        id=int(r[0]),
        question=str(r[1]),
        answers=tuple(str(a) for a in json.loads(r[2])),
        max_selections=int(r[3]),
        secret=bool(r[4]),
        creator=str(r[5]) if r[5] is not None else None,
        created_at=_when(r[6]),
        closes_at=_when(r[7]),
        closed_at=_when(r[8]) if r[8] is not None else None,
        state=str(r[9]),
        associations=tuple(a for a in str(r[10]).split(",") if a),
        rooms=tuple(RoomRef.parse(x) for x in json.loads(r[11])),
    )


def voter_hmac(key: bytes, person: str) -> str:
    """Who cast a secret ballot, as only the poll's key can tell (and only while the key
    exists): HMAC-SHA256 of the person's name."""
    return hmac.new(key, person.encode(), hashlib.sha256).hexdigest()


def join(answers: Sequence[str]) -> str:
    return ",".join(answers)


def split(raw: Any) -> tuple[str, ...]:
    return tuple(a for a in str(raw).split(",") if a)


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- polls ----------------------------------------------------------------------

    async def create(
        self,
        *,
        question: str,
        answers: Sequence[str],
        max_selections: int,
        secret: bool,
        creator: str,
        now: datetime,
        closes_at: datetime,
        associations: Sequence[str],
        rooms: Sequence[RoomRef],
    ) -> int:
        poll_id = await self.db.insert(
            "INSERT INTO polls_polls (question, answers, max_selections, secret, creator,"
            " created_at, closes_at, state, associations, rooms, ballot_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                question,
                json.dumps(list(answers), ensure_ascii=False),
                max_selections,
                int(secret),
                creator,
                now.timestamp(),
                closes_at.timestamp(),
                OPEN,
                ",".join(associations),
                json.dumps([str(r) for r in rooms]),
                secrets.token_hex(32) if secret else None,
            ),
        )
        assert poll_id is not None
        return poll_id

    async def get(self, poll_id: int) -> PollRecord | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM polls_polls WHERE id = ?", (poll_id,))
        return _row(row) if row is not None else None

    async def in_states(self, *states: str) -> list[PollRecord]:
        marks = ", ".join("?" for _ in states)
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM polls_polls WHERE state IN ({marks}) ORDER BY id", states
        )
        return [_row(r) for r in rows]

    async def begin_close(self, poll_id: int, at: datetime) -> bool:
        """Mark an open poll as ended at `at`; False if it was not open."""
        changed = await self.db.execute(
            "UPDATE polls_polls SET state = ?, closed_at = ? WHERE id = ? AND state = ?",
            (CLOSING, at.timestamp(), poll_id, OPEN),
        )
        return changed > 0

    async def finish_close(self, poll_id: int, tally: Tally) -> bool:
        """Keep only the folded tally: the ballot key and the creator go, and so does
        every vote. False if the poll was not waiting to be counted."""
        changed = await self.db.execute(
            "UPDATE polls_polls SET state = ?, tally = ?, ballot_key = NULL, creator = NULL"
            " WHERE id = ? AND state = ?",
            (CLOSED, tally.to_json(), poll_id, CLOSING),
        )
        if not changed:
            return False
        for table in ("polls_votes", "polls_seen", "polls_ballots"):
            await self.db.execute(f"DELETE FROM {table} WHERE poll_id = ?", (poll_id,))
        return True

    async def tally_of(self, poll_id: int) -> Tally | None:
        raw = await self.db.fetchval("SELECT tally FROM polls_polls WHERE id = ?", (poll_id,))
        return Tally.from_json(str(raw)) if raw is not None else None

    # -- open votes -----------------------------------------------------------------

    async def vote_of(self, poll_id: int, person: str) -> tuple[tuple[str, ...], str, float] | None:
        row = await self.db.fetchone(
            "SELECT answers, source, cast_at FROM polls_votes WHERE poll_id = ? AND person = ?",
            (poll_id, person),
        )
        return (split(row[0]), str(row[1]), float(row[2])) if row is not None else None

    async def put_vote(
        self,
        poll_id: int,
        person: str,
        association: str,
        answers: Sequence[str],
        source: str,
        at: datetime,
    ) -> None:
        await self.db.execute(
            "INSERT INTO polls_votes (poll_id, person, association, answers, source, cast_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (poll_id, person) DO UPDATE SET"
            " association = excluded.association, answers = excluded.answers,"
            " source = excluded.source, cast_at = excluded.cast_at",
            (poll_id, person, association, join(answers), source, at.timestamp()),
        )

    async def delete_vote(self, poll_id: int, person: str) -> bool:
        changed = await self.db.execute(
            "DELETE FROM polls_votes WHERE poll_id = ? AND person = ?", (poll_id, person)
        )
        return changed > 0

    async def seen(self, poll_id: int, room: RoomRef) -> dict[str, tuple[str, ...]]:
        rows = await self.db.fetchall(
            "SELECT person, answers FROM polls_seen WHERE poll_id = ? AND room = ?",
            (poll_id, str(room)),
        )
        return {str(p): split(a) for p, a in rows}

    async def set_seen(
        self, poll_id: int, room: RoomRef, person: str, answers: Sequence[str]
    ) -> None:
        if not answers:
            await self.db.execute(
                "DELETE FROM polls_seen WHERE poll_id = ? AND room = ? AND person = ?",
                (poll_id, str(room), person),
            )
            return
        await self.db.execute(
            "INSERT INTO polls_seen (poll_id, room, person, answers) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (poll_id, room, person) DO UPDATE SET answers = excluded.answers",
            (poll_id, str(room), person, join(answers)),
        )

    # -- secret ballots ---------------------------------------------------------------

    async def ballot_key(self, poll_id: int) -> bytes | None:
        raw = await self.db.fetchval("SELECT ballot_key FROM polls_polls WHERE id = ?", (poll_id,))
        return bytes.fromhex(str(raw)) if raw is not None else None

    async def ballot(self, poll_id: int, voter: str) -> tuple[tuple[str, ...], str] | None:
        """A ballot's answers and receipt hash."""
        row = await self.db.fetchone(
            "SELECT answers, receipt FROM polls_ballots WHERE poll_id = ? AND voter = ?",
            (poll_id, voter),
        )
        return (split(row[0]), str(row[1])) if row is not None else None

    async def put_ballot(
        self,
        poll_id: int,
        voter: str,
        association: str,
        answers: Sequence[str],
        receipt: str,
        replaced: str | None,
    ) -> None:
        if replaced is not None:
            await self.db.execute(
                "DELETE FROM polls_receipts WHERE poll_id = ? AND receipt = ?", (poll_id, replaced)
            )
        # `seq` orders a poll's ballots, so that when two accounts become one person the
        # later ballot is kept; it goes with the ballots at the close.
        seq = await self.db.fetchval(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM polls_ballots WHERE poll_id = ?", (poll_id,)
        )
        await self.db.execute(
            "INSERT INTO polls_ballots (poll_id, voter, association, answers, receipt, seq)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (poll_id, voter) DO UPDATE SET"
            " association = excluded.association, answers = excluded.answers,"
            " receipt = excluded.receipt, seq = excluded.seq",
            (poll_id, voter, association, join(answers), receipt, int(seq)),
        )
        await self.db.execute(
            "INSERT INTO polls_receipts (poll_id, receipt, answers) VALUES (?, ?, ?)",
            (poll_id, receipt, join(answers)),
        )

    async def delete_ballot(self, poll_id: int, voter: str, receipt: str) -> None:
        await self.db.execute(
            "DELETE FROM polls_receipts WHERE poll_id = ? AND receipt = ?", (poll_id, receipt)
        )
        await self.db.execute(
            "DELETE FROM polls_ballots WHERE poll_id = ? AND voter = ?", (poll_id, voter)
        )

    async def receipt(self, poll_id: int, receipt: str) -> tuple[str, ...] | None:
        raw = await self.db.fetchval(
            "SELECT answers FROM polls_receipts WHERE poll_id = ? AND receipt = ?",
            (poll_id, receipt),
        )
        return split(raw) if raw is not None else None

    async def shuffle_receipts(self, poll_id: int) -> None:
        """Rewrite the receipts in random order: the order they were cast in could be
        matched against other traces of the voters (answers sent, events seen)."""
        rows = await self.db.fetchall(
            "SELECT receipt, answers FROM polls_receipts WHERE poll_id = ?", (poll_id,)
        )
        shuffled = list(rows)
        secrets.SystemRandom().shuffle(shuffled)
        await self.db.execute("DELETE FROM polls_receipts WHERE poll_id = ?", (poll_id,))
        await self.db.executemany(
            "INSERT INTO polls_receipts (poll_id, receipt, answers) VALUES (?, ?, ?)",
            [(poll_id, r, a) for r, a in shuffled],
        )

    # -- people merged or split (People.on_rename) -------------------------------------

    async def rename_votes(self, poll_id: int, olds: Sequence[str], new: str) -> bool:
        """The votes of `olds` become one vote of `new`: the latest counts."""
        names = [*olds, new]
        marks = ", ".join("?" for _ in names)
        rows = await self.db.fetchall(
            "SELECT association, answers, source, cast_at FROM polls_votes"
            f" WHERE poll_id = ? AND person IN ({marks})",
            (poll_id, *names),
        )
        seen = await self.db.fetchall(
            f"SELECT room, answers FROM polls_seen WHERE poll_id = ? AND person IN ({marks})",
            (poll_id, *names),
        )
        if not rows and not seen:
            return False
        for table in ("polls_votes", "polls_seen"):
            await self.db.execute(
                f"DELETE FROM {table} WHERE poll_id = ? AND person IN ({marks})",
                (poll_id, *names),
            )
        if rows:
            association, answers, source, cast_at = max(rows, key=lambda r: float(r[3]))
            await self.put_vote(
                poll_id, new, str(association), split(answers), str(source), _when(cast_at)
            )
        for room, answers in {str(r): a for r, a in seen}.items():
            await self.set_seen(poll_id, RoomRef.parse(room), new, split(answers))
        return bool(rows)

    async def rename_ballots(self, poll_id: int, olds: Sequence[str], new: str) -> bool:
        """As `rename_votes` for a secret poll: the later ballot stays (its receipt with
        it), the earlier one goes, receipt and all."""
        key = await self.ballot_key(poll_id)
        if key is None:
            return False
        target = voter_hmac(key, new)
        voters = [voter_hmac(key, name) for name in olds] + [target]
        marks = ", ".join("?" for _ in voters)
        rows = await self.db.fetchall(
            "SELECT voter, association, answers, receipt, seq FROM polls_ballots"
            f" WHERE poll_id = ? AND voter IN ({marks})",
            (poll_id, *voters),
        )
        if not rows:
            return False
        latest = max(rows, key=lambda r: int(r[4]))
        for row in rows:
            if row is not latest:
                await self.delete_ballot(poll_id, str(row[0]), str(row[3]))
        await self.db.execute(
            "UPDATE polls_ballots SET voter = ? WHERE poll_id = ? AND voter = ?",
            (target, poll_id, str(latest[0])),
        )
        return True

    # -- counting -------------------------------------------------------------------

    async def ballots(self, poll: PollRecord) -> list[tuple[str, tuple[str, ...]]]:
        """Every current `(association, answers)`, one per voter."""
        table = "polls_ballots" if poll.secret else "polls_votes"
        rows = await self.db.fetchall(
            f"SELECT association, answers FROM {table} WHERE poll_id = ?", (poll.id,)
        )
        return [(str(a), split(x)) for a, x in rows]

    async def voters_per_association(self, poll: PollRecord) -> dict[str, int]:
        table = "polls_ballots" if poll.secret else "polls_votes"
        rows = await self.db.fetchall(
            f"SELECT association, COUNT(*) FROM {table} WHERE poll_id = ? GROUP BY association",
            (poll.id,),
        )
        return {str(a): int(n) for a, n in rows}
