"""A PostgreSQL connection cut by the server (`pg_terminate_backend`, as an admin or a
failover does): the next statement either works (connected again) or is an outage
(`StorageUnavailable`, which callers hold their work for and retry), never another
error; and the instance lock's watch closes the fence and says so, never dies with an
exception.

The race this guards: when the server's FATAL message has arrived but the socket is not
closed yet, asyncpg answers the next query with `InternalClientError` ("cannot switch to
state 12; another operation (2) is in progress"). Before it counted as an outage, the
Discord inbound worker logged it and went on to the next message, whose id then moved
the channel's position past the one dropped: a message lost (seen in the two-process
failover test, tests/bridge/test_standby_processes.py). It happens in some 1 of 6 cuts;
each test cuts 40 times.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.fence import Fence
from bot.storage.advisory import take
from bot.storage.engines import open_database
from bot.storage.health import StorageUnavailable
from bot.storage.target import DatabaseUrl
from tests.engines import SERVER, postgres_database

CUTS = 40


@pytest.fixture
async def url() -> AsyncIterator[DatabaseUrl]:
    async with postgres_database("samverkan_cut") as where:
        yield where


async def cut(admin: asyncpg.Connection, pid: int) -> None:
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)


async def test_a_statement_after_a_cut_works_or_is_an_outage(url: DatabaseUrl) -> None:
    admin = await asyncpg.connect(SERVER, timeout=10)
    db = await open_database(url)
    outcomes: Counter[str] = Counter()
    try:
        await db.execute("CREATE TABLE t (x INTEGER)")
        for _ in range(CUTS):
            (pid,) = await db.fetchone("SELECT pg_backend_pid()") or (0,)
            await cut(admin, int(pid))
            try:
                await db.execute("INSERT INTO t (x) VALUES (1)")
                outcomes["ok"] += 1
            except StorageUnavailable:
                outcomes["outage"] += 1
            except Exception as exc:
                outcomes[f"{type(exc).__name__}: {exc}"] += 1
            # Whatever the first statement got, the next one works.
            await db.execute("INSERT INTO t (x) VALUES (2)")
    finally:
        await db.close()
        await admin.close()
    assert set(outcomes) <= {"ok", "outage"}, outcomes


async def test_the_lock_watch_closes_the_fence_on_a_cut(url: DatabaseUrl) -> None:
    admin = await asyncpg.connect(SERVER, timeout=10)
    try:
        for _ in range(CUTS // 4):
            lock = await take(url)
            fence = Fence(lease=0.6, grace=0.0)
            lock.hold(fence)
            reasons: list[str] = []
            watch = asyncio.create_task(lock.watch(fence, reasons.append))
            await asyncio.sleep(0.25)  # a confirmation or two
            holder = await admin.fetchval(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
                url.dsn().rsplit("/", 1)[1],
            )
            await cut(admin, int(holder))
            await asyncio.wait_for(watch, 5)  # returns: never an exception
            await lock.release()
            assert len(reasons) == 1 and not fence.may_send(), reasons
    finally:
        await admin.close()
