"""The updates plugin's tables: followed feeds, their entries, posted copies, and
organisers' texts.

Stored is what dedup and edits need: per entry its identity (guid, link, a hash of what
it shows) and what a post shows (title, link, a cut summary); per posted copy its
delivery key and room, so that a changed entry edits what was posted. Entries gone from
their feed are forgotten after the retention period, as are organisers' texts after
posting. Feed news is public; organisers' texts are kept no longer than edits need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.storage.database import Database, like_prefix
from plugins.updates.dedup import Known
from plugins.updates.model import PENDING, Entry, FeedRow


def csv(values: Iterable[str]) -> str:
    return ",".join(values)


def split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v)


_FEED_COLUMNS = (
    "num, key, origin, url, name, title, associations, rooms, mode, include, exclude,"
    " refresh, paused, primed, etag, last_modified, body_hash, last_parsed, next_fetch,"
    " last_success, last_error, last_error_at, failing_since, failures, reported"
)


def _feed(r: Sequence[Any]) -> FeedRow:
    return FeedRow(
        num=int(r[0]),
        key=str(r[1]),
        origin=str(r[2]),
        url=str(r[3]),
        name=r[4],
        title=r[5],
        associations=split(str(r[6])),
        rooms=split(str(r[7])),
        mode=str(r[8]),
        include=tuple(json.loads(r[9])),
        exclude=tuple(json.loads(r[10])),
        refresh=float(r[11]) if r[11] is not None else None,
        paused=r[12],
        primed=bool(r[13]),
        etag=r[14],
        last_modified=r[15],
        body_hash=r[16],
        last_parsed=float(r[17]) if r[17] is not None else None,
        next_fetch=float(r[18]) if r[18] is not None else None,
        last_success=float(r[19]) if r[19] is not None else None,
        last_error=r[20],
        last_error_at=float(r[21]) if r[21] is not None else None,
        failing_since=float(r[22]) if r[22] is not None else None,
        failures=int(r[23]),
        reported=bool(r[24]),
    )


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """What defines a followed feed (from the settings or `feed add`)."""

    key: str
    origin: str
    url: str
    name: str | None
    associations: tuple[str, ...]
    rooms: tuple[str, ...]
    mode: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    refresh: float | None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    feed: str
    id: str
    entry: Entry
    state: str
    revision: int
    seen_at: float


@dataclass(frozen=True, slots=True)
class Copy:
    """A post the plugin made. For a digest, `ref` is its time and `more` the entries
    left out of it; for an entry `feed:entry`; for an organiser's text its id."""

    key: str
    kind: str
    room: str
    ref: str
    late: bool
    more: int
    revision: int
    posted_at: float


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- feeds --------------------------------------------------------------------------

    async def feeds(self) -> list[FeedRow]:
        rows = await self.db.fetchall(f"SELECT {_FEED_COLUMNS} FROM updates_feeds ORDER BY num")
        return [_feed(r) for r in rows]

    async def feed(self, key: str) -> FeedRow | None:
        row = await self.db.fetchone(
            f"SELECT {_FEED_COLUMNS} FROM updates_feeds WHERE key = ?", (key,)
        )
        return _feed(row) if row else None

    async def feed_by_num(self, num: int) -> FeedRow | None:
        row = await self.db.fetchone(
            f"SELECT {_FEED_COLUMNS} FROM updates_feeds WHERE num = ?", (num,)
        )
        return _feed(row) if row else None

    async def feed_by_url(self, url: str) -> FeedRow | None:
        row = await self.db.fetchone(
            f"SELECT {_FEED_COLUMNS} FROM updates_feeds WHERE url = ? ORDER BY num LIMIT 1",
            (url,),
        )
        return _feed(row) if row else None

    async def put_feed(self, spec: FeedSpec, *, added_by: str | None, now: float) -> int:
        """Insert the feed, or update its settings and keep its state; returns its num."""
        values = (
            spec.origin,
            spec.url,
            spec.name,
            csv(spec.associations),
            csv(spec.rooms),
            spec.mode,
            json.dumps(list(spec.include), ensure_ascii=False),
            json.dumps(list(spec.exclude), ensure_ascii=False),
            spec.refresh,
        )
        await self.db.execute(
            "INSERT INTO updates_feeds (key, origin, url, name, associations, rooms, mode,"
            " include, exclude, refresh, added_by, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
            " origin = excluded.origin, url = excluded.url, name = excluded.name,"
            " associations = excluded.associations, rooms = excluded.rooms,"
            " mode = excluded.mode, include = excluded.include, exclude = excluded.exclude,"
            " refresh = excluded.refresh,"
            # Another address is another feed: what was known of the old one is not.
            " primed = CASE WHEN updates_feeds.url = excluded.url THEN updates_feeds.primed"
            " ELSE 0 END,"
            " etag = CASE WHEN updates_feeds.url = excluded.url THEN updates_feeds.etag END,"
            " last_modified = CASE WHEN updates_feeds.url = excluded.url"
            " THEN updates_feeds.last_modified END,"
            " body_hash = CASE WHEN updates_feeds.url = excluded.url"
            " THEN updates_feeds.body_hash END",
            (spec.key, *values, added_by, now),
        )
        num = await self.db.fetchval("SELECT num FROM updates_feeds WHERE key = ?", (spec.key,))
        return int(num)

    async def count_feeds(self, *, failing: bool = False, paused: bool = False) -> int:
        """For the metrics: feeds in a failure streak, or paused."""
        column = "failing_since" if failing else "paused"
        assert failing or paused
        value = await self.db.fetchval(
            f"SELECT COUNT(*) FROM updates_feeds WHERE {column} IS NOT NULL"
        )
        return int(value or 0)

    async def count_pending(self) -> int:
        value = await self.db.fetchval(
            "SELECT COUNT(*) FROM updates_entries WHERE state = ?", (PENDING,)
        )
        return int(value or 0)

    async def delete_feed(self, key: str) -> None:
        await self.db.execute("DELETE FROM updates_digest_items WHERE feed = ?", (key,))
        await self.db.execute(
            "DELETE FROM updates_copies WHERE kind = 'entry' AND ref LIKE ? ESCAPE '\\'",
            (like_prefix(key + ":"),),
        )
        await self.db.execute("DELETE FROM updates_entries WHERE feed = ?", (key,))
        await self.db.execute("DELETE FROM updates_feeds WHERE key = ?", (key,))

    async def set_feed(self, key: str, **columns: object) -> None:
        """Change a feed's state columns (names from this module only)."""
        names = ", ".join(f"{name} = ?" for name in columns)
        await self.db.execute(
            f"UPDATE updates_feeds SET {names} WHERE key = ?", (*columns.values(), key)
        )

    # -- entries ------------------------------------------------------------------------

    async def known(self, feed: str) -> list[Known]:
        rows = await self.db.fetchall(
            "SELECT id, guid, link, title, digest, state, revision FROM updates_entries"
            " WHERE feed = ?",
            (feed,),
        )
        return [
            Known(str(r[0]), r[1], r[2], str(r[3]), str(r[4]), str(r[5]), int(r[6])) for r in rows
        ]

    async def next_seq(self) -> int:
        value = await self.db.fetchval("SELECT MAX(seq) FROM updates_entries")
        return int(value or 0) + 1

    async def add_entries(
        self, feed: str, items: Sequence[tuple[str, Entry, str]], now: float, seq: int
    ) -> None:
        """Record new entries, (id, entry, state) each, in the order given."""
        await self.db.executemany(
            "INSERT INTO updates_entries (feed, id, guid, link, digest, title, summary,"
            " published, seen_at, last_seen, seq, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?)",
            [
                (
                    feed,
                    entry_id,
                    e.guid,
                    e.link,
                    e.digest,
                    e.title,
                    e.summary,
                    e.published.timestamp() if e.published else None,
                    now,
                    now,
                    seq + i,
                    state,
                )
                for i, (entry_id, e, state) in enumerate(items)
            ],
        )

    async def update_entry(self, feed: str, entry_id: str, e: Entry, *, revise: bool) -> None:
        await self.db.execute(
            "UPDATE updates_entries SET guid = ?, link = ?, digest = ?, title = ?, summary = ?,"
            " published = ?, revision = revision + ? WHERE feed = ? AND id = ?",
            (
                e.guid,
                e.link,
                e.digest,
                e.title,
                e.summary,
                e.published.timestamp() if e.published else None,
                1 if revise else 0,
                feed,
                entry_id,
            ),
        )

    async def touch(self, feed: str, ids: Sequence[str], now: float) -> None:
        """Note that these entries are still in their feed (they are not forgotten)."""
        await self.db.executemany(
            "UPDATE updates_entries SET last_seen = ? WHERE feed = ? AND id = ?",
            [(now, feed, i) for i in ids],
        )

    async def trim(self, feed: str, keep: int, parsed_at: float) -> int:
        """Keep at most `keep` entries of a feed: beyond that, forget those longest gone
        from it (a feed whose entries change identity at every fetch must not grow the
        table without end). Entries of the latest parse and those waiting stay."""
        count = int(
            await self.db.fetchval("SELECT COUNT(*) FROM updates_entries WHERE feed = ?", (feed,))
        )
        if count <= keep:
            return 0
        return await self.db.execute(
            "DELETE FROM updates_entries WHERE feed = ? AND id IN (SELECT id FROM"
            " updates_entries WHERE feed = ? AND state <> ? AND last_seen < ?"
            " ORDER BY last_seen, seq LIMIT ?)",
            (feed, feed, PENDING, parsed_at, count - keep),
        )

    async def still_there(self, feed: str, parsed_at: float, now: float) -> None:
        """The entries read at `parsed_at` are still in the feed (it answered 304): they
        were last seen now, so that nothing forgets them while the feed carries them."""
        await self.db.execute(
            "UPDATE updates_entries SET last_seen = ? WHERE feed = ? AND last_seen = ?",
            (now, feed, parsed_at),
        )
        await self.db.execute("UPDATE updates_feeds SET last_parsed = ? WHERE key = ?", (now, feed))

    async def set_state(self, items: Iterable[tuple[str, str]], state: str) -> None:
        await self.db.executemany(
            "UPDATE updates_entries SET state = ? WHERE feed = ? AND id = ?",
            [(state, feed, entry_id) for feed, entry_id in items],
        )

    async def entry(self, feed: str, entry_id: str) -> StoredEntry | None:
        rows = await self._entries("feed = ? AND id = ?", (feed, entry_id))
        return rows[0] if rows else None

    async def pending(self) -> list[StoredEntry]:
        """Entries waiting for a digest, oldest first."""
        return await self._entries("state = ?", (PENDING,))

    async def _entries(self, where: str, params: Sequence[Any]) -> list[StoredEntry]:
        rows = await self.db.fetchall(
            "SELECT feed, id, guid, link, title, summary, published, state, revision, seen_at"
            f" FROM updates_entries WHERE {where} ORDER BY seq",
            params,
        )
        return [
            StoredEntry(
                feed=str(r[0]),
                id=str(r[1]),
                entry=Entry(
                    r[2],
                    r[3],
                    str(r[4]),
                    str(r[5]),
                    datetime.fromtimestamp(float(r[6]), UTC) if r[6] is not None else None,
                ),
                state=str(r[7]),
                revision=int(r[8]),
                seen_at=float(r[9]),
            )
            for r in rows
        ]

    # -- copies -------------------------------------------------------------------------

    async def add_copy(
        self,
        key: str,
        kind: str,
        room: str,
        ref: str,
        now: float,
        *,
        late: bool = False,
        more: int = 0,
    ) -> None:
        await self.db.execute(
            "INSERT INTO updates_copies (key, kind, room, ref, late, more, posted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, kind, room, ref, int(late), more, now),
        )

    async def copies(self, kind: str, ref: str) -> list[Copy]:
        rows = await self.db.fetchall(
            "SELECT key, kind, room, ref, late, more, revision, posted_at FROM updates_copies"
            " WHERE kind = ? AND ref = ? ORDER BY key",
            (kind, ref),
        )
        return [_copy(r) for r in rows]

    async def revise_copy(self, key: str) -> int:
        """The copy's next revision number (for the edit's delivery key)."""
        await self.db.execute(
            "UPDATE updates_copies SET revision = revision + 1 WHERE key = ?", (key,)
        )
        return int(
            await self.db.fetchval("SELECT revision FROM updates_copies WHERE key = ?", (key,))
        )

    async def add_digest_items(self, copy: str, items: Sequence[tuple[str, str]]) -> None:
        await self.db.executemany(
            "INSERT INTO updates_digest_items (copy, feed, entry, pos) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [(copy, feed, entry, pos) for pos, (feed, entry) in enumerate(items)],
        )

    async def digests_with(self, feed: str, entry_id: str) -> list[Copy]:
        rows = await self.db.fetchall(
            "SELECT c.key, c.kind, c.room, c.ref, c.late, c.more, c.revision, c.posted_at"
            " FROM updates_copies c"
            " JOIN updates_digest_items d ON d.copy = c.key WHERE d.feed = ? AND d.entry = ?"
            " ORDER BY c.key",
            (feed, entry_id),
        )
        return [_copy(r) for r in rows]

    async def digest_items(self, copy: str) -> list[StoredEntry]:
        rows = await self.db.fetchall(
            "SELECT feed, entry FROM updates_digest_items WHERE copy = ? ORDER BY pos", (copy,)
        )
        found = []
        for feed, entry_id in rows:
            stored = await self.entry(str(feed), str(entry_id))
            if stored is not None:
                found.append(stored)
        return found

    # -- forgetting ---------------------------------------------------------------------

    async def prune(self, before: float) -> int:
        """Forget entries gone from their feeds, copies too old to edit, and organisers'
        texts posted or cancelled, all older than `before`."""
        await self.db.execute(
            "DELETE FROM updates_digest_items WHERE copy IN"
            " (SELECT key FROM updates_copies WHERE posted_at < ?)",
            (before,),
        )
        await self.db.execute("DELETE FROM updates_copies WHERE posted_at < ?", (before,))
        await self.db.execute(
            "DELETE FROM updates_posts WHERE state IN ('posted', 'cancelled')"
            " AND COALESCE(posted_at, created_at) < ?",
            (before,),
        )
        # Only entries missing from their feed's latest parse: a feed answering 304 for
        # months still holds what it held.
        return await self.db.execute(
            "DELETE FROM updates_entries WHERE last_seen < ? AND state <> ? AND last_seen <"
            " (SELECT COALESCE(f.last_parsed, 0) FROM updates_feeds f"
            " WHERE f.key = updates_entries.feed)",
            (before, PENDING),
        )


def _copy(r: Sequence[Any]) -> Copy:
    return Copy(
        str(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4]), int(r[5]), int(r[6]), float(r[7])
    )
