"""The instance lock on PostgreSQL: a session advisory lock, taken at once or waited for
(the warm standby), and watched while held (fencing, `bot.fence`).

The lock lives on a connection of its own that does nothing else, so that no long
statement of the bot's can keep it alive after the process is gone (PITFALLS.md). The
server drops it when that connection closes, however the process ends; the server's
TCP keepalives are set short on it, so that a holder cut off by the network loses it in
seconds rather than the two hours of the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

import asyncpg

from bot.fence import CHECK_EVERY, Fence
from bot.storage.instance import InstanceLockedError
from bot.storage.postgres import connect
from bot.storage.target import DatabaseUrl

log = logging.getLogger(__name__)

# The session advisory lock of "one Samverkan per database" (advisory locks are scoped
# to their database: two districts on one server do not meet). Any fixed 64-bit number
# would do; this one is "samverka" in ASCII.
INSTANCE_LOCK_KEY: Final = 0x73616D7665726B61
# The server's side of the lock's connection: a peer silent for 5 s is probed each
# second and dropped after three unanswered probes.
_KEEPALIVES: Final = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 1",
    "SET tcp_keepalives_count = 3",
)
# InternalClientError: a query sent between a cut's FATAL and the socket's close.
_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
_HOLDER: Final = (
    "SELECT 'pid ' || a.pid || ' from ' || COALESCE(host(a.client_addr), 'local')"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND (l.classid::bigint << 32 | l.objid::bigint) = $1 LIMIT 1"
)

__all__ = ["INSTANCE_LOCK_KEY", "AdvisoryLock", "take", "wait"]


class AdvisoryLock:
    """The held lock, `taken_at` on the monotonic clock."""

    def __init__(self, conn: asyncpg.Connection, url: DatabaseUrl, taken_at: float) -> None:
        self._conn: asyncpg.Connection | None = conn
        self.url = url
        self.taken_at = taken_at

    def hold(self, fence: Fence) -> None:
        """The fence leased from the moment the lock was taken: closed for a lease
        and a margin (the previous holder's), then open while confirmed."""
        fence.leased(self.taken_at)

    async def watch(self, fence: Fence, on_lost: Callable[[str], None]) -> None:
        """Confirm the lock three times a lease on its connection; once it is
        gone or cannot be confirmed within the lease, close the fence and call
        `on_lost` with the reason (once), then return."""
        while True:
            conn = self._conn
            if conn is None:
                return  # released
            asked = time.monotonic()
            reason: str | None = None
            try:
                await conn.fetchval("SELECT 1", timeout=max(0.2, fence.lease - fence.check_every))
                fence.confirmed(asked)
            except asyncio.CancelledError:
                raise
            except _ERRORS as exc:
                if conn.is_closed() or not isinstance(exc, TimeoutError):
                    reason = f"the lock's database connection is gone ({type(exc).__name__})"
            if reason is None and fence.expired():
                reason = "the database did not answer within the lease"
            if reason is not None:
                fence.lose()
                on_lost(reason)
                return
            await asyncio.sleep(max(0.0, fence.check_every - (time.monotonic() - asked)))

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        with contextlib.suppress(*_ERRORS):
            await conn.execute("SELECT pg_advisory_unlock($1)", INSTANCE_LOCK_KEY)
        with contextlib.suppress(*_ERRORS):
            await conn.close(timeout=5)


async def _lock_connection(url: DatabaseUrl) -> asyncpg.Connection:
    conn = await connect(url)
    try:
        for statement in _KEEPALIVES:
            await conn.execute(statement)
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)
        raise
    return conn


async def _holder(conn: asyncpg.Connection) -> str | None:
    with contextlib.suppress(*_ERRORS):
        holder = await conn.fetchval(_HOLDER, INSTANCE_LOCK_KEY)
        return f"server session {holder}" if holder else None
    return None


async def take(url: DatabaseUrl) -> AdvisoryLock:
    """The lock now, or `InstanceLockedError` naming the session that has it."""
    conn = await _lock_connection(url)
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", INSTANCE_LOCK_KEY):
            raise InstanceLockedError(url.masked, await _holder(conn))
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)
        raise
    log.debug("took the instance advisory lock on %s", url.masked)
    return AdvisoryLock(conn, url, time.monotonic())


async def wait(
    url: DatabaseUrl, stop: asyncio.Event, *, every: float = CHECK_EVERY
) -> AdvisoryLock | None:
    """The lock once the instance holding it is gone (trying every `every` seconds), or
    None when `stop` is set first. A lost connection while waiting is connected again."""
    conn: asyncpg.Connection | None = None
    told = unreachable = False
    try:
        while not stop.is_set():
            try:
                if conn is None or conn.is_closed():
                    conn = await _lock_connection(url)
                if await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", INSTANCE_LOCK_KEY, timeout=10
                ):
                    lock, conn = AdvisoryLock(conn, url, time.monotonic()), None
                    log.debug("took the instance advisory lock on %s", url.masked)
                    return lock
                if not told:
                    holder = await _holder(conn)
                    log.info(
                        "standby: another samverkan is active on %s%s; taking over when it stops",
                        url.masked,
                        f" ({holder})" if holder else "",
                    )
                    told = True
                unreachable = False
            except Exception as exc:
                # The database going away while we wait is no reason to stop waiting;
                # said once until it answers again.
                if not unreachable:
                    log.warning("standby: cannot reach the database (%s); trying again", exc)
                unreachable = True
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
                conn = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
        return None
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
