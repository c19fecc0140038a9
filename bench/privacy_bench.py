"""Export and erase of one heavy person, and the purge over a year of district traffic.

A synthetic database through the real migrations: 15 associations, 3,000 bridged
messages a month (two copies each), a reminder's outbox rows per event and offset,
weekly polls with votes, feeds with entries. The person: 10,000 bridged messages, 50
RSVPs, 20 votes. Run: `.venv/bin/python -m bench.privacy_bench [sqlite] [postgresql]`
(both by default).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.audit import AuditLog
from bot.cli_privacy import _Queue
from bot.core.refs import UserRef
from bot.data_map import all_lifetimes, framework_namespaces
from bot.lifetimes import purge
from bot.loading import BUILTIN_PLUGINS, import_plugin
from bot.people import People
from bot.privacy import Privacy
from bot.storage.database import Database
from bot.storage.engines import open_database
from bot.storage.migrations import Migrations
from tests.engines import database_target

NOW = datetime(2025, 12, 31, tzinfo=UTC)
YEAR = 365 * 86400.0
ME = "matrix:@heavy:example.org"


async def build(db: Database, rng: random.Random) -> None:
    t0 = NOW.timestamp() - YEAR
    rooms = [f"matrix:!a{i}:example.org" for i in range(15)] + [
        f"discord:{1000 + i}" for i in range(15)
    ]
    bridge, outbox = [], []
    for n in range(36_000 + 10_000):
        author = ME if n < 10_000 else f"discord:{rng.randrange(500)}"
        at = t0 + rng.random() * YEAR
        src = rng.choice(rooms)
        for room in rng.sample(rooms, 2):
            key = f"bridge:{src}/m{n}:{room}"
            bridge.append((f"{src}/m{n}", room, key, "message", "district", at, author))
            outbox.append((key, f"bridge:{src}>{room}", "send", room, "done", at, at, f"x{n}"))
    for w in range(52 * 15 * 4):  # reminders: 4 a week per association
        at = t0 + w * YEAR / (52 * 60)
        room = rooms[w % 15]
        outbox.append((f"reminder:e{w}:{room}", room, "send", room, "done", at, at, f"r{w}"))
    async with db.transaction():
        await db.executemany(
            "INSERT INTO bridge_map (origin, room, key, kind, bridge, created_at, author)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            bridge,
        )
        await db.executemany(
            "INSERT INTO outbox (key, lane, action, room, status, next_attempt, created_at,"
            " done_at, message_id) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
            outbox,
        )
        polls = []
        for p in range(1, 53 * 3):
            created = t0 + p * YEAR / 160
            closed = created + 3 * 86400 if created + 3 * 86400 < NOW.timestamp() else None
            polls.append(
                (
                    p,
                    "Q",
                    '["a","b"]',
                    1,
                    0,
                    "x",
                    created,
                    created + 3 * 86400,
                    closed,
                    "closed" if closed else "open",
                    "a",
                    "[]",
                )
            )
        await db.executemany(
            "INSERT INTO polls_polls (id, question, answers, max_selections, secret, creator,"
            " created_at, closes_at, closed_at, state, associations, rooms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            polls,
        )
        votes = [
            (p, f"discord:{v}", "a", "1", "text", t0) for p in range(150, 159) for v in range(200)
        ]
        votes += [(139 + i, ME, "a", "2", "text", t0) for i in range(20)]
        await db.executemany(
            "INSERT INTO polls_votes (poll_id, person, association, answers, source, cast_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            votes,
        )
        occ = []
        rsvp = []
        for e in range(52 * 15):
            start = t0 + e * YEAR / 780
            occ.append(("ics", f"u{e}", "o", start, start + 7200, 0, "T", "", "", "", "a", 1))
            for v in range(20):
                rsvp.append((f"u{e}", "o", f"discord:{v}", "yes", start - 86400))
            if e < 50:
                rsvp.append((f"u{e}", "o", ME, "yes", start - 86400))
        await db.executemany(
            "INSERT INTO calendar_occurrences (source, uid, occ, start_at, end_at, all_day, title,"
            " location, excerpt, url, associations, single)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            occ,
        )
        await db.executemany(
            "INSERT INTO calendar_rsvp (uid, occ, user_ref, answer, answered_at)"
            " VALUES (?, ?, ?, ?, ?)",
            rsvp,
        )
        entries = [
            (
                f"f{f}",
                f"e{n}",
                None,
                None,
                "d",
                "T",
                "S",
                None,
                t0 + n * 3600,
                t0 + n * 3600,
                n,
                "old",
            )
            for f in range(5)
            for n in range(2000)
        ]
        await db.executemany(
            "INSERT INTO updates_entries (feed, id, guid, link, digest, title, summary, published,"
            " seen_at, last_seen, seq, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            entries,
        )


async def main(engines: list[str]) -> None:
    for engine in engines:
        with tempfile.TemporaryDirectory() as folder:
            async with database_target(engine, Path(folder)) as target:
                await one_engine(engine, await open_database(target))


async def one_engine(engine: str, db: Database) -> None:
    rng = random.Random(15)
    classes = [import_plugin(m) for m in BUILTIN_PLUGINS]
    schemas = [c.migrations for c in classes if c.migrations is not None]
    try:
        for ns in [*framework_namespaces(), *schemas]:
            await ns.upgrade(db)
        await build(db, rng)
        rows = int(await db.fetchval("SELECT COUNT(*) FROM bridge_map"))
        privacy = Privacy(db, People(db), AuditLog(db), classes)
        who = UserRef.parse(ME)
        t = time.perf_counter()
        data = await privacy.export(who, NOW)
        export_s = time.perf_counter() - t
        copies = len(data["bridge"]["copies"])

        queue = _Queue(db)  # the operator's: the deletions written to the outbox
        t = time.perf_counter()
        done = await privacy.erase(who, NOW, deleter=queue)
        erase_s = time.perf_counter() - t
        t = time.perf_counter()
        removed = await privacy_purge(db, schemas)
        purge_s = time.perf_counter() - t
    finally:
        await db.close()
    print(f"[{engine}] database: {rows} bridge map rows (a year, 15 associations), polls, ...")
    print(
        f"[{engine}] export of one person ({copies} copies, 50 RSVPs, 20 votes):"
        f" {export_s * 1000:.0f} ms"
    )
    print(
        f"[{engine}] erase of the same ({sum(done.rows.values())} rows,"
        f" {done.copies_queued} deletions queued): {erase_s * 1000:.0f} ms"
    )
    print(
        f"[{engine}] purge over the year: {sum(removed.values())} rows removed"
        f" in {purge_s * 1000:.0f} ms"
    )


async def privacy_purge(db: Database, schemas: list[Migrations]) -> dict[str, int]:
    return await purge(db, all_lifetimes(schemas), NOW)


if __name__ == "__main__":
    wanted = sys.argv[1:] or ["sqlite", "postgresql"]
    asyncio.run(main(wanted))
