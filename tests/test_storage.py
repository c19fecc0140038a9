from __future__ import annotations

from pathlib import Path

import pytest

from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.migrations import Migrations, SchemaTooNewError


async def test_upgrade_from_empty_to_latest(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "m.db")
    assert await core_migrations.upgrade(db) == core_migrations.latest
    tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"outbox", "schedule", "inbound_seen", "adapter_state", "schema_version"} <= tables
    assert await db.fetchval("PRAGMA journal_mode") == "wal"
    assert await db.fetchval("PRAGMA foreign_keys") == 1
    # Upgrading again is a no-op.
    assert await core_migrations.upgrade(db) == core_migrations.latest
    await db.close()


async def test_namespaces_are_independent_and_steps_run_once(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "m.db")
    calls: list[int] = []
    plugin = Migrations("demo")

    @plugin.step(1)
    async def one(db: Database) -> None:
        calls.append(1)
        await db.execute("CREATE TABLE demo (id INTEGER PRIMARY KEY, name TEXT)")

    await plugin.upgrade(db)

    @plugin.step(2)
    async def two(db: Database) -> None:
        calls.append(2)
        await db.execute("ALTER TABLE demo ADD COLUMN extra TEXT")

    await plugin.upgrade(db)
    await core_migrations.upgrade(db)
    assert calls == [1, 2]
    rows = await db.fetchall("SELECT namespace, version FROM schema_version ORDER BY namespace")
    assert rows == [("core", core_migrations.latest), ("demo", 2)]
    await db.close()


async def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "m.db")
    broken = Migrations("broken")

    @broken.step(1)
    async def one(db: Database) -> None:
        await db.execute("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await broken.upgrade(db)
    tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in tables
    assert await db.fetchval("SELECT version FROM schema_version WHERE namespace='broken'") is None
    await db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "m.db")
    await core_migrations.upgrade(db)
    await db.execute("UPDATE schema_version SET version = 99 WHERE namespace = 'core'")
    with pytest.raises(SchemaTooNewError, match="version 99") as caught:
        await core_migrations.upgrade(db)
    assert "upgrade Samverkan" in str(caught.value)
    await db.close()


async def test_transaction_is_atomic(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "m.db")
    await db.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(ValueError):
        async with db.transaction():
            await db.execute("INSERT INTO t VALUES (1)")
            raise ValueError("abort")
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 0
    await db.close()


async def test_adapter_state_prefix_delete_is_literal(tmp_path: Path) -> None:
    from bot.storage.state import AdapterState

    db = await Database.open(tmp_path / "m.db")
    await core_migrations.upgrade(db)
    state = AdapterState(db, "discord")
    other = AdapterState(db, "matrix")
    for key in ("whsend:a_1:0", "whsend:a_1:1", "whsend:aX1:0", "webhook:5"):
        await state.set(key, "v")
    await other.set("whsend:a_1:0", "v")
    assert await state.delete_prefix("whsend:a_1:") == 2
    assert await state.get("whsend:aX1:0") == "v"  # "_" is not a wildcard
    assert await state.get("webhook:5") == "v"
    assert await other.get("whsend:a_1:0") == "v"
    await db.close()
