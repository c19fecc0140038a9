"""The running bot's waker (APScheduler): a wake-up armed while the previous one's run is
still going is run too, not skipped with APScheduler's "maximum number of running
instances reached" warning (seen after a failover, while a long batch of due reminders
ran and re-armed). Armed for an instant already past, so nothing waits for a real time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from bot.wakers import APSchedulerWaker


async def test_a_wake_up_armed_during_a_run_is_not_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waker = APSchedulerWaker()
    release = asyncio.Event()
    started: list[int] = []
    first, both = asyncio.Event(), asyncio.Event()

    async def callback() -> None:
        started.append(len(started))
        (first if len(started) == 1 else both).set()
        await release.wait()

    caplog.set_level(logging.WARNING)
    try:
        past = datetime.now(UTC) - timedelta(seconds=1)
        waker.arm(past, callback)
        async with asyncio.timeout(10):
            await first.wait()
        waker.arm(past, callback)  # the first run still holds on
        async with asyncio.timeout(10):
            await both.wait()
        assert started == [0, 1]
        assert not [r for r in caplog.records if r.name.startswith("apscheduler")]
        release.set()
    finally:
        waker.shutdown()


async def test_shutdown_cancels_a_run_in_hand() -> None:
    waker = APSchedulerWaker()
    running = asyncio.Event()
    cancelled = asyncio.Event()

    async def callback() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waker.arm(datetime.now(UTC), callback)
    async with asyncio.timeout(10):
        await running.wait()
    waker.shutdown()
    async with asyncio.timeout(10):
        await cancelled.wait()
    waker.arm(datetime.now(UTC), callback)  # after shutdown: nothing, and no error
    assert cancelled.is_set()
