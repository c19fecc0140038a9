"""A database with one namespace newer than the code is refused before any namespace is
migrated (issue 14: the core's migration used to run first, leaving a database that
neither the old code nor the new one could use). Core, people and plugins alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import App
from bot.plugin import Plugin
from bot.settings import RootSettings
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.migrations import Migrations, SchemaTooNewError
from bot.storage.people_schema import people_migrations
from tests.support import RecordingAdapter, settings_from


def versioned(namespace: str, steps: int) -> Migrations:
    """`steps` migrations for `namespace`, each making a table named after it."""
    migrations = Migrations(namespace)
    for version in range(1, steps + 1):

        async def make(db: Database, version: int = version) -> None:
            await db.execute(f"CREATE TABLE {namespace}_{version} (x INTEGER)")

        migrations.step(version)(make)
    return migrations


def plugin(namespace: str, steps: int) -> type[Plugin]:
    attributes = {"name": namespace, "migrations": versioned(namespace, steps)}
    return type(f"Plugin_{namespace}_{steps}", (Plugin,), attributes)


async def start(settings: RootSettings, classes: list[type[Plugin]]) -> None:
    app = App(settings, classes, adapters={"console": RecordingAdapter()})
    try:
        await app.start()
    finally:
        await app.stop()


async def state(path: Path) -> tuple[dict[str, int], set[str]]:
    db = await Database.open(path)
    try:
        rows = await db.fetchall("SELECT namespace, version FROM schema_version")
        versions: dict[str, int] = {str(ns): int(v) for ns, v in rows}
        tables = {
            r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")
        }
    finally:
        await db.close()
    return versions, tables


async def set_versions(path: Path, versions: dict[str, int]) -> None:
    db = await Database.open(path)
    try:
        for namespace, version in versions.items():
            await db.execute(
                "UPDATE schema_version SET version = ? WHERE namespace = ?", (version, namespace)
            )
    finally:
        await db.close()


@pytest.mark.parametrize("ahead", ["core", "people", "later"])
async def test_one_namespace_ahead_stops_every_migration(tmp_path: Path, ahead: str) -> None:
    settings = settings_from(tmp_path, "[console]\nenabled = true\n")
    path = tmp_path / "bot.db"  # settings_from puts it there
    # A first run with the older code of two plugins: "early" loads first, "later" last.
    await start(settings, [plugin("early", 1), plugin("later", 1)])
    # The code is now a step further for the core and "early" (each one behind), and
    # the database says `ahead` is a step further than its code knows.
    behind = {"core": core_migrations.latest - 1, "early": 1}
    known = {"core": core_migrations.latest, "people": people_migrations.latest, "later": 1}
    await set_versions(path, {**behind, ahead: known[ahead] + 1})
    before = await state(path)
    assert before[0][ahead] == known[ahead] + 1

    with pytest.raises(SchemaTooNewError) as caught:
        await start(settings, [plugin("early", 2), plugin("later", 1)])
    assert caught.value.namespace == ahead
    assert caught.value.found == known[ahead] + 1 and caught.value.known == known[ahead]
    # Nothing migrated: not the core, not the plugin loaded before the one ahead.
    assert await state(path) == before
    assert "early_2" not in before[1]


async def test_without_a_namespace_ahead_those_behind_are_migrated(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "[console]\nenabled = true\n")
    path = tmp_path / "bot.db"  # settings_from puts it there
    await start(settings, [plugin("early", 1), plugin("later", 1)])
    await start(settings, [plugin("early", 2), plugin("later", 1)])
    versions, tables = await state(path)
    assert versions["early"] == 2 and "early_2" in tables
    assert versions["core"] == core_migrations.latest
