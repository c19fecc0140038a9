"""The one place that picks the engine: `bot.database` a file path (SQLite) or a
`postgresql://` URL (PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.storage import advisory
from bot.storage.database import Database
from bot.storage.instance import InstanceLock
from bot.storage.instance import acquire as acquire_file_lock
from bot.storage.postgres import PostgresDatabase
from bot.storage.target import DatabaseUrl, parse_target

INSTANCE_LOCK_KEY = advisory.INSTANCE_LOCK_KEY

__all__ = [
    "INSTANCE_LOCK_KEY",
    "can_stand_by",
    "lock_instance",
    "open_database",
    "wait_instance",
]


async def open_database(target: str | Path | DatabaseUrl, *, allow_empty: bool = False) -> Database:
    """Open `target`: a SQLite file (or `:memory:`), or a PostgreSQL URL."""
    where = parse_target(target)
    if isinstance(where, DatabaseUrl):
        return await PostgresDatabase.open(where)
    return await Database.open(where, allow_empty=allow_empty)


async def lock_instance(db: Database) -> InstanceLock:
    """One running Samverkan per database: a file lock beside a SQLite file, a session
    advisory lock on PostgreSQL. `InstanceLockedError` when another instance has it."""
    if isinstance(db, PostgresDatabase):
        return await advisory.take(db.url)
    return await acquire_file_lock(db.path)


def can_stand_by(db: Database) -> bool:
    """Whether a second instance on `db` waits as a warm standby rather than being
    refused: on PostgreSQL, which two machines can share. (A SQLite file is one
    machine's; a second process beside it would only wait for the same disk.)"""
    return isinstance(db, PostgresDatabase)


async def wait_instance(db: Database, stop: asyncio.Event) -> InstanceLock | None:
    """The instance lock once its holder is gone, or None if `stop` is set first."""
    assert isinstance(db, PostgresDatabase), "only PostgreSQL has a standby"
    return await advisory.wait(db.url, stop)
