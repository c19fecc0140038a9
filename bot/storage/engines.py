"""The one place that picks the engine: `bot.database` a file path (SQLite) or a
`postgresql://` URL (PostgreSQL)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Final

import asyncpg

from bot.storage.database import Database
from bot.storage.instance import InstanceLock, InstanceLockedError
from bot.storage.instance import acquire as acquire_file_lock
from bot.storage.postgres import PostgresDatabase, connect
from bot.storage.target import DatabaseUrl, parse_target

log = logging.getLogger(__name__)

# The session advisory lock of "one Samverkan per database" (advisory locks are scoped
# to their database: two districts on one server do not meet). Any fixed 64-bit number
# would do; this one is "samverka" in ASCII.
INSTANCE_LOCK_KEY: Final = 0x73616D7665726B61

__all__ = ["INSTANCE_LOCK_KEY", "lock_instance", "open_database"]


async def open_database(target: str | Path | DatabaseUrl, *, allow_empty: bool = False) -> Database:
    """Open `target`: a SQLite file (or `:memory:`), or a PostgreSQL URL."""
    where = parse_target(target)
    if isinstance(where, DatabaseUrl):
        return await PostgresDatabase.open(where)
    return await Database.open(where, allow_empty=allow_empty)


class _AdvisoryLock:
    """The instance lock on PostgreSQL: a session advisory lock held on a connection of
    its own that does nothing else, so that no long statement of the bot's can keep it
    alive after the process is gone (PITFALLS.md). The server drops it when that
    connection closes, however the process ends."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn: asyncpg.Connection | None = conn

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await conn.execute("SELECT pg_advisory_unlock($1)", INSTANCE_LOCK_KEY)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await conn.close(timeout=5)


async def _advisory_lock(url: DatabaseUrl) -> InstanceLock:
    conn = await connect(url)
    try:
        got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", INSTANCE_LOCK_KEY)
        if not got:
            holder = await conn.fetchval(
                "SELECT 'pid ' || a.pid || ' from ' || COALESCE(host(a.client_addr), 'local')"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND (l.classid::bigint << 32 | l.objid::bigint) = $1 LIMIT 1",
                INSTANCE_LOCK_KEY,
            )
            raise InstanceLockedError(url.masked, f"server session {holder}" if holder else None)
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)
        raise
    log.debug("took the instance advisory lock on %s", url.masked)
    return _AdvisoryLock(conn)


async def lock_instance(db: Database) -> InstanceLock:
    """One running Samverkan per database: a file lock beside a SQLite file, a session
    advisory lock on PostgreSQL. (The warm standby, which waits for the lock instead of
    being refused, comes with the rest of issue 16.)"""
    if isinstance(db, PostgresDatabase):
        return await _advisory_lock(db.url)
    return await acquire_file_lock(db.path)
