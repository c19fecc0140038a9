"""One instance per database, and rows claimed before they are sent: a second
`samverkan run` refuses; two deliveries forced onto one database send each row once and
in order; a killed process's claims do not hold up the next one."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import App
from bot.core.clock import FakeClock
from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef
from bot.delivery import PENDING, Delivery
from bot.outbox import Outbox
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.instance import InstanceLockedError, acquire
from tests.support import RecordingAdapter, settings_from, transient, until

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 12, 1, 12, tzinfo=UTC)
LANES = [RoomRef("console", name) for name in ("falun", "mora", "borlange", "ludvika")]


async def open_db(path: Path) -> Database:
    db = await Database.open(path)
    await core_migrations.upgrade(db)
    return db


# -- the instance lock -------------------------------------------------------------------


async def test_the_lock_is_exclusive_names_its_holder_and_is_released(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    first = await acquire(database)
    with pytest.raises(InstanceLockedError) as caught:
        await acquire(database)
    holder = f"pid {os.getpid()} on host {socket.gethostname()}"
    assert str(caught.value) == f"database {database}: is in use by another samverkan ({holder})"
    await first.release()
    again = await acquire(database)
    await again.release()
    # Private to the process: nothing to lock.
    memory = [await acquire(":memory:"), await acquire(":memory:")]
    for lock in memory:
        await lock.release()


async def test_a_second_app_on_the_database_refuses_to_start(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "[console]\nenabled = true\n")
    running = App(settings, [], adapters={"console": RecordingAdapter()}, clock=FakeClock(START))
    await running.start()
    second = App(settings, [], adapters={"console": RecordingAdapter()}, clock=FakeClock(START))
    with pytest.raises(InstanceLockedError):
        await second.start()
    await second.stop()
    await running.stop()
    # Once the first has stopped, the database is free again.
    third = App(settings, [], adapters={"console": RecordingAdapter()}, clock=FakeClock(START))
    await third.start()
    await third.stop()


def console_config(tmp_path: Path) -> tuple[Path, Path]:
    database = tmp_path / "data" / "bot.db"
    path = tmp_path / "console.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [bot]
            database = "{database}"
            plugins = ["plugins.help"]
            [console]
            enabled = true
            [[associations]]
            id = "falun"
            name = "Falun"
            rooms = ["console:falun"]
            """
        ),
        encoding="utf-8",
    )
    return path, database


def test_a_second_run_on_the_same_database_refuses(tmp_path: Path) -> None:
    config, database = console_config(tmp_path)
    command = [sys.executable, "-m", "bot", "run", "--config", str(config)]
    log_file = tmp_path / "first.log"
    with log_file.open("w") as log_out:
        first = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # kept open: the console keeps the first one running
            stdout=subprocess.PIPE,
            stderr=log_out,
            cwd=ROOT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready:" not in log_file.read_text():
            assert first.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, "the first instance did not get ready"
            time.sleep(0.05)

        started = time.monotonic()
        second = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        seconds = time.monotonic() - started
        assert second.returncode == 2, second.stderr
        holder = f"pid {first.pid} on host {socket.gethostname()}"
        assert second.stderr.splitlines() == [
            f"samverkan: database {database}: is in use by another samverkan ({holder})"
        ]
        assert "Traceback" not in second.stdout + second.stderr
        assert seconds < 15

        # The first one never noticed: it still answers, and ends as usual.
        assert first.poll() is None
        out, _ = first.communicate("!help\n", timeout=60)
        assert first.returncode == 0, log_file.read_text()
        assert out.startswith("[#falun] Samverkan: ")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


# -- row claims --------------------------------------------------------------------------


async def test_a_claim_is_exclusive_until_it_expires(tmp_path: Path) -> None:
    db = await open_db(tmp_path / "bot.db")
    mine, theirs = Outbox(db, "mine"), Outbox(db, "theirs")
    row = await mine.insert("k", "lane", "send", LANES[0], None, "{}", 100.0, 700.0)
    assert row is not None and row.claimed_by == "mine"
    assert not await theirs.claim(row.id, 200.0, 800.0)
    assert not await theirs.finish(row.id, "sent", "m1", None, 200.0)
    assert not await theirs.record_retry(row.id, 1, 300.0, "no")
    assert await mine.claim(row.id, 200.0, 800.0)  # a renewal
    # Expired: anyone may take it, and then it is theirs alone.
    assert await theirs.claim(row.id, 801.0, 1400.0)
    assert not await mine.finish(row.id, "sent", "m1", None, 900.0)
    assert await theirs.finish(row.id, "sent", "m2", None, 900.0)
    assert not await mine.claim(row.id, 2000.0, 2600.0)  # no longer pending
    assert await db.fetchval("SELECT message_id FROM outbox WHERE id = ?", (row.id,)) == "m2"
    await db.close()


@dataclass
class Logged(RecordingAdapter):
    """Records into a log shared with the other instance, so that the order across both
    is the order in which the posts went out."""

    name: str = ""
    log: list[tuple[str, str, str]] = field(default_factory=list)

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        ref = await super().send(room, message, token)
        self.log.append((self.name, str(room), message.text))
        await asyncio.sleep(0)  # let the other instance in between two posts
        return ref


async def backlog(db: Database, per_lane: int) -> None:
    """Pending rows as an earlier process leaves them: some never claimed, some claimed
    by a process whose lease ran out, interleaved across the lanes."""
    rows = []
    for i in range(per_lane):
        for room in LANES:
            claim = ("dead", START.timestamp() - 60) if i % 3 == 0 else (None, None)
            payload = OutgoingMessage(f"{room.id} {i}").to_json()
            rows.append((f"old:{room.id}:{i}", str(room), "send", str(room), payload, *claim))
    created = START.timestamp() - 3600
    async with db.transaction():
        await db.executemany(
            "INSERT INTO outbox (key, lane, action, room, payload, status, attempts,"
            " next_attempt, created_at, claimed_by, claimed_until)"
            f" VALUES (?, ?, ?, ?, ?, '{PENDING}', 0, {created}, {created}, ?, ?)",
            rows,
        )


async def test_two_deliveries_on_one_database_send_each_row_once_in_order(
    tmp_path: Path,
) -> None:
    per_lane = 1000
    setup = await open_db(tmp_path / "bot.db")
    await backlog(setup, per_lane)
    await setup.close()

    shared: list[tuple[str, str, str]] = []
    instances = []
    for name in ("a", "b"):
        db = await open_db(tmp_path / "bot.db")
        adapter = Logged(name=name, log=shared)
        delivery = Delivery(db, FakeClock(START), {"console": adapter}, held_wait=0.005)
        instances.append((db, delivery))
    await asyncio.gather(*(d.start() for _, d in instances))
    await until(lambda: len(shared) >= len(LANES) * per_lane, timeout=120)
    # The last sends are seen before their status is written: stopping now would cut a
    # lane between the two (as the App never does: it drains first).
    for _, delivery in instances:
        assert await delivery.wait_idle(30)
    for _, delivery in instances:
        await delivery.stop()

    texts = Counter(text for _, _, text in shared)
    assert len(texts) == len(LANES) * per_lane
    assert set(texts.values()) == {1}
    for room in LANES:
        sent = [int(text.split()[1]) for _, r, text in shared if r == str(room)]
        assert sent == list(range(per_lane))
    # Both were at work, so the claims were contended.
    assert {name for name, _, _ in shared} == {"a", "b"}
    for db, _ in instances:
        left = await db.fetchval("SELECT COUNT(*) FROM outbox WHERE status = ?", (PENDING,))
        assert left == 0
        await db.close()


async def test_rows_a_delivery_queues_are_not_sent_by_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = RecordingAdapter(failures=[transient()])
    db_a = await open_db(tmp_path / "bot.db")
    # A backoff longer than the test: the rows stay pending until `retry_now`.
    a = Delivery(db_a, FakeClock(START), {"console": down}, backoff_base=600, backoff_max=600)
    await a.start()
    for i in range(5):
        await a.send(f"new:{i}", LANES[0], OutgoingMessage(f"new {i}"))
    await until(lambda: not down.failures)

    other = RecordingAdapter()
    db_b = await open_db(tmp_path / "bot.db")
    b = Delivery(db_b, FakeClock(START), {"console": other}, held_wait=0.005)
    with caplog.at_level(logging.WARNING, logger="bot.delivery"):
        await b.start()
        await until(lambda: "held by another instance" in caplog.text)
    assert other.sent == []

    assert a.retry_now("console") == 1
    await until(lambda: len(down.sent) == 5)
    assert down.texts() == [f"new {i}" for i in range(5)]
    assert await b.wait_idle(5)
    assert other.sent == []
    for delivery, db in ((a, db_a), (b, db_b)):
        await delivery.stop()
        await db.close()


# A process that takes the instance lock, queues posts to a platform that is down, and
# waits: killed with SIGKILL, it leaves the rows pending and claimed.
CHILD = """
import asyncio, sys
from bot.core.clock import SystemClock
from bot.core.errors import TransientSendError
from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from bot.delivery import Delivery
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.instance import acquire

class Down:
    platform = "console"
    async def send(self, room, message, token):
        raise TransientSendError("down", retry_after=3600)

async def main():
    await acquire(sys.argv[1])
    db = await Database.open(sys.argv[1])
    await core_migrations.upgrade(db)
    delivery = Delivery(db, SystemClock(), {"console": Down()})
    await delivery.start()
    for i in range(int(sys.argv[2])):
        await delivery.send(f"k{i}", RoomRef("console", "falun"), OutgoingMessage(f"m{i}"))
    await delivery.wait_idle(30)
    print(delivery.instance, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_after_a_kill_the_next_instance_sends_the_claimed_rows_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database, count = tmp_path / "bot.db", 20
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(database), str(count), stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert child.stdout is not None
        dead = (await asyncio.wait_for(child.stdout.readline(), 60)).decode()
        child.kill()  # SIGKILL: no clean stop, no claims given back
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    db = await open_db(database)
    claims = await db.fetchall("SELECT DISTINCT claimed_by, status FROM outbox")
    assert claims == [(dead.strip(), PENDING)]

    # Without the instance lock a delivery cannot tell the claims are stale: it waits.
    waiting = RecordingAdapter()
    alone = Delivery(db, FakeClock(datetime.now(UTC)), {"console": waiting}, held_wait=0.005)
    with caplog.at_level(logging.WARNING, logger="bot.delivery"):
        await alone.start()
        await until(lambda: "held by another instance" in caplog.text)
    await alone.stop()
    await db.close()
    assert waiting.sent == []

    # The next bot takes the lock (the kill dropped it), so it may release the dead
    # process's claims: everything goes out now, in order, leases notwithstanding.
    settings = settings_from(tmp_path, "[console]\nenabled = true\n")
    adapter = RecordingAdapter()
    app = App(settings, [], adapters={"console": adapter}, clock=FakeClock(datetime.now(UTC)))
    await app.start()
    await until(lambda: len(adapter.sent) == count)
    assert adapter.texts() == [f"m{i}" for i in range(count)]
    await app.stop()
