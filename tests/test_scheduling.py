"""Scheduling: the table is the truth; due work runs after a restart, late or reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.core.clock import FakeClock
from bot.scheduling import JobRun, ManualWaker, MissedJob, Scheduler, next_cron_fire
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.engines import open_database
from tests.engines import Target
from tests.support import until

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Harness:
    def __init__(self, db: Database, clock: FakeClock) -> None:
        self.runs: list[JobRun] = []
        self.missed: list[MissedJob] = []
        self.waker = ManualWaker()

        async def record(run: JobRun) -> None:
            self.runs.append(run)

        async def report(job: MissedJob) -> None:
            self.missed.append(job)

        self.scheduler = Scheduler(
            db, clock, timezone=TZ, grace=timedelta(hours=1), on_missed=report, waker=self.waker
        )
        self.scheduler.register("cal", "remind", record)


async def open_db(path: Target) -> Database:
    db = await open_database(path)
    await core_migrations.upgrade(db)
    return db


async def test_due_job_runs_once_on_time(db_target: Target) -> None:
    clock = FakeClock(START)
    db = await open_db(db_target)
    h = Harness(db, clock)
    await h.scheduler.start()
    due = START + timedelta(minutes=30)
    assert await h.scheduler.at("cal", "r1", due, "remind", {"event": "möte"})
    await until(lambda: h.waker.armed_for == due)
    assert await h.scheduler.run_due() == 0
    clock.advance(timedelta(minutes=30))
    assert await h.scheduler.run_due() == 1
    assert await h.scheduler.run_due() == 0
    assert [(r.key, r.payload, r.late) for r in h.runs] == [("r1", {"event": "möte"}, False)]
    # Arming the same key again after it ran does nothing.
    assert not await h.scheduler.at("cal", "r1", due + timedelta(hours=1), "remind")
    await db.close()


async def test_rearmed_after_restart_and_late_when_down(db_target: Target) -> None:
    clock = FakeClock(START)
    db = await open_db(db_target)
    h = Harness(db, clock)
    await h.scheduler.start()
    await h.scheduler.at("cal", "soon", START + timedelta(minutes=10), "remind")
    await h.scheduler.at("cal", "later", START + timedelta(minutes=50), "remind")
    await h.scheduler.at("cal", "far", START + timedelta(days=2), "remind")
    h.scheduler.shutdown()
    await db.close()

    # Down for 40 minutes: "soon" fell due 30 minutes ago (within the hour of grace).
    clock.advance(timedelta(minutes=40))
    db = await open_db(db_target)
    h2 = Harness(db, clock)
    await h2.scheduler.start()
    assert [(r.key, r.late) for r in h2.runs] == [("soon", True)]
    await until(lambda: h2.waker.armed_for == START + timedelta(minutes=50))
    clock.advance(timedelta(minutes=10))
    await h2.scheduler.run_due()
    assert [(r.key, r.late) for r in h2.runs] == [("soon", True), ("later", False)]
    assert h2.missed == []
    await db.close()


async def test_far_late_work_is_reported_once(db_target: Target) -> None:
    clock = FakeClock(START)
    db = await open_db(db_target)
    h = Harness(db, clock)
    await h.scheduler.start()
    await h.scheduler.at("cal", "old", START + timedelta(minutes=5), "remind", {"n": 1})
    h.scheduler.shutdown()
    clock.advance(timedelta(hours=3))
    h2 = Harness(db, clock)
    await h2.scheduler.start()
    await h2.scheduler.run_due()
    h3 = Harness(db, clock)
    await h3.scheduler.start()
    assert h2.runs == [] and h3.runs == []
    assert [(m.key, m.payload) for m in h2.missed] == [("old", {"n": 1})]
    assert h3.missed == []
    assert await h3.scheduler.status("old") == "missed"
    await db.close()


async def test_moving_and_cancelling(db_target: Target) -> None:
    clock = FakeClock(START)
    db = await open_db(db_target)
    h = Harness(db, clock)
    await h.scheduler.start()
    await h.scheduler.at("cal", "ev:1:a", START + timedelta(hours=1), "remind")
    await h.scheduler.at("cal", "ev:1:b", START + timedelta(hours=2), "remind")
    await h.scheduler.at("cal", "ev:10:a", START + timedelta(hours=3), "remind")
    await h.scheduler.at("cal", "ev:1:a", START + timedelta(hours=4), "remind")  # moved
    assert await h.scheduler.cancel_prefix("ev:1:") == 2
    assert [k for k, _ in await h.scheduler.pending()] == ["ev:10:a"]
    await db.close()


async def test_unloaded_handler_waits(db_target: Target) -> None:
    clock = FakeClock(START)
    db = await open_db(db_target)
    h = Harness(db, clock)
    await h.scheduler.at("polls", "close:1", START, "close")
    await h.scheduler.start()
    assert await h.scheduler.status("close:1") == "pending"
    await db.close()


async def test_cron_fires_in_local_time_and_rearms(db_target: Target) -> None:
    clock = FakeClock(datetime(2026, 3, 27, 12, tzinfo=UTC))  # Friday before DST starts
    db = await open_db(db_target)
    h = Harness(db, clock)
    await h.scheduler.start()
    first = await h.scheduler.every("cal", "digest", "30 7 * * mon", "remind")
    # Monday 30 March 07:30 in summer time is 05:30 UTC.
    assert first == datetime(2026, 3, 30, 5, 30, tzinfo=UTC)
    clock.set(first)
    await h.scheduler.run_due()
    assert [r.key for r in h.runs] == ["cron:cal:digest"]
    assert [d for _, d in await h.scheduler.pending("cron:")] == [
        datetime(2026, 4, 6, 5, 30, tzinfo=UTC)
    ]
    # The same crontab again keeps the pending fire; a new one replaces it.
    assert await h.scheduler.every("cal", "digest", "30 7 * * mon", "remind") == datetime(
        2026, 4, 6, 5, 30, tzinfo=UTC
    )
    await db.close()


def test_next_cron_fire_in_winter() -> None:
    fire = next_cron_fire("0 8 * * mon-fri", TZ, datetime(2026, 12, 4, 7, 0, tzinfo=UTC))
    assert fire == datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # Monday 08:00 CET
