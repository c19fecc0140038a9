"""A batch on PostgreSQL is one commit, not one per row: `executemany` outside a
transaction once committed each row by itself, a round trip and a commit each, and the
start of a national bot (100,000 reminders armed) took 47 s on PostgreSQL against 10 s
on SQLite. Counted by transaction ids: every committed write takes one, so a batch of
3,000 rows that took fewer than 100 ran in (about) one transaction, whatever else the
server does meanwhile. And a failing row takes the whole batch back, not what came after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.storage.database import Database
from bot.storage.engines import open_database
from tests.engines import postgres_database

ROWS = 3000


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with postgres_database("samverkan_batch") as url:
        database = await open_database(url, allow_empty=True)
        try:
            await database.execute("CREATE TABLE demo (id INTEGER PRIMARY KEY, n INTEGER)")
            yield database
        finally:
            await database.close()


async def _xid(db: Database) -> int:
    # Takes a transaction id of its own too: one more per call, counted below.
    return int(await db.fetchval("SELECT txid_current()"))


async def test_a_batch_is_one_commit(db: Database) -> None:
    before = await _xid(db)
    changed = await db.executemany(
        "INSERT INTO demo (id, n) VALUES (?, ?)", [(i, i) for i in range(ROWS)]
    )
    used = await _xid(db) - before
    assert changed == ROWS
    assert await db.fetchval("SELECT COUNT(*) FROM demo") == ROWS
    # Row by row it was ROWS + 1; other tests on the same server add a few at most.
    assert used < 100, f"{used} transactions for one batch of {ROWS} rows"


async def test_a_failing_row_takes_the_batch_back(db: Database) -> None:
    await db.execute("INSERT INTO demo (id, n) VALUES (?, ?)", (5, 0))
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.executemany("INSERT INTO demo (id, n) VALUES (?, ?)", [(i, i) for i in range(10)])
    assert await db.fetchval("SELECT COUNT(*) FROM demo") == 1
    # The connection is usable after: the batch's own transaction was rolled back.
    assert await db.executemany("UPDATE demo SET n = ? WHERE id = ?", [(7, 5)]) == 1
