"""A thin async database handle over aiosqlite.

One connection, WAL, foreign keys, a busy timeout. Statements use `?` placeholders and
portable SQL (`INSERT ... ON CONFLICT`, no SQLite-only functions) so that a PostgreSQL
backend can serve the same code. Writes that belong together go in `transaction()`.

A write that fails because the disk is full or failing raises `StorageUnavailable`
(see `bot.storage.health`), never a bare `sqlite3.OperationalError`: callers hold their
work and do it again later, and `health` says whether writes succeed now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

import aiosqlite

from bot.storage.checks import DatabaseOpenError, check_before_open, os_reason, sqlite_reason
from bot.storage.health import StorageHealth, StorageUnavailable, is_outage

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
_T = TypeVar("_T")

__all__ = ["Database", "DatabaseOpenError", "Row", "StorageUnavailable", "like_prefix"]


# `PRAGMA quick_check` reads every page: 0.12 s for 100 MB from the page cache, 1.8 s
# from disk (measured here). Above this size the deeper check is left to SQLite's own
# reads, so that a large database does not hold up every start.
QUICK_CHECK_MAX_BYTES: Final = 128 * 2**20


async def _prepare(conn: aiosqlite.Connection, target: str, size: int) -> None:
    """Settings and checks of a new connection (to a file of `size` bytes); raises what
    SQLite reports."""
    await conn.execute("PRAGMA busy_timeout=5000")
    if size <= QUICK_CHECK_MAX_BYTES:
        cursor = await conn.execute("PRAGMA quick_check")
        found = [str(r[0]) for r in await cursor.fetchall()]
        await cursor.close()
        if found != ["ok"]:
            log.debug("quick check of %s: %s", target, found[:5])
            raise DatabaseOpenError(target, "is damaged (SQLite's quick check found errors)")
    else:
        log.info("database %s is %d MB: skipping the quick check", target, size >> 20)
        await conn.execute("SELECT COUNT(*) FROM sqlite_master")
    cursor = await conn.execute("PRAGMA journal_mode=WAL")
    mode = await cursor.fetchone()
    await cursor.close()
    if target != ":memory:" and (mode is None or str(mode[0]).lower() != "wal"):
        log.warning("database %s is not in WAL mode (%s)", target, mode[0] if mode else None)
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA synchronous=NORMAL")
    # A database that can be read but not written fails its first write, perhaps hours
    # later: find out now (a write lock taken and given back, nothing written).
    await conn.execute("BEGIN IMMEDIATE")
    await conn.execute("ROLLBACK")


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with `prefix`, taken literally; use it
    with `ESCAPE '\\'`."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Database:
    """The SQLite database; `bot.storage.postgres.PostgresDatabase` is the same on
    PostgreSQL (open either with `bot.storage.engines.open_database`)."""

    engine: ClassVar[str] = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        # aiosqlite serialises statements on its thread; this lock keeps a transaction's
        # statements together against other tasks' statements.
        self._lock = asyncio.Lock()
        self._in_tx: asyncio.Task[Any] | None = None
        self._on_commit: list[Callable[[], None]] = []
        self.health = StorageHealth()

    @classmethod
    async def open(cls, path: str | Path, *, allow_empty: bool = False) -> Database:
        """Open (or create) the database; `DatabaseOpenError` names what is wrong with a
        file that cannot serve, and no connection or thread is left behind then.

        An existing empty file is refused unless `allow_empty`: SQLite would take it for
        a new database, and an empty file where a database was is a lost history more
        often than a fresh start."""
        target = str(path)
        size = 0
        if target != ":memory:":
            size = check_before_open(Path(target), allow_empty=allow_empty)
        try:
            conn = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseOpenError(target, sqlite_reason(exc)) from None
        try:
            await _prepare(conn, target, size)
        except BaseException as exc:
            # aiosqlite's worker thread is not a daemon: a connection left open here
            # keeps the process alive after the error has been reported.
            with contextlib.suppress(Exception):
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise DatabaseOpenError(target, sqlite_reason(exc)) from None
            if isinstance(exc, OSError):
                raise DatabaseOpenError(target, f"cannot be opened ({os_reason(exc)})") from None
            raise
        log.debug("opened database %s", target)
        return cls(conn, target)

    async def close(self) -> None:
        await self._conn.close()

    def _owns_tx(self) -> bool:
        return self._in_tx is not None and self._in_tx is asyncio.current_task()

    def in_transaction(self) -> bool:
        """Whether the calling task is inside `transaction()`."""
        return self._owns_tx()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the calling task's transaction has committed (dropped if
        it rolls back); at once outside a transaction. Callbacks run in order, before
        any other task's statement, so what they announce is what the database holds."""
        if self._owns_tx():
            self._on_commit.append(callback)
        else:
            callback()

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
                    await self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self
                        await self._conn.execute("COMMIT")
                    except BaseException:
                        self._on_commit = []
                        # SQLite takes a transaction back itself on some failures (a
                        # full disk at COMMIT, say): a second ROLLBACK would raise and
                        # hide the first error.
                        if self._conn.in_transaction:
                            await self._conn.execute("ROLLBACK")
                        raise
                callbacks, self._on_commit = self._on_commit, []
                for callback in callbacks:
                    callback()
            finally:
                self._in_tx = None

    @asynccontextmanager
    async def _outages(self) -> AsyncIterator[None]:
        """A full or failing disk becomes `StorageUnavailable`; a write that goes
        through tells `health` that writing works (again)."""
        before = self._conn.total_changes
        try:
            yield
        except sqlite3.Error as exc:
            if is_outage(exc):
                raise self.health.failed(exc) from exc
            raise
        if self._conn.total_changes != before:
            self.health.wrote()

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[None]:
        if self._owns_tx():
            # Inside a transaction its COMMIT says whether the writes went through.
            try:
                yield
            except sqlite3.Error as exc:
                if is_outage(exc):
                    raise self.health.failed(exc) from exc
                raise
        else:
            async with self._lock, self._outages():
                yield

    async def _on_thread(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` with the sqlite3 connection on aiosqlite's thread, in one trip.

        aiosqlite's cursor API takes a trip per call (execute, fetch, close), and each
        trip wakes its thread and then the event loop: two or three per statement were
        most of a message's storage cost. The private `_execute` is the queue those
        calls go through; the connection is touched only on that thread, as before."""
        conn = self._conn

        def run() -> _T:
            return work(conn._conn)

        result: _T = await conn._execute(run)  # type: ignore[no-untyped-call]
        return result

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql, params)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

        async with self._statement():
            return await self._on_thread(work)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for each of `rows`; returns the number of rows changed."""

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.executemany(sql, rows)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

        async with self._statement():
            return await self._on_thread(work)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run an INSERT; returns the new row id (None if nothing was inserted)."""

        def work(conn: sqlite3.Connection) -> int | None:
            cursor = conn.execute(sql, params)
            try:
                return cursor.lastrowid if cursor.rowcount else None
            finally:
                cursor.close()

        async with self._statement():
            return await self._on_thread(work)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        def work(conn: sqlite3.Connection) -> Row | None:
            cursor = conn.execute(sql, params)
            try:
                row = cursor.fetchone()
            finally:
                cursor.close()
            return tuple(row) if row is not None else None

        async with self._statement():
            return await self._on_thread(work)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        def work(conn: sqlite3.Connection) -> list[Row]:
            cursor = conn.execute(sql, params)
            try:
                rows = cursor.fetchall()
            finally:
                cursor.close()
            return [tuple(r) for r in rows]

        async with self._statement():
            return await self._on_thread(work)

    async def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run `statements` in order, all or none: in the caller's transaction, or else
        in one of their own; returns each one's count of changed rows. On SQLite the
        whole batch (with its BEGIN and COMMIT) is one trip to aiosqlite's thread."""

        def run(conn: sqlite3.Connection) -> list[int]:
            counts = []
            for sql, params in statements:
                cursor = conn.execute(sql, params)
                counts.append(cursor.rowcount)
                cursor.close()
            return counts

        if self._owns_tx():
            async with self._statement():
                return await self._on_thread(run)

        def alone(conn: sqlite3.Connection) -> list[int]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                counts = run(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have taken it back itself
                    conn.execute("ROLLBACK")
                raise
            return counts

        async with self._statement():
            return await self._on_thread(alone)

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return row[0] if row is not None else None

    async def table_names(self) -> set[str]:
        """The tables the database holds."""
        rows = await self.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows}
