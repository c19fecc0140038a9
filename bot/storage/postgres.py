"""The database on a PostgreSQL server, through asyncpg, with `Database`'s interface.

The code's SQL is written once, for both engines (see `bot.storage.pg_sql` for what is
translated). The semantics are SQLite's, kept on purpose: one connection, one task's
statements at a time, a transaction holding the connection from BEGIN to COMMIT, and
`after_commit` callbacks run before any other task's statement. A district's traffic
is a few statements a second; one connection keeps the ordering the callers rely on.

A lost connection is an outage like SQLite's full disk: the statement raises
`StorageUnavailable` (callers hold their work and do it again), `health` says so, and
the next statement connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Final

import asyncpg

from bot.storage.checks import DatabaseOpenError
from bot.storage.database import Database, Row
from bot.storage.health import StorageHealth
from bot.storage.pg_sql import insert_table, translate
from bot.storage.target import DatabaseUrl, parse_target
from bot.storage.write_behind import WriteBehind

log = logging.getLogger(__name__)

# The server gone, the connection cut, the server's disk full (class 53) or the server
# shutting down (class 57): the write was not kept and can be done again later. A query
# sent after the server's FATAL came in but before the socket closed gets
# InternalClientError ("another operation is in progress"): a cut connection too.
_OUTAGES: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
)
CONNECT_TIMEOUT: Final = 10.0

__all__ = ["PostgresDatabase", "connect"]


def _value(value: Any) -> Any:
    # SUM and AVG of integers are NUMERIC on PostgreSQL; SQLite gives int or float.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _row(record: asyncpg.Record) -> Row:
    return tuple(_value(v) for v in record.values())


def _count(status: str) -> int:
    """Rows changed, from a command tag ("UPDATE 3", "INSERT 0 1"); -1 for DDL, as
    SQLite's cursor says."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


async def connect(url: DatabaseUrl) -> asyncpg.Connection:
    """One connection; `DatabaseOpenError` naming the masked URL and the reason."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(
            url.dsn(),
            timeout=CONNECT_TIMEOUT,
            statement_cache_size=1024,
            server_settings={"application_name": "samverkan"},
        )
    except asyncpg.InvalidCatalogNameError:
        raise DatabaseOpenError(url.masked, "does not exist (create it first)") from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise DatabaseOpenError(url.masked, f"refused the login ({exc})") from None
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DatabaseOpenError(url.masked, f"cannot be reached ({reason})") from None
    return conn


class PostgresDatabase(Database):
    """`Database` on PostgreSQL. A subclass so that every caller typed `Database`
    takes it; it shares the transaction bookkeeping (`in_transaction`, `after_commit`)
    and overrides every method that touches the engine."""

    engine: ClassVar[str] = "postgresql"

    def __init__(self, conn: asyncpg.Connection, url: DatabaseUrl) -> None:
        # Not Database.__init__: that one wraps an aiosqlite connection.
        self._pg: asyncpg.Connection | None = conn
        self.url = url
        self.path = url.masked
        self._lock = asyncio.Lock()
        self._in_tx = None
        self._on_commit = []
        self.health = StorageHealth()
        self.behind = WriteBehind(self)
        # Per table, its identity column (what `insert` returns), or None.
        self._identity: dict[str, str | None] = {}

    @classmethod
    async def open(cls, path: str | Path | DatabaseUrl, *, allow_empty: bool = False) -> Database:
        """Connect to the database at the URL `path`. (`allow_empty` is SQLite's: an
        empty PostgreSQL database is simply a new one.)"""
        target = parse_target(path)
        if not isinstance(target, DatabaseUrl):
            raise DatabaseOpenError(str(target), "is not a postgresql:// URL")
        conn = await connect(target)
        log.info("connected to database %s", target.masked)
        return cls(conn, target)

    async def close(self) -> None:
        await self.flush_behind()
        conn, self._pg = self._pg, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*_OUTAGES):
                await conn.close(timeout=5)

    async def _connection(self) -> asyncpg.Connection:
        """The connection, connected again if it was lost."""
        if self._pg is not None and not self._pg.is_closed():
            return self._pg
        try:
            self._pg = await connect(self.url)
        except DatabaseOpenError as exc:
            raise self.health.failed(exc) from exc
        log.warning("connected again to database %s", self.path)
        return self._pg

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """Everything inside commits together or not at all. Not re-entrant."""
        if self._owns_tx():
            raise RuntimeError("nested transaction")
        async with self._lock:
            self._in_tx = asyncio.current_task()
            self._on_commit = []
            try:
                async with self._outages():
                    conn = await self._connection()
                    tx = conn.transaction()
                    await tx.start()
                    try:
                        yield self
                        await tx.commit()
                    except BaseException:
                        self._on_commit = []
                        # A cut connection has taken the transaction with it; a second
                        # error here would hide the first.
                        if not conn.is_closed():
                            with contextlib.suppress(*_OUTAGES, asyncpg.PostgresError):
                                await tx.rollback()
                        raise
                callbacks, self._on_commit = self._on_commit, []
                for callback in callbacks:
                    callback()
            finally:
                self._in_tx = None

    @asynccontextmanager
    async def _outages(self) -> AsyncIterator[None]:
        try:
            yield
        except _OUTAGES as exc:
            raise self.health.failed(exc) from exc
        self.health.wrote()

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[None]:
        if self._owns_tx():
            try:
                yield
            except _OUTAGES as exc:
                raise self.health.failed(exc) from exc
        else:
            async with self._lock, self._outages():
                yield

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        async with self._statement():
            status = await (await self._connection()).execute(translate(sql), *params)
            if status.startswith(("CREATE", "ALTER", "DROP")):
                self._identity.clear()
            return _count(status)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for each of `rows`; returns the number of rows changed."""
        batch = [tuple(params) for params in rows]
        if not batch:
            return 0
        # One pipelined batch and one commit (asyncpg's own, all or none), not a round
        # trip and a commit per row: arming 100,000 reminders added 37 s to a start. Every
        # caller's statement is an INSERT, UPDATE or DELETE, so `RETURNING 1` gives a
        # row for each one changed, where asyncpg's executemany would give no count.
        query = f"{translate(sql)} RETURNING 1"
        async with self._statement():
            changed = await (await self._connection()).fetchmany(query, batch)
        return len(changed)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run an INSERT; returns the new row's id: its identity column (`INTEGER
        PRIMARY KEY` in the migrations), None if nothing was inserted or the table has
        none."""
        async with self._statement():
            conn = await self._connection()
            table = insert_table(sql)
            column = await self._identity_column(conn, table) if table else None
            if column is None:
                await conn.execute(translate(sql), *params)
                return None
            value = await conn.fetchval(f"{translate(sql)} RETURNING {column}", *params)
            return int(value) if value is not None else None

    async def _identity_column(self, conn: asyncpg.Connection, table: str) -> str | None:
        if table not in self._identity:
            self._identity[table] = await conn.fetchval(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = $1"
                " AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')",
                table,
            )
        return self._identity[table]

    async def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run `statements` in order, all or none; each one's count of changed rows."""
        if self._owns_tx():
            return [await self.execute(sql, params) for sql, params in statements]
        async with self.transaction():
            return [await self.execute(sql, params) for sql, params in statements]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._statement():
            record = await (await self._connection()).fetchrow(translate(sql), *params)
            return _row(record) if record is not None else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._statement():
            records = await (await self._connection()).fetch(translate(sql), *params)
            return [_row(r) for r in records]

    async def table_names(self) -> set[str]:
        rows = await self.fetchall(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        return {str(r[0]) for r in rows}
