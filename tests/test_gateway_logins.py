"""The gateway logins counted in the database (the IDENTIFY guard's counter), on SQLite
and PostgreSQL: a rolling day on the injected clock, the limit never passed even by two
connections taking at once, and the crash-loop backoff computed from the same rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.discord.identify import IdentifyGuard, IdentifyLimitReached
from bot.core.clock import FakeClock
from bot.storage.database import Database
from bot.storage.engines import open_database
from bot.storage.logins import GatewayLogins
from tests.engines import Target

START = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


async def test_counts_up_to_the_limit_over_a_rolling_day(db: Database) -> None:
    logins = GatewayLogins(db, "discord")
    clock = FakeClock(START)
    counts = []
    for _ in range(3):
        got = await logins.take(clock.now(), 3)
        counts.append((got.count, got.taken))
        clock.advance(timedelta(hours=1))
    assert counts == [(1, True), (2, True), (3, True)]
    refused = await logins.take(clock.now(), 3)
    assert (refused.count, refused.taken) == (3, False)
    # The refused one is not counted; the oldest leaves the window a day after it.
    assert refused.allowed_again(3) == START + timedelta(days=1)
    assert (await logins.recent(clock.now())).count == 3
    clock.set(START + timedelta(days=1, seconds=1))
    again = await logins.take(clock.now(), 3)
    assert (again.count, again.taken) == (3, True)
    # Another platform's logins are its own; the day's old rows are gone.
    assert (await GatewayLogins(db, "other").recent(clock.now())).count == 0
    rows = await db.fetchval("SELECT COUNT(*) FROM gateway_logins")
    assert int(rows) == 3


async def test_two_connections_taking_at_once_never_pass_the_limit(
    db: Database, db_target: Target
) -> None:
    other = await open_database(db_target)
    try:
        clock = FakeClock(START)
        limit = 7
        handles = [GatewayLogins(db, "discord"), GatewayLogins(other, "discord")]
        results = await asyncio.gather(
            *(handles[n % 2].take(clock.now(), limit) for n in range(4 * limit))
        )
        assert sum(r.taken for r in results) == limit
        assert sorted(r.count for r in results if r.taken) == list(range(1, limit + 1))
        assert int(await db.fetchval("SELECT COUNT(*) FROM gateway_logins")) == limit
    finally:
        await other.close()


async def test_the_guard_refuses_at_the_limit_and_backs_off_a_crash_loop(db: Database) -> None:
    clock = FakeClock(START)
    guard = IdentifyGuard(
        GatewayLogins(db, "discord"), clock, warn=2, limit=8, backoff=30.0, burst=5, cap=100.0
    )
    delays = []
    for _ in range(8):
        delays.append(await guard.startup_delay())
        logins = await guard.take()
        clock.advance(timedelta(seconds=10))
    assert delays == [0.0] * 5 + [30.0, 60.0, 100.0]  # doubling past the burst, capped
    assert guard.should_warn(logins) and logins.count == 8
    assert await guard.blocked() is not None
    with pytest.raises(IdentifyLimitReached) as refused:
        await guard.take()
    assert str(refused.value) == (
        "8 gateway logins (IDENTIFY) to Discord in the last 24 h reach "
        "discord.identify_limit (8): not connecting to Discord before 2026-12-03 10:00 UTC"
    )
    # Ten minutes later the burst is over, though the day's count is not.
    clock.advance(timedelta(minutes=10))
    assert await guard.startup_delay() == 0.0
    clock.set(START + timedelta(days=1, seconds=5))
    assert await guard.blocked() is None
    assert (await guard.take()).count == 8
