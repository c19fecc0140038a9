"""A thin async database handle over aiosqlite.

One connection, WAL, foreign keys, a busy timeout; short statements run on the event
loop, the rest on aiosqlite's thread (`bot.storage.sqlite_calls` says which and why).
Statements use `?` placeholders and portable SQL (`INSERT ... ON CONFLICT`, no SQLite-only
functions) so that a PostgreSQL backend can serve the same code. Writes that belong
together go in `transaction()`.

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
from bot.storage.sqlite_calls import Calls, thread_only
from bot.storage.write_behind import WriteBehind

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
    # From here on a statement on the event loop must not wait for a lock or run a
    # checkpoint; `Calls` waits on the thread instead and checkpoints there.
    await conn.execute("PRAGMA busy_timeout=0")
    await conn.execute("PRAGMA wal_autocheckpoint=0")


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


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
        self._in_tx: asyncio.Task[Any] | None = None
        self._on_commit: list[Callable[[], None]] = []
        self.health = StorageHealth()
        # Where each statement runs (the loop or aiosqlite's thread), and the lock that
        # keeps a transaction's statements together against other tasks' statements.
        self._calls = Calls(conn, self.health)
        self.behind = WriteBehind(self)

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
            # check_same_thread=False: short statements run on the event loop's thread,
            # the rest on aiosqlite's, never both at once (`bot.storage.sqlite_calls`).
            conn = await aiosqlite.connect(target, isolation_level=None, check_same_thread=False)
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

    @property
    def calls(self) -> Calls:
        """Where statements ran (counts for the tests and the benches)."""
        return self._calls

    async def close(self) -> None:
        await self.flush_behind()
        await self._calls.close()
        await self._conn.close()

    async def flush_behind(self) -> None:
        """Write what `behind` holds, if the database takes it now (else it is lost
        with the process, as `bot.storage.write_behind` allows)."""
        try:
            await self.behind.flush()
        except StorageUnavailable:
            log.warning("closing with writes the database did not take (they are redone)")

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
        """Everything inside commits together or not at all. Not re-entrant. Its
        statements run on aiosqlite's thread (`bot.storage.sqlite_calls`)."""
        if self._owns_tx():
            raise RuntimeError("nested transaction")
        calls = self._calls
        async with calls.lock:
            self._in_tx = asyncio.current_task()
            self._on_commit = []
            before = calls.raw.total_changes
            try:
                try:
                    await calls.thread(_begin, wait=True)
                    try:
                        yield self
                        await calls.thread(_commit, wait=False)
                    except BaseException:
                        self._on_commit = []
                        # SQLite takes a transaction back itself on some failures (a
                        # full disk at COMMIT, say): a second ROLLBACK would raise and
                        # hide the first error.
                        await calls.thread(_rollback, wait=False)
                        raise
                except sqlite3.Error as exc:
                    if is_outage(exc):
                        raise self.health.failed(exc) from exc
                    raise
                if calls.raw.total_changes != before:
                    calls.wrote()
                callbacks, self._on_commit = self._on_commit, []
                for callback in callbacks:
                    callback()
            finally:
                self._in_tx = None

    async def _run(self, work: Callable[[sqlite3.Connection], _T], *, may_loop: bool = True) -> _T:
        if self._owns_tx():
            # Inside a transaction its COMMIT says whether the writes went through.
            try:
                return await self._calls.in_transaction(work)
            except sqlite3.Error as exc:
                if is_outage(exc):
                    raise self.health.failed(exc) from exc
                raise
        return await self._calls.run(work, may_loop=may_loop)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql, params)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

        return await self._run(work, may_loop=not thread_only(sql))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for each of `rows`; returns the number of rows changed.
        Always on the thread: outside a transaction each row commits by itself, so the
        batch cannot be cut off and run again."""

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.executemany(sql, rows)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

        return await self._run(work, may_loop=False)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run an INSERT; returns the new row id (None if nothing was inserted)."""

        def work(conn: sqlite3.Connection) -> int | None:
            cursor = conn.execute(sql, params)
            try:
                return cursor.lastrowid if cursor.rowcount else None
            finally:
                cursor.close()

        return await self._run(work)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        def work(conn: sqlite3.Connection) -> Row | None:
            cursor = conn.execute(sql, params)
            try:
                row = cursor.fetchone()
            finally:
                cursor.close()
            return tuple(row) if row is not None else None

        return await self._run(work, may_loop=not thread_only(sql))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        def work(conn: sqlite3.Connection) -> list[Row]:
            cursor = conn.execute(sql, params)
            try:
                rows = cursor.fetchall()
            finally:
                cursor.close()
            return [tuple(r) for r in rows]

        return await self._run(work, may_loop=not thread_only(sql))

    async def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run `statements` in order, all or none: in the caller's transaction, or else
        in one of their own, which on SQLite is one call (with its BEGIN and COMMIT)."""

        def run(conn: sqlite3.Connection) -> list[int]:
            counts = []
            for sql, params in statements:
                cursor = conn.execute(sql, params)
                counts.append(cursor.rowcount)
                cursor.close()
            return counts

        if self._owns_tx():
            return await self._run(run)

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

        return await self._run(alone, may_loop=not any(thread_only(sql) for sql, _ in statements))

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return row[0] if row is not None else None

    async def table_names(self) -> set[str]:
        """The tables the database holds."""
        rows = await self.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows}
