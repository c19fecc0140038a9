"""The database engines every storage test runs on: a SQLite file and a database of
its own on the PostgreSQL server of the machine (created for the test, dropped after).

`SAMVERKAN_TEST_POSTGRES` names the server (default: the trust-authenticated one on
127.0.0.1:5432, database `test`, which is only used to create and drop the others).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from bot.storage.target import DatabaseUrl

ENGINES: Final = ("sqlite", "postgresql")
SERVER: Final = os.environ.get(
    "SAMVERKAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)

Target = Path | DatabaseUrl


async def _admin() -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await asyncpg.connect(SERVER, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        # Never a skip: the PostgreSQL suites are part of `make test`, in CI and outside.
        ci = " (CI=true)" if os.environ.get("CI") == "true" else ""
        pytest.fail(f"PostgreSQL is required for the storage tests{ci}: {SERVER}: {exc}")
    return conn


@asynccontextmanager
async def postgres_database(prefix: str = "samverkan_test") -> AsyncIterator[DatabaseUrl]:
    """A new empty database on the test server, dropped (with its connections) after."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield DatabaseUrl(SERVER).with_database(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def database_target(engine: str, tmp_path: Path) -> AsyncIterator[Target]:
    """Where a test's database lives on `engine`; open it with `open_database`."""
    if engine == "sqlite":
        yield tmp_path / "test.db"
        return
    async with postgres_database() as url:
        yield url
