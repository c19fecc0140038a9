"""Work in bulk: rows armed and cancelled in one statement, due rows run together, posts
queued together; with the same guarantees as one at a time (order, once, fallbacks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.clock import FakeClock
from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from bot.delivery import Delivery
from bot.scheduling import BATCH_MAX, JobRun, ManualWaker, MissedJob, Scheduler
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from tests.support import RecordingAdapter

TZ = ZoneInfo("Europe/Stockholm")
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
FALUN = RoomRef("console", "falun")
MORA = RoomRef("console", "mora")


async def open_db(path: Path) -> Database:
    db = await Database.open(path)
    await core_migrations.upgrade(db)
    return db


class Jobs:
    def __init__(self, db: Database, clock: FakeClock, *, fail_batch: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.missed: list[str] = []
        self.fail_batch = fail_batch

        async def batch(runs: list[JobRun]) -> None:
            if self.fail_batch:
                raise RuntimeError("the batch handler broke")
            self.batches.append([r.key for r in runs])

        async def single(run: JobRun) -> None:
            if run.payload.get("bad"):
                raise RuntimeError("this row is broken")
            self.singles.append(run.key)

        async def report(job: MissedJob) -> None:
            self.missed.append(job.key)

        self.scheduler = Scheduler(
            db,
            clock,
            timezone=TZ,
            grace=timedelta(hours=1),
            on_missed=report,
            waker=ManualWaker(),
        )
        self.scheduler.register("cal", "remind", single)
        self.scheduler.register_batch("cal", "remind", batch)
        self.scheduler.register("cal", "other", single)


async def status_of(db: Database, key: str) -> str:
    return str(await db.fetchval("SELECT status FROM schedule WHERE key = ?", (key,)))


async def test_rows_armed_in_bulk_run_together_in_order(tmp_path: Path) -> None:
    clock = FakeClock(START)
    db = await open_db(tmp_path / "s.db")
    jobs = Jobs(db, clock)
    await jobs.scheduler.start()
    due = START + timedelta(minutes=5)
    keys = [f"r{i:04d}" for i in range(BATCH_MAX + 20)]
    rows = [(key, due, "remind", {"n": i}) for i, key in enumerate(keys)]
    assert await jobs.scheduler.at_many("cal", rows) == len(keys)
    assert await jobs.scheduler.cancel_many(["r0003", "missing"]) == 1
    # A row of another handler in between: it runs on its own, in its place.
    await jobs.scheduler.at("cal", "r0100x", due, "other")
    clock.set(due)
    assert await jobs.scheduler.run_due() == len(keys)
    expected = [k for k in keys if k != "r0003"]
    # Rows run in key order: the batch stops at the other handler's row, then goes on.
    before = [k for k in expected if k < "r0100x"]
    after = [k for k in expected if k > "r0100x"]
    assert jobs.batches[0] == before
    assert [k for batch in jobs.batches[1:] for k in batch] == after
    assert jobs.singles == ["r0100x"]
    assert all(len(batch) <= BATCH_MAX for batch in jobs.batches)
    statuses = {await status_of(db, k) for k in expected}
    assert statuses == {"done"}
    assert await jobs.scheduler.run_due() == 0
    # Arming a key again after it ran does nothing, in bulk as one at a time.
    assert await jobs.scheduler.at_many("cal", [("r0001", due, "remind", None)]) == 0
    jobs.scheduler.shutdown()
    await db.close()


async def test_a_failing_batch_falls_back_to_one_row_at_a_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(START)
    db = await open_db(tmp_path / "s.db")
    jobs = Jobs(db, clock, fail_batch=True)
    await jobs.scheduler.start()
    due = START + timedelta(minutes=5)
    rows = [("a", due, "remind", {}), ("b", due, "remind", {"bad": True}), ("c", due, "remind", {})]
    await jobs.scheduler.at_many("cal", rows)
    clock.set(due)
    assert await jobs.scheduler.run_due() == 3
    assert jobs.singles == ["a", "c"]
    assert [await status_of(db, k) for k in "abc"] == ["done", "failed", "done"]
    assert "failed together; running them one by one" in caplog.text
    jobs.scheduler.shutdown()
    await db.close()


async def test_rows_beyond_their_grace_are_reported_not_run(tmp_path: Path) -> None:
    clock = FakeClock(START)
    db = await open_db(tmp_path / "s.db")
    jobs = Jobs(db, clock)
    await jobs.scheduler.at_many(
        "cal",
        [
            ("old", START - timedelta(hours=3), "remind", {}),
            ("recent", START - timedelta(minutes=10), "remind", {}),
        ],
    )
    await jobs.scheduler.start()  # after downtime: both are due at once
    assert jobs.missed == ["old"]
    assert jobs.batches == [["recent"]]
    assert await status_of(db, "old") == "missed"
    jobs.scheduler.shutdown()
    await db.close()


async def open_delivery(path: Path, adapter: RecordingAdapter) -> tuple[Database, Delivery]:
    db = await open_db(path)
    delivery = Delivery(db, FakeClock(START), {"console": adapter})
    await delivery.start()
    return db, delivery


async def test_posts_queued_together_keep_order_per_room_and_go_once(tmp_path: Path) -> None:
    adapter = RecordingAdapter()
    db, delivery = await open_delivery(tmp_path / "d.db", adapter)
    assert await delivery.send("k1", FALUN, OutgoingMessage("already queued"))
    items = [
        (f"k{i}", FALUN if i % 2 else MORA, OutgoingMessage(f"post {i}")) for i in range(1, 901)
    ]
    items.append(("k2", MORA, OutgoingMessage("the same key twice")))
    assert await delivery.send_many(items) == 899  # k1 was known; k2 given twice
    assert await delivery.wait_idle(30)
    falun = [f"post {i}" for i in range(3, 901, 2)]
    assert adapter.texts(str(FALUN)) == ["already queued", *falun]
    assert adapter.texts(str(MORA)) == [f"post {i}" for i in range(2, 901, 2)]
    statuses = await delivery.statuses([f"k{i}" for i in range(1, 901)] + ["unknown"])
    assert set(statuses.values()) == {"sent"} and len(statuses) == 900
    assert await delivery.send_many(items) == 0
    await delivery.stop()
    await db.close()


async def test_posts_queued_in_a_rolled_back_transaction_are_never_sent(tmp_path: Path) -> None:
    adapter = RecordingAdapter()
    db, delivery = await open_delivery(tmp_path / "d.db", adapter)
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await delivery.send_many([("x1", FALUN, OutgoingMessage("never"))])
            raise RuntimeError("rolled back")
    async with db.transaction():
        await delivery.send_many([("x2", FALUN, OutgoingMessage("committed"))])
    assert await delivery.wait_idle(5)
    assert adapter.texts() == ["committed"]
    assert await delivery.status("x1") is None
    await delivery.stop()
    await db.close()
