"""Numbered migrations per namespace (core, and each plugin), one transaction each.

Each namespace keeps its version in `schema_version`. A database whose version is newer
than the code knows is refused with a clear message, instead of being used by code that
does not understand it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.storage.database import Database

log = logging.getLogger(__name__)

MigrationFn = Callable[[Database], Awaitable[None]]


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

    async def upgrade(self, db: Database) -> int:
        """Bring the namespace to the latest version; returns the version reached."""
        if sorted(self._steps) != list(range(1, self.latest + 1)):
            raise ValueError(f"{self.namespace}: migrations must be numbered 1, 2, 3, ...")
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " namespace TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        current = await db.fetchval(
            "SELECT version FROM schema_version WHERE namespace = ?", (self.namespace,)
        )
        current = int(current or 0)
        if current > self.latest:
            raise SchemaTooNewError(self.namespace, current, self.latest, db.path)
        for version in range(current + 1, self.latest + 1):
            async with db.transaction():
                await self._steps[version](db)
                await db.execute(
                    "INSERT INTO schema_version (namespace, version) VALUES (?, ?) "
                    "ON CONFLICT (namespace) DO UPDATE SET version = excluded.version",
                    (self.namespace, version),
                )
            log.info("migrated %s to schema version %d", self.namespace, version)
        return self.latest
