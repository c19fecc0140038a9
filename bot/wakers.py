"""What wakes the scheduler: APScheduler in a running bot, nothing at all in tests.

Apart from `bot.scheduling` (which re-exports these) because they know nothing of the
schedule table: a waker is asked to call back at one instant, and does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler


class Waker(Protocol):
    def arm(self, when: datetime | None, callback: Callable[[], Awaitable[object]]) -> None:
        """Call `callback` at `when` (replacing any earlier arming); None disarms."""
        ...

    def shutdown(self) -> None: ...


class APSchedulerWaker:
    """One APScheduler date job, re-armed for the earliest pending row."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._started = False
        self._closed = False
        self._runs: set[asyncio.Future[object]] = set()

    def arm(self, when: datetime | None, callback: Callable[[], Awaitable[object]]) -> None:
        if self._closed:
            return
        if not self._started:
            self._scheduler.start()
            self._started = True
        if when is None:
            if self._scheduler.get_job("wake"):
                self._scheduler.remove_job("wake")
            return

        async def wake() -> None:
            # The callback runs as a task of its own, so that the job is over at once:
            # a wake-up armed while an earlier one still runs (a long batch of reminders
            # re-arms as it goes) would otherwise be skipped by APScheduler with a
            # warning. Two runs at once are the callback's to order (the scheduler's
            # runs take a lock and each re-arms when done).
            run = asyncio.ensure_future(callback())
            self._runs.add(run)
            run.add_done_callback(self._runs.discard)

        # misfire_grace_time=None: a wake-up is never dropped, however late the loop is.
        self._scheduler.add_job(
            wake,
            "date",
            run_date=when,
            id="wake",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def shutdown(self) -> None:
        self._closed = True
        if self._started:
            self._scheduler.shutdown(wait=False)
            self._started = False
        for run in self._runs:  # as APScheduler's own executor cancels its jobs
            run.cancel()


class ManualWaker:
    """For tests: remembers when it was asked to wake, and never wakes by itself."""

    def __init__(self) -> None:
        self.armed_for: datetime | None = None

    def arm(self, when: datetime | None, callback: Callable[[], Awaitable[object]]) -> None:
        self.armed_for = when

    def shutdown(self) -> None:
        self.armed_for = None
