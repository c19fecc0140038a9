"""Where SQLite statements run (bot.storage.sqlite_calls): short ones on the event loop,
and the loop never waits on a lock held by another process, a long statement or a
checkpoint."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage.database import Database
from bot.storage.sqlite_calls import CHECKPOINT_EVERY

# Generous: the budget on the loop is 2 ms; a gap this long means the loop was held.
LOOP_HELD = 0.25
COUNT_TO = 3_000_000  # a recursive count that takes SQLite well over a second here


class Ticker:
    """Notes the longest gap between turns of the event loop while it runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "calls.db")
    await database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    yield database
    await database.close()


def hold_write_lock(path: Path, seconds: float, started: threading.Event) -> threading.Thread:
    """Another process's writer, as far as SQLite can tell: its own connection, in a
    thread, holding the write lock for `seconds` and writing one row."""

    def run() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES ('other')")
        started.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def test_point_statements_run_on_the_loop(db: Database) -> None:
    before = db.calls.on_loop
    for n in range(50):
        assert await db.insert("INSERT INTO t (v) VALUES (?)", (f"r{n}",)) is not None
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 50
    assert await db.execute_all([("UPDATE t SET v = ? WHERE id = ?", ("x", 1))]) == [1]
    assert db.calls.on_loop - before == 52
    assert db.calls.to_thread == 0


async def test_a_write_waits_for_another_writer_off_the_loop(db: Database, tmp_path: Path) -> None:
    started = threading.Event()
    other = hold_write_lock(tmp_path / "calls.db", 0.6, started)
    await asyncio.to_thread(started.wait, 5)
    try:
        async with Ticker() as ticker:
            begun = time.perf_counter()
            rowid = await db.insert("INSERT INTO t (v) VALUES ('ours')")
            waited = time.perf_counter() - begun
    finally:
        await asyncio.to_thread(other.join, 10)
    assert rowid is not None
    assert waited > 0.3  # it did wait for the other writer's commit ...
    assert ticker.longest < LOOP_HELD  # ... on the thread, not on the loop
    assert db.calls.to_thread >= 1
    rows = await db.fetchall("SELECT v FROM t ORDER BY id")
    assert rows == [("other",), ("ours",)]


async def test_a_transaction_waits_for_another_writer_off_the_loop(
    db: Database, tmp_path: Path
) -> None:
    started = threading.Event()
    other = hold_write_lock(tmp_path / "calls.db", 0.6, started)
    await asyncio.to_thread(started.wait, 5)
    try:
        async with Ticker() as ticker, db.transaction():
            await db.execute("INSERT INTO t (v) VALUES ('a')")
            await db.execute("INSERT INTO t (v) VALUES ('b')")
    finally:
        await asyncio.to_thread(other.join, 10)
    assert ticker.longest < LOOP_HELD
    assert [r[0] for r in await db.fetchall("SELECT v FROM t ORDER BY id")] == ["other", "a", "b"]


async def test_a_long_read_is_moved_to_the_thread(db: Database) -> None:
    sql = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)"
        " SELECT COUNT(*) FROM c"
    )
    async with Ticker() as ticker:
        assert await db.fetchval(sql, (COUNT_TO,)) == COUNT_TO
    assert ticker.longest < LOOP_HELD
    assert db.calls.to_thread == 1


async def test_a_long_write_cut_off_on_the_loop_is_done_once(db: Database) -> None:
    rows = 400_000
    sql = (
        "INSERT INTO t (v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
        " WHERE x < ?) SELECT 'n' || x FROM c"
    )
    async with Ticker() as ticker:
        assert await db.execute(sql, (rows,)) == rows
    assert ticker.longest < LOOP_HELD
    assert db.calls.to_thread == 1
    assert await db.fetchval("SELECT COUNT(*) FROM t") == rows
    assert await db.fetchval("SELECT COUNT(DISTINCT v) FROM t") == rows


async def test_statements_together_cut_off_on_the_loop_are_done_once(db: Database) -> None:
    rows = 400_000
    statements = [
        ("INSERT INTO t (v) VALUES ('first')", ()),
        (
            "INSERT INTO t (v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
            " FROM c WHERE x < ?) SELECT 'n' || x FROM c",
            (rows,),
        ),
    ]
    assert await db.execute_all(statements) == [1, rows]
    assert db.calls.to_thread == 1
    assert await db.fetchval("SELECT COUNT(*) FROM t WHERE v = 'first'") == 1
    assert await db.fetchval("SELECT COUNT(*) FROM t") == rows + 1


async def test_checkpoints_keep_the_wal_small_and_writes_going(
    db: Database, tmp_path: Path
) -> None:
    writes = 10 * CHECKPOINT_EVERY
    payload = "x" * 1000  # a page or so per write, with the index
    for n in range(writes):
        await db.insert("INSERT INTO t (v) VALUES (?)", (f"{n}:{payload}",))
        if n % 100 == 0:
            await asyncio.sleep(0)  # the checkpoint task takes its turn, as in the bot
    assert await db.fetchval("SELECT COUNT(*) FROM t") == writes
    wal = (tmp_path / "calls.db-wal").stat().st_size
    # Without checkpoints the WAL would hold every page written: 3,000 writes of a
    # page and more. With them it is reused from its start after each one.
    assert wal < writes * 4096 / 3
    assert await db.fetchval("PRAGMA wal_autocheckpoint") == 0


async def test_transactions_alone_also_keep_the_wal_small(db: Database, tmp_path: Path) -> None:
    writes = 10 * CHECKPOINT_EVERY
    payload = "x" * 1000
    for n in range(writes):
        async with db.transaction():
            await db.insert("INSERT INTO t (v) VALUES (?)", (f"{n}:{payload}",))
        if n % 100 == 0:
            await asyncio.sleep(0)
    assert await db.fetchval("SELECT COUNT(*) FROM t") == writes
    assert (tmp_path / "calls.db-wal").stat().st_size < writes * 4096 / 3
