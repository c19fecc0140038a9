"""`samverkan migrate-db --from data/samverkan.db --to postgresql://...`: a district's
SQLite database copied to PostgreSQL.

The target must be empty (no table at all): copying into a database that holds a
district's data would mix two histories. The schema is built there by the same numbered
migrations, each namespace up to the version the source is at, then every table the
source holds is copied (parents before the tables that refer to them, in batches) and
the versions recorded: the first `samverkan run` on the copy migrates it further as it
would have the file. If the copy fails, the tables made in the target are dropped again,
so that it can be tried again. Stop the bot first: rows written during the copy are not
in it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg

from bot.storage.database import Database
from bot.storage.migrations import Migrations
from bot.storage.postgres import PostgresDatabase, connect
from bot.storage.target import DatabaseUrl

log = logging.getLogger(__name__)

BATCH: Final = 1000
_SKIP: Final = frozenset({"schema_version", "sqlite_sequence", "sqlite_stat1"})


class MigrateRefused(Exception):
    """The copy cannot start: one line, for exit code 2."""


@dataclass(frozen=True, slots=True)
class Copied:
    tables: dict[str, int]
    versions: dict[str, int]


def dependency_order(tables: Iterable[str], parents: dict[str, set[str]]) -> list[str]:
    """`tables` sorted so that a table comes after the tables it refers to (by name
    otherwise, so that the order is the same every time)."""
    left = sorted(set(tables))
    done: list[str] = []
    while left:
        ready = [t for t in left if not (parents.get(t, set()) & set(left)) - {t}]
        if not ready:  # a cycle: no order satisfies it; copy the rest as they come
            ready = left[:1]
        done.extend(ready)
        left = [t for t in left if t not in ready]
    return done


async def _sqlite_parents(db: Database, tables: Sequence[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table in tables:
        rows = await db.fetchall(f'SELECT "table" FROM pragma_foreign_key_list("{table}")')
        found[table] = {str(r[0]) for r in rows}
    return found


async def _columns(db: Database, table: str) -> list[str]:
    return [str(r[0]) for r in await db.fetchall(f'SELECT name FROM pragma_table_info("{table}")')]


def _converter(pg_type: str) -> Any:
    """SQLite keeps what it was given; PostgreSQL's COPY wants its column's type."""
    if pg_type in {"bigint", "integer", "smallint"}:
        return lambda v: int(v) if isinstance(v, float | str) else v
    if pg_type in {"double precision", "real", "numeric"}:
        return lambda v: float(v) if isinstance(v, int | str) else v
    if pg_type == "text":
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    return lambda v: v


async def _copy_table(
    source: Database, conn: asyncpg.Connection, table: str, columns: list[str]
) -> int:
    types = {
        str(r[0]): str(r[1])
        for r in await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
    }
    missing = [c for c in columns if c not in types]
    if missing:
        raise MigrateRefused(f"table {table}: the target has no column {missing[0]}")
    convert = [_converter(str(types[c])) for c in columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    last, total = None, 0
    while True:
        # By rowid: a keyset, so that each batch is read in the time of its own size.
        rows = await source.fetchall(
            f'SELECT rowid, {quoted} FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT ?',
            (last if last is not None else -(2**63), BATCH),
        )
        if not rows:
            return total
        records = [tuple(f(v) for f, v in zip(convert, row[1:], strict=True)) for row in rows]
        await conn.copy_records_to_table(table, records=records, columns=columns)
        total += len(rows)
        last = rows[-1][0]


async def _advance_identities(conn: asyncpg.Connection) -> None:
    """Rows copied with their ids leave the identity sequences behind: move each to the
    largest id, so that the next insert takes the next one."""
    found = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for table, column in found:
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'),"
            f' (SELECT MAX("{column}") FROM "{table}"))'
            f' WHERE EXISTS (SELECT 1 FROM "{table}")'
        )


async def migrate(source_path: Path, url: DatabaseUrl, namespaces: Sequence[Migrations]) -> Copied:
    """Copy the SQLite database at `source_path` (checked to be a file by the caller)
    into the empty PostgreSQL database at `url`."""
    source = await Database.open(source_path)
    try:
        target = PostgresDatabase(await connect(url), url)
    except BaseException:
        await source.close()
        raise
    try:
        existing = await target.table_names()
        if existing:
            raise MigrateRefused(
                f"--to {url.masked}: the target database is not empty ({len(existing)} "
                "tables): migrate-db copies only into an empty database"
            )
        versions = (
            {
                str(ns): int(v)
                for ns, v in await source.fetchall("SELECT namespace, version FROM schema_version")
            }
            if "schema_version" in await source.table_names()
            else {}
        )
        known = {m.namespace: m for m in namespaces}
        for namespace, version in versions.items():
            if namespace not in known:
                raise MigrateRefused(f"--from {source_path}: namespace {namespace!r} unknown here")
            if version > known[namespace].latest:
                raise MigrateRefused(
                    f"--from {source_path}: {namespace!r} is at schema version {version}, "
                    f"newer than this Samverkan knows ({known[namespace].latest})"
                )
        try:
            return await _copy(source, target, url, namespaces, versions)
        except BaseException:
            await _drop_all(url)
            raise
    finally:
        await target.close()
        await source.close()


async def _copy(
    source: Database,
    target: PostgresDatabase,
    url: DatabaseUrl,
    namespaces: Sequence[Migrations],
    versions: dict[str, int],
) -> Copied:
    for migrations in namespaces:
        if migrations.namespace in versions:
            await migrations.upgrade(target, to=versions[migrations.namespace])
    tables = [t for t in await source.table_names() if t not in _SKIP]
    order = dependency_order(tables, await _sqlite_parents(source, tables))
    counts: dict[str, int] = {}
    conn = await connect(url)
    try:
        async with conn.transaction():
            for table in order:
                counts[table] = await _copy_table(
                    source, conn, table, await _columns(source, table)
                )
                log.info("copied %s: %d rows", table, counts[table])
            await _advance_identities(conn)
    finally:
        await conn.close()
    return Copied(counts, versions)


async def _drop_all(url: DatabaseUrl) -> None:
    """Leave the target as empty as it was found (it had no table at all)."""
    with contextlib.suppress(Exception):
        conn = await connect(url)
        try:
            names = await conn.fetch(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
            for (name,) in names:
                await conn.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
