"""The storage contract: what every engine behind `Database` does alike (SQLite and
PostgreSQL, through the `db_target` fixture)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.core.refs import RoomRef
from bot.outbox import Outbox
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database, like_prefix
from bot.storage.engines import lock_instance, open_database
from bot.storage.instance import InstanceLockedError
from bot.storage.migrations import Migrations, SchemaTooNewError
from bot.storage.state import AdapterState
from tests.engines import Target

SNOWFLAKE = 1_234_567_890_123_456_789  # a Discord id: past 32 bits
EPOCH = 1_764_667_200.123456  # a time to the microsecond: past a 4-byte float


async def _demo(db: Database) -> None:
    demo = Migrations("demo")

    @demo.step(1)
    async def one(db: Database) -> None:
        await db.execute(
            "CREATE TABLE demo (id INTEGER PRIMARY KEY, n INTEGER, at REAL, name TEXT,"
            " flag INTEGER NOT NULL DEFAULT 0)"
        )

    await demo.upgrade(db)


async def test_types_keep_snowflakes_times_and_ids(db: Database) -> None:
    await _demo(db)
    first = await db.insert(
        "INSERT INTO demo (n, at, name) VALUES (?, ?, ?)", (SNOWFLAKE, EPOCH, "a")
    )
    second = await db.insert("INSERT INTO demo (n, at, name) VALUES (?, ?, ?)", (1, 2.5, "b?"))
    assert first is not None and second == first + 1
    assert await db.fetchone("SELECT n, at, name FROM demo WHERE id = ?", (first,)) == (
        SNOWFLAKE,
        EPOCH,
        "a",
    )
    # A '?' inside a literal is no placeholder; SUM comes back as a number, not Decimal.
    assert await db.fetchval("SELECT COUNT(*) FROM demo WHERE name <> 'x?'") == 2
    assert await db.fetchval("SELECT SUM(n) FROM demo") == SNOWFLAKE + 1
    assert await db.execute("UPDATE demo SET flag = ? WHERE n > ?", (1, 0)) == 2
    assert await db.executemany("DELETE FROM demo WHERE id = ?", [(first,), (second,)]) == 2
    assert await db.fetchall("SELECT * FROM demo") == []
    assert "demo" in await db.table_names()


async def test_insert_of_a_known_key_returns_none(db: Database) -> None:
    row = ("k", "lane", "send", "console:a", "pending", 0.0, 0.0)
    sql = (
        "INSERT INTO outbox (key, lane, action, room, status, next_attempt, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
    )
    assert isinstance(await db.insert(sql, row), int)
    assert await db.insert(sql, row) is None


async def test_a_transaction_rolls_back_and_runs_callbacks_only_on_commit(db: Database) -> None:
    await _demo(db)
    told: list[str] = []
    with pytest.raises(ValueError):
        async with db.transaction():
            await db.execute("INSERT INTO demo (n) VALUES (?)", (1,))
            db.after_commit(lambda: told.append("rolled back"))
            raise ValueError("abort")
    async with db.transaction():
        assert db.in_transaction()
        await db.execute("INSERT INTO demo (n) VALUES (?)", (2,))
        db.after_commit(lambda: told.append("committed"))
        assert told == []
    assert not db.in_transaction()
    assert told == ["committed"]
    assert await db.fetchall("SELECT n FROM demo") == [(2,)]


async def test_a_transaction_keeps_other_tasks_out(db: Database) -> None:
    await _demo(db)
    seen: list[int] = []

    async def reader() -> None:
        seen.append(int(await db.fetchval("SELECT COUNT(*) FROM demo")))

    async with db.transaction():
        await db.execute("INSERT INTO demo (n) VALUES (1)")
        task = asyncio.create_task(reader())
        await asyncio.sleep(0.05)
        assert seen == []  # waits for the commit
        await db.execute("INSERT INTO demo (n) VALUES (2)")
    await task
    assert seen == [2]


async def test_like_prefix_is_literal(db: Database) -> None:
    state = AdapterState(db, "discord")
    for key in ("a_1:x", "aX1:x", "a%1:y", "a\\1:z"):
        await state.set(key, "v")
    for prefix, left in (("a_1:", 3), ("a%", 2), ("a\\", 1)):
        assert await state.delete_prefix(prefix) == 1
        assert len(await state.with_prefix("")) == left
    rows = await db.fetchall(
        "SELECT key FROM adapter_state WHERE key LIKE ? ESCAPE '\\'", (like_prefix("aX"),)
    )
    assert rows == [("aX1:x",)]


async def test_adapter_state_and_seen_events(db: Database) -> None:
    state = AdapterState(db, "matrix")
    await state.set("sync", "s1")
    await state.set("sync", "s2")
    assert await state.get("sync") == "s2"
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert await state.mark_seen("$e1", now)
    assert not await state.mark_seen("$e1", now)
    assert await state.seen("$e1")
    assert await state.forget_before(datetime(2026, 12, 2, tzinfo=UTC)) == 1


async def test_execute_all_commits_together_or_not_at_all(db: Database) -> None:
    await _demo(db)
    insert = "INSERT INTO demo (id, n) VALUES (?, ?)"
    assert await db.execute_all([(insert, (1, 1)), ("UPDATE demo SET n = ?", (5,))]) == [1, 1]
    with pytest.raises(Exception):  # noqa: B017 (each engine its own error type)
        await db.execute_all([(insert, (2, 2)), (insert, (1, 1))])
    assert await db.fetchall("SELECT id, n FROM demo") == [(1, 5)]
    async with db.transaction():
        assert await db.execute_all([(insert, (3, 3))]) == [1]
    assert await db.fetchval("SELECT COUNT(*) FROM demo") == 2
    state = AdapterState(db, "discord")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    await state.mark_handled("m1", now, "last:1", "10")
    assert await state.seen("m1") and await state.get("last:1") == "10"


async def test_executemany_counts_the_rows_it_changed(db: Database) -> None:
    await _demo(db)
    # A generator, as callers pass; an upsert that leaves a row alone changes nothing.
    insert = "INSERT INTO demo (id, n) VALUES (?, ?) ON CONFLICT DO NOTHING"
    assert await db.executemany(insert, ((i, i) for i in range(1, 301))) == 300
    assert await db.executemany(insert, [(300, 0), (301, 301)]) == 1
    upsert = (
        "INSERT INTO demo (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = excluded.n"
        " WHERE demo.n < excluded.n"
    )
    assert await db.executemany(upsert, [(1, 0), (2, 99), (302, 1)]) == 2
    assert await db.executemany("UPDATE demo SET flag = 1 WHERE id = ?", [(1,), (999,)]) == 1
    assert await db.executemany("DELETE FROM demo WHERE id = ?", []) == 0
    assert await db.fetchval("SELECT COUNT(*) FROM demo") == 302
    assert await db.fetchval("SELECT n FROM demo WHERE id = 2") == 99
    async with db.transaction():
        assert await db.executemany("DELETE FROM demo WHERE id > ?", [(300,), (301,)]) == 2
    assert await db.fetchval("SELECT COUNT(*) FROM demo") == 300


async def test_outbox_claims_are_exclusive(db: Database) -> None:
    mine, theirs = Outbox(db, "one"), Outbox(db, "two")
    room = RoomRef("console", "falun")
    row = await mine.insert("k1", "lane", "send", room, None, "{}", 100.0, 200.0)
    assert row is not None
    assert await mine.insert("k1", "lane", "send", room, None, "{}", 100.0, 200.0) is None
    assert not await theirs.claim(row.id, 150.0, 250.0)  # the lease holds
    assert await theirs.claim(row.id, 201.0, 300.0)  # the lease ran out
    await mine.finish(row.id, "sent", "m1", None, 202.0)
    assert await mine.status("k1") == "pending"  # not its claim any more
    await theirs.finish(row.id, "sent", "m1", None, 202.0)
    assert await mine.status("k1") == "sent"
    assert await mine.purge(datetime(2027, 1, 1, tzinfo=UTC)) == 1


async def test_a_newer_schema_is_refused(db_target: Target) -> None:
    db = await open_database(db_target)
    await core_migrations.upgrade(db)
    await db.execute("UPDATE schema_version SET version = 99 WHERE namespace = 'core'")
    with pytest.raises(SchemaTooNewError, match="version 99"):
        await core_migrations.upgrade(db)
    await db.close()
    again = await open_database(db_target)  # reopened: the version is stored
    assert await again.fetchval("SELECT version FROM schema_version WHERE namespace = 'core'") == 99
    await again.close()


async def test_one_instance_per_database(db_target: Target) -> None:
    first_db, second_db = await open_database(db_target), await open_database(db_target)
    lock = await lock_instance(first_db)
    with pytest.raises(InstanceLockedError, match="in use by another samverkan"):
        await lock_instance(second_db)
    await lock.release()
    again = await lock_instance(second_db)  # free once the holder lets go
    await again.release()
    await first_db.close()
    await second_db.close()
