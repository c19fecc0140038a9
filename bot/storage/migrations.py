"""Numbered migrations per namespace (core, and each plugin), one transaction each.

Each namespace keeps its version in `schema_version`. A database whose version is newer
than the code knows is refused with a clear message, instead of being used by code that
does not understand it. `refuse_newer` checks every namespace before any migration runs:
a database refused for one namespace is left as it was in all the others (migrating the
core first would leave it half upgraded, useless to the older and the newer code alike).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from bot.storage.database import Database

if TYPE_CHECKING:
    from bot.lifetimes import Lifetime

log = logging.getLogger(__name__)

MigrationFn = Callable[[Database], Awaitable[None]]

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " namespace TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class SchemaTooNewError(RuntimeError):
    def __init__(self, namespace: str, found: int, known: int, path: str) -> None:
        super().__init__(
            f"the database {path} has schema version {found} for {namespace!r}, but this "
            f"version of Samverkan knows only up to {known}: upgrade Samverkan, or restore "
            "a backup made by this version"
        )
        self.namespace = namespace
        self.found = found
        self.known = known


class Migrations:
    """`migrations = Migrations("bridge")`, then `@migrations.step(1)` on async functions."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._steps: dict[int, MigrationFn] = {}
        # How long each of the namespace's tables keeps its rows (bot/lifetimes.py),
        # declared beside the migrations that create them.
        self.lifetimes: list[Lifetime] = []

    def keep(self, *lifetimes: Lifetime) -> None:
        self.lifetimes.extend(lifetimes)

    def step(self, version: int) -> Callable[[MigrationFn], MigrationFn]:
        def register(fn: MigrationFn) -> MigrationFn:
            if version in self._steps:
                raise ValueError(f"{self.namespace}: migration {version} defined twice")
            self._steps[version] = fn
            return fn

        return register

    @property
    def latest(self) -> int:
        return max(self._steps, default=0)

    def _check_numbering(self) -> None:
        if sorted(self._steps) != list(range(1, self.latest + 1)):
            raise ValueError(f"{self.namespace}: migrations must be numbered 1, 2, 3, ...")

    async def upgrade(self, db: Database, *, to: int | None = None) -> int:
        """Bring the namespace to the latest version (or to version `to`, which
        `migrate-db` uses to build a copy at its source's versions); returns the
        version reached."""
        self._check_numbering()
        goal = self.latest if to is None else min(to, self.latest)
        await db.execute(_VERSION_TABLE)
        current = await db.fetchval(
            "SELECT version FROM schema_version WHERE namespace = ?", (self.namespace,)
        )
        current = int(current or 0)
        if current > self.latest:
            raise SchemaTooNewError(self.namespace, current, self.latest, db.path)
        for version in range(current + 1, goal + 1):
            async with db.transaction():
                await self._steps[version](db)
                await db.execute(
                    "INSERT INTO schema_version (namespace, version) VALUES (?, ?) "
                    "ON CONFLICT (namespace) DO UPDATE SET version = excluded.version",
                    (self.namespace, version),
                )
            log.info("migrated %s to schema version %d", self.namespace, version)
        return max(current, goal)


async def refuse_newer(db: Database, namespaces: Iterable[Migrations]) -> None:
    """Raise SchemaTooNewError for the first namespace whose stored version is newer
    than its code, before any of them is migrated. (Where the table of versions is
    missing, creating it changes nothing any code reads.)"""
    await db.execute(_VERSION_TABLE)
    stored = {
        str(ns): int(v)
        for ns, v in await db.fetchall("SELECT namespace, version FROM schema_version")
    }
    for migrations in namespaces:
        found = stored.get(migrations.namespace, 0)
        if found > migrations.latest:
            raise SchemaTooNewError(migrations.namespace, found, migrations.latest, db.path)
