"""Writes behind their callers (bot.storage.write_behind): gathered into one commit,
read back by their own process as written, and kept through a full disk until it takes
them. The full-disk test needs root (a small tmpfs), as CI has."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.refs import RoomRef
from bot.outbox import SENT, Outbox
from bot.storage import write_behind
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.health import StorageUnavailable
from bot.storage.state import AdapterState
from tests.bridge.test_bridge_full_disk import fill, tmpfs


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "behind.db")
    await core_migrations.upgrade(database)
    yield database
    await database.close()


async def stored(db: Database, key: str) -> str | None:
    # Straight from the table, as another process would read it.
    value = await db.fetchval(
        "SELECT value FROM adapter_state WHERE platform = 'discord' AND key = ?", (key,)
    )
    return None if value is None else str(value)


async def test_positions_are_written_together_soon_after(db: Database) -> None:
    state = AdapterState(db, "discord")
    commits_before = db.calls.on_loop  # statements run on the loop so far
    for n in range(50):
        state.set_soon(f"last:{n % 5}", str(n))
    assert await stored(db, "last:0") is None  # not yet: behind the caller
    for _ in range(100):
        await asyncio.sleep(write_behind.DELAY)
        if not db.behind.busy:
            break
    assert [await stored(db, f"last:{c}") for c in range(5)] == ["45", "46", "47", "48", "49"]
    # Six reads above, and the fifty positions in one batch (one commit).
    assert db.calls.on_loop - commits_before == 6 + 1


async def test_this_process_reads_what_it_wrote_behind(db: Database) -> None:
    state = AdapterState(db, "discord")
    await state.set("last:1", "10")
    state.set_soon("last:7", "70")
    state.set_soon("last:7", "71")
    # Read from what is queued, and a read of another key waits for no write: the
    # queued values are still only queued after both reads.
    assert await state.get("last:7") == "71"
    assert await state.get("last:1") == "10"
    assert await stored(db, "last:7") is None
    await state.set("last:1", "11")  # a durable write of a key not queued: at once
    assert await stored(db, "last:1") == "11" and await stored(db, "last:7") is None
    await state.set("last:7", "72")  # a write of a queued key goes after it: order kept
    await asyncio.sleep(3 * write_behind.DELAY)
    assert await stored(db, "last:7") == "72" and await state.get("last:7") == "72"
    # Reads of many keys, and deletions, go after every queued value.
    state.set_soon("last:8", "80")
    assert await state.with_prefix("last:") == {"last:1": "11", "last:7": "72", "last:8": "80"}
    state.set_soon("last:9", "90")
    await state.delete(["last:9"])
    await asyncio.sleep(3 * write_behind.DELAY)
    assert await stored(db, "last:9") is None and await state.get("last:9") is None
    # Two values of one key queued around a write: the later one is read and stored.
    state.set_soon("last:5", "50")
    writing = asyncio.ensure_future(db.flush_behind())
    state.set_soon("last:5", "51")
    await writing
    assert await state.get("last:5") == "51"
    await db.flush_behind()
    assert await stored(db, "last:5") == "51"


async def test_an_outcome_settled_behind_is_read_as_sent(db: Database) -> None:
    outbox = Outbox(db, "me")
    room = RoomRef.parse("discord:1")
    row = await outbox.insert("k1", "discord:1", "send", room, None, "{}", 1.0, 99.0)
    assert row is not None
    lost: list[int] = []
    outbox.settle(row.id, SENT, "555", None, 2.0, lambda: lost.append(row.id))
    ref = await outbox.message_ref("k1")
    assert ref is not None and ref.id == "555"
    assert await outbox.status("k1") == SENT
    assert await outbox.pending_lanes() == []
    # Settled for a row another instance holds now: the owner hears it was lost.
    row2 = await outbox.insert("k2", "discord:1", "send", room, None, "{}", 1.0, 99.0)
    assert row2 is not None
    await db.execute("UPDATE outbox SET claimed_by = 'other' WHERE id = ?", (row2.id,))
    outbox.settle(row2.id, SENT, "556", None, 2.0, lambda: lost.append(row2.id))
    await outbox.flush()
    assert lost == [row2.id]


@contextlib.asynccontextmanager
async def full_disk(tmp_path: Path, value: str) -> AsyncIterator[tuple[Database, Path]]:
    """A database on a 2 MB tmpfs filled up, with 200 positions of `value` queued behind
    (more than the free pages SQLite had left); yields it and the ballast to delete."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        db = await Database.open(disk / "behind.db")
        try:
            await core_migrations.upgrade(db)
            state = AdapterState(db, "discord")
            ballast = disk / "ballast"
            fill(ballast)
            for n in range(200):
                state.set_soon(f"last:{n}", value)
            yield db, ballast
        finally:
            await db.close()


async def test_writes_behind_wait_out_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_behind, "STORAGE_RETRY", 0.05)
    async with full_disk(tmp_path, "x" * 200) as (db, ballast):
        await asyncio.sleep(10 * write_behind.DELAY)
        assert db.behind.busy  # kept, not dropped
        assert not db.health.writable
        with pytest.raises(StorageUnavailable):
            await db.behind.flush()
        ballast.unlink()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if not db.behind.busy:
                break
        assert not db.behind.busy
        assert db.health.writable
        assert await stored(db, "last:0") == "x" * 200
        assert await stored(db, "last:199") == "x" * 200


async def test_a_flush_in_an_outage_writes_once_the_database_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer sleeps long between tries; a flush (a stopping instance releasing its
    # claims for a standby) does not wait for it, nor gives up while the disk has room.
    monkeypatch.setattr(write_behind, "STORAGE_RETRY", 3600.0)
    async with full_disk(tmp_path, "y" * 200) as (db, ballast):
        for _ in range(1000):  # the writer's first try, a moment after
            await asyncio.sleep(write_behind.DELAY)
            if not db.health.writable:
                break
        assert not db.health.writable
        with pytest.raises(StorageUnavailable):
            await db.behind.flush()  # still full: tried, and still queued
        assert db.behind.busy
        ballast.unlink()
        async with asyncio.timeout(30):
            await db.behind.flush()
        assert await stored(db, "last:199") == "y" * 200
        assert await stored(db, "last:0") == "y" * 200


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_a_flush_inside_a_transaction_never_waits_for_the_writer(
    engine: str, tmp_path: Path
) -> None:
    # The writer, once under way, waits for the transaction; a flush by the
    # transaction's owner (an outbox lookup inside it) waiting for the writer was a
    # deadlock that held the database until the process was killed.
    from bot.storage.engines import open_database
    from tests.engines import database_target

    async with database_target(engine, tmp_path) as target:
        db = await open_database(target, allow_empty=True)
        try:
            await core_migrations.upgrade(db)
            state = AdapterState(db, "discord")
            state.set_soon("last:1", "1")
            async with db.transaction():
                await asyncio.sleep(5 * write_behind.DELAY)  # the writer waits for us now
                assert db.behind.busy
                async with asyncio.timeout(10):
                    await db.behind.flush()
                    assert await state.with_prefix("last:") in ({}, {"last:1": "1"})
                await db.execute(
                    "INSERT INTO adapter_state (platform, key, value) VALUES ('discord', 'x', 'y')"
                )
            async with asyncio.timeout(10):
                await db.behind.flush()
            assert await stored(db, "last:1") == "1" and await stored(db, "x") == "y"
        finally:
            await db.close()


async def test_writes_wait_out_a_file_another_connection_keeps_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the busy timeout (5 s) SQLite says "database is locked": the writes are kept
    # and written once the other connection lets go, not dropped.
    import sqlite3

    monkeypatch.setattr(write_behind, "STORAGE_RETRY", 0.1)
    db = await Database.open(tmp_path / "locked.db")
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        await core_migrations.upgrade(db)
        state = AdapterState(db, "discord")
        other.execute("BEGIN IMMEDIATE")
        state.set_soon("last:1", "1")
        await asyncio.sleep(8)  # the first try waits out the busy timeout, and fails
        assert db.behind.busy
        other.execute("ROLLBACK")
        for _ in range(100):
            await asyncio.sleep(0.1)
            if not db.behind.busy:
                break
        assert await stored(db, "last:1") == "1"
    finally:
        other.close()
        await db.close()
