"""The calendar's tables: occurrences in the window, RSVP answers, feed state.

Stored is the least that works: what a reminder shows (title, place, a short excerpt,
the link), the answers keyed by person only (`People.person_of`: an account reference,
or the random id of linked accounts) with the time given, and each feed's
conditional-request state. Past occurrences and their answers are deleted after the
retention period.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.storage.database import Database
from bot.storage.migrations import Migrations
from plugins.calendar.model import Occurrence

migrations = Migrations("calendar")


@migrations.step(1)
async def _initial(db: Database) -> None:
    await db.execute(
        "CREATE TABLE calendar_occurrences ("
        " id INTEGER PRIMARY KEY,"
        " source TEXT NOT NULL,"
        " uid TEXT NOT NULL,"
        " occ TEXT NOT NULL,"
        " start_at REAL NOT NULL,"
        " end_at REAL NOT NULL,"
        " all_day INTEGER NOT NULL,"
        " title TEXT NOT NULL,"
        " location TEXT NOT NULL,"
        " excerpt TEXT NOT NULL,"
        " url TEXT NOT NULL,"
        " associations TEXT NOT NULL,"
        " single INTEGER NOT NULL,"
        " cancelled INTEGER NOT NULL DEFAULT 0,"
        " UNIQUE (source, uid, occ))"
    )
    await db.execute("CREATE INDEX calendar_occ_start ON calendar_occurrences (start_at)")
    await db.execute("CREATE INDEX calendar_occ_uid ON calendar_occurrences (uid, occ)")
    # One answer per person and occurrence; nothing about the person but the reference.
    await db.execute(
        "CREATE TABLE calendar_rsvp ("
        " uid TEXT NOT NULL,"
        " occ TEXT NOT NULL,"
        " user_ref TEXT NOT NULL,"
        " answer TEXT NOT NULL,"
        " PRIMARY KEY (uid, occ, user_ref))"
    )
    await db.execute(
        "CREATE TABLE calendar_feeds ("
        " id TEXT PRIMARY KEY,"
        " config TEXT NOT NULL,"
        " etag TEXT,"
        " last_modified TEXT,"
        " fingerprint TEXT,"
        " failing_since REAL,"
        " reported INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT)"
    )


@migrations.step(2)
async def _answered_at(db: Database) -> None:
    # When an answer was given: when two linked accounts had both answered, the later
    # answer is the person's.
    await db.execute("ALTER TABLE calendar_rsvp ADD COLUMN answered_at REAL")


@migrations.step(3)
async def _left_out(db: Database) -> None:
    # The events of a feed that could not be read, as last told to organisers (a digest
    # of their UIDs and reasons): told once, not at every refresh nor every restart.
    await db.execute("CREATE TABLE calendar_left_out (feed TEXT PRIMARY KEY, digest TEXT NOT NULL)")


@migrations.step(4)
async def _armed_for(db: Database) -> None:
    # What the stored reminders were armed for (offsets, zone, all-day time): a start
    # with the same settings need not arm every event again.
    await db.execute("CREATE TABLE calendar_armed (id INTEGER PRIMARY KEY, spec TEXT NOT NULL)")


_COLUMNS = (
    "id, source, uid, occ, start_at, end_at, all_day, title, location, excerpt, url,"
    " associations, single, cancelled"
)


# Occurrences named in one `IN (VALUES ...)`: three parameters each, within the 999
# that any SQLite allows.
_ROWS_PER_QUERY = 300


def _ts(when: datetime) -> float:
    return when.timestamp()


def _row(r: Sequence[Any]) -> Occurrence:
    return Occurrence(
        id=int(r[0]),
        source=str(r[1]),
        uid=str(r[2]),
        occ=str(r[3]),
        start=datetime.fromtimestamp(float(r[4]), UTC),
        end=datetime.fromtimestamp(float(r[5]), UTC),
        all_day=bool(r[6]),
        title=str(r[7]),
        location=str(r[8]),
        excerpt=str(r[9]),
        url=str(r[10]),
        associations=tuple(a for a in str(r[11]).split(",") if a),
        single=bool(r[12]),
        cancelled=bool(r[13]),
    )


def _values(o: Occurrence) -> tuple[Any, ...]:
    return (
        _ts(o.start),
        _ts(o.end),
        int(o.all_day),
        o.title,
        o.location,
        o.excerpt,
        o.url,
        ",".join(o.associations),
        int(o.single),
        int(o.cancelled),
    )


@dataclass(frozen=True, slots=True)
class FeedState:
    config: str
    etag: str | None
    last_modified: str | None
    fingerprint: str | None
    failing_since: float | None
    reported: bool
    last_error: str | None


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- occurrences --------------------------------------------------------------------

    async def load_source(self, source: str, ending_after: datetime) -> list[Occurrence]:
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM calendar_occurrences WHERE source = ? AND end_at >= ?",
            (source, _ts(ending_after)),
        )
        return [_row(r) for r in rows]

    async def sources(self) -> set[str]:
        rows = await self.db.fetchall("SELECT DISTINCT source FROM calendar_occurrences")
        return {str(r[0]) for r in rows}

    async def delete_source(self, source: str) -> int:
        await self.db.execute(
            "DELETE FROM calendar_rsvp WHERE EXISTS (SELECT 1 FROM calendar_occurrences o"
            " WHERE o.uid = calendar_rsvp.uid AND o.occ = calendar_rsvp.occ AND o.source = ?)",
            (source,),
        )
        await self.db.execute("DELETE FROM calendar_feeds WHERE id = ?", (source,))
        await self.db.execute("DELETE FROM calendar_left_out WHERE feed = ?", (source,))
        return await self.db.execute("DELETE FROM calendar_occurrences WHERE source = ?", (source,))

    async def insert(self, o: Occurrence) -> int:
        rowid = await self.db.insert(
            "INSERT INTO calendar_occurrences (source, uid, occ, start_at, end_at, all_day,"
            " title, location, excerpt, url, associations, single, cancelled)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (o.source, o.uid, o.occ, *_values(o)),
        )
        assert rowid is not None
        return rowid

    async def insert_many(self, items: Iterable[Occurrence]) -> None:
        await self.db.executemany(
            "INSERT INTO calendar_occurrences (source, uid, occ, start_at, end_at, all_day,"
            " title, location, excerpt, url, associations, single, cancelled)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(o.source, o.uid, o.occ, *_values(o)) for o in items],
        )

    async def update_many(self, items: Sequence[Occurrence]) -> None:
        """`update` of each (stored, so with its id) in one statement."""
        await self.db.executemany(
            "UPDATE calendar_occurrences SET start_at = ?, end_at = ?, all_day = ?, title = ?,"
            " location = ?, excerpt = ?, url = ?, associations = ?, single = ?, cancelled = ?"
            " WHERE id = ?",
            [(*_values(o), o.id) for o in items],
        )

    async def delete_many(self, items: Sequence[Occurrence]) -> None:
        """`delete` of each (stored, so with its id), in two statements."""
        await self.db.executemany(
            "DELETE FROM calendar_rsvp WHERE uid = ? AND occ = ?", [(o.uid, o.occ) for o in items]
        )
        await self.db.executemany(
            "DELETE FROM calendar_occurrences WHERE id = ?", [(o.id,) for o in items]
        )

    async def find_many(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], Occurrence]:
        """Occurrences by (source, uid, occ), a few hundred per statement."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str, str], Occurrence] = {}
        for i in range(0, len(wanted), _ROWS_PER_QUERY):
            part = wanted[i : i + _ROWS_PER_QUERY]
            marks = ", ".join(["(?, ?, ?)"] * len(part))
            rows = await self.db.fetchall(
                f"SELECT {_COLUMNS} FROM calendar_occurrences"
                f" WHERE (source, uid, occ) IN (VALUES {marks})",
                [v for key in part for v in key],
            )
            for r in rows:
                o = _row(r)
                found[(o.source, o.uid, o.occ)] = o
        return found

    async def counts_many(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, int]]:
        """`counts` of many occurrences by (uid, occ); those without answers left out."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], dict[str, int]] = {}
        for i in range(0, len(wanted), _ROWS_PER_QUERY):
            part = wanted[i : i + _ROWS_PER_QUERY]
            marks = ", ".join(["(?, ?)"] * len(part))
            rows = await self.db.fetchall(
                "SELECT uid, occ, answer, COUNT(*) FROM calendar_rsvp"
                f" WHERE (uid, occ) IN (VALUES {marks}) GROUP BY uid, occ, answer",
                [v for key in part for v in key],
            )
            for uid, occ, answer, n in rows:
                found.setdefault((str(uid), str(occ)), {})[str(answer)] = int(n)
        return found

    async def left_out_digest(self, feed: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT digest FROM calendar_left_out WHERE feed = ?", (feed,)
        )
        return str(value) if value is not None else None

    async def save_left_out_digest(self, feed: str, digest: str | None) -> None:
        if digest is None:
            await self.db.execute("DELETE FROM calendar_left_out WHERE feed = ?", (feed,))
            return
        await self.db.execute(
            "INSERT INTO calendar_left_out (feed, digest) VALUES (?, ?)"
            " ON CONFLICT (feed) DO UPDATE SET digest = excluded.digest",
            (feed, digest),
        )

    async def armed_for(self) -> str | None:
        value = await self.db.fetchval("SELECT spec FROM calendar_armed WHERE id = 1")
        return str(value) if value is not None else None

    async def save_armed_for(self, spec: str) -> None:
        await self.db.execute(
            "INSERT INTO calendar_armed (id, spec) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET spec = excluded.spec",
            (spec,),
        )

    async def update(self, rowid: int, o: Occurrence) -> None:
        """Replace what an occurrence says; its identity (source, uid, occ) stays."""
        await self.db.execute(
            "UPDATE calendar_occurrences SET start_at = ?, end_at = ?, all_day = ?, title = ?,"
            " location = ?, excerpt = ?, url = ?, associations = ?, single = ?, cancelled = ?"
            " WHERE id = ?",
            (*_values(o), rowid),
        )

    async def delete(self, rowid: int) -> None:
        row = await self.db.fetchone(
            "SELECT uid, occ FROM calendar_occurrences WHERE id = ?", (rowid,)
        )
        await self.db.execute("DELETE FROM calendar_occurrences WHERE id = ?", (rowid,))
        if row is not None:
            await self.db.execute(
                "DELETE FROM calendar_rsvp WHERE uid = ? AND occ = ?", (row[0], row[1])
            )

    async def get(self, rowid: int) -> Occurrence | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM calendar_occurrences WHERE id = ?", (rowid,)
        )
        return _row(row) if row else None

    async def find(self, source: str, uid: str, occ: str) -> Occurrence | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM calendar_occurrences WHERE source = ? AND uid = ? AND occ = ?",
            (source, uid, occ),
        )
        return _row(row) if row else None

    async def find_any(self, uid: str, occ: str) -> Occurrence | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM calendar_occurrences WHERE uid = ? AND occ = ?"
            " ORDER BY id LIMIT 1",
            (uid, occ),
        )
        return _row(row) if row else None

    async def between(self, start: datetime, end: datetime) -> list[Occurrence]:
        """Occurrences not cancelled that overlap [start, end), by start."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM calendar_occurrences WHERE cancelled = 0"
            " AND start_at < ? AND end_at > ? ORDER BY start_at, id",
            (_ts(end), _ts(start)),
        )
        return [_row(r) for r in rows]

    async def prune(self, ended_before: datetime) -> int:
        """Forget occurrences (and their answers) that ended before `ended_before`."""
        cutoff = _ts(ended_before)
        await self.db.execute(
            "DELETE FROM calendar_rsvp WHERE EXISTS (SELECT 1 FROM calendar_occurrences o"
            " WHERE o.uid = calendar_rsvp.uid AND o.occ = calendar_rsvp.occ AND o.end_at < ?)",
            (cutoff,),
        )
        # Answers to occurrences we no longer know at all (vanished from a feed).
        await self.db.execute(
            "DELETE FROM calendar_rsvp WHERE NOT EXISTS (SELECT 1 FROM calendar_occurrences o"
            " WHERE o.uid = calendar_rsvp.uid AND o.occ = calendar_rsvp.occ)"
        )
        return await self.db.execute("DELETE FROM calendar_occurrences WHERE end_at < ?", (cutoff,))

    # -- answers ------------------------------------------------------------------------

    async def answer(
        self, uid: str, occ: str, user: str, answer: str, at: datetime | None = None
    ) -> None:
        await self.db.execute(
            "INSERT INTO calendar_rsvp (uid, occ, user_ref, answer, answered_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (uid, occ, user_ref) DO UPDATE SET"
            " answer = excluded.answer, answered_at = excluded.answered_at",
            (uid, occ, user, answer, _ts(at) if at is not None else None),
        )

    async def rename_answers(self, olds: Sequence[str], new: str) -> None:
        """The answers under `olds` become `new`'s; per occurrence the latest survives.
        Runs inside the caller's transaction (a link of accounts)."""
        if not olds:
            return
        names = (*olds, new)
        marks = ", ".join("?" for _ in names)
        rows = await self.db.fetchall(
            f"SELECT uid, occ, answer, answered_at FROM calendar_rsvp WHERE user_ref IN ({marks})",
            names,
        )
        latest: dict[tuple[str, str], tuple[float, str, float | None]] = {}
        for uid, occ, answer, at in rows:
            order = float(at) if at is not None else float("-inf")
            key = (str(uid), str(occ))
            if key not in latest or order > latest[key][0]:
                latest[key] = (order, str(answer), at)
        await self.db.execute(f"DELETE FROM calendar_rsvp WHERE user_ref IN ({marks})", names)
        await self.db.executemany(
            "INSERT INTO calendar_rsvp (uid, occ, user_ref, answer, answered_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(uid, occ, new, answer, at) for (uid, occ), (_, answer, at) in latest.items()],
        )

    async def withdraw(self, uid: str, occ: str, user: str, answer: str) -> bool:
        changed = await self.db.execute(
            "DELETE FROM calendar_rsvp WHERE uid = ? AND occ = ? AND user_ref = ? AND answer = ?",
            (uid, occ, user, answer),
        )
        return changed > 0

    async def counts(self, uid: str, occ: str) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT answer, COUNT(*) FROM calendar_rsvp WHERE uid = ? AND occ = ? GROUP BY answer",
            (uid, occ),
        )
        return {str(a): int(n) for a, n in rows}

    async def who(self, uid: str, occ: str) -> list[tuple[str, str]]:
        rows = await self.db.fetchall(
            "SELECT user_ref, answer FROM calendar_rsvp WHERE uid = ? AND occ = ?"
            " ORDER BY answer DESC, user_ref",
            (uid, occ),
        )
        return [(str(u), str(a)) for u, a in rows]

    # -- feeds --------------------------------------------------------------------------

    async def failing_feeds(self) -> int:
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM calendar_feeds WHERE failing_since IS NOT NULL"
        )
        return int(value or 0)

    async def feed_state(self, feed: str) -> FeedState | None:
        row = await self.db.fetchone(
            "SELECT config, etag, last_modified, fingerprint, failing_since, reported,"
            " last_error FROM calendar_feeds WHERE id = ?",
            (feed,),
        )
        if row is None:
            return None
        return FeedState(
            str(row[0]),
            row[1],
            row[2],
            row[3],
            float(row[4]) if row[4] is not None else None,
            bool(row[5]),
            row[6],
        )

    async def save_feed_state(self, feed: str, state: FeedState) -> None:
        await self.db.execute(
            "INSERT INTO calendar_feeds (id, config, etag, last_modified, fingerprint,"
            " failing_since, reported, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET config = excluded.config, etag = excluded.etag,"
            " last_modified = excluded.last_modified, fingerprint = excluded.fingerprint,"
            " failing_since = excluded.failing_since, reported = excluded.reported,"
            " last_error = excluded.last_error",
            (
                feed,
                state.config,
                state.etag,
                state.last_modified,
                state.fingerprint,
                state.failing_since,
                int(state.reported),
                state.last_error,
            ),
        )
