"""The warm standby on PostgreSQL: a second App on the database waits (configuration
loaded, database connected, adapters not started), says so on its health endpoint, and
takes over when the active one is gone; an active App that loses the instance lock posts
nothing more before the standby's first post (fencing)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from bot.app import App, InstanceLockLost
from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef
from bot.fence import Fence
from bot.storage.advisory import INSTANCE_LOCK_KEY
from bot.storage.target import DatabaseUrl
from tests.engines import SERVER, postgres_database
from tests.support import RecordingAdapter, settings_from, until

ROOM = RoomRef("console", "falun")
# Short times for the tests; a deployment runs with a 3 s lease and a 4 s wait.
LEASE = 0.6
GRACE = 0.9


@dataclass
class TimedAdapter(RecordingAdapter):
    """A console stand-in whose sends take a while and are stamped on the monotonic
    clock, so that two instances' posts can be put in order."""

    delay: float = 0.01
    stamps: list[tuple[float, str]] = field(default_factory=list)

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        await asyncio.sleep(self.delay)
        self.stamps.append((time.monotonic(), message.text))
        return await super().send(room, message, token)


@pytest.fixture
async def url() -> AsyncIterator[DatabaseUrl]:
    async with postgres_database("samverkan_standby") as where:
        yield where


def app_on(url: DatabaseUrl, tmp: Path, name: str, adapter: TimedAdapter) -> App:
    folder = tmp / name
    folder.mkdir()
    settings = settings_from(
        folder,
        f"""
        [bot]
        database = "{url.dsn()}"
        [console]
        enabled = true
        [http]
        listen = "127.0.0.1:0"
        """,
    )
    return App(
        settings,
        [],
        adapters={"console": adapter},
        delivery_backoff=0.05,
        fence=Fence(lease=LEASE, grace=GRACE),
    )


def get_json(port: int, path: str) -> tuple[int, dict[str, object]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def queue(app: App, n: int, prefix: str) -> list[str]:
    texts = [f"{prefix}-{i:03d}" for i in range(n)]
    for text in texts:
        await app.delivery.send(f"post:{text}", ROOM, OutgoingMessage(text=text))
    return texts


async def test_a_second_app_waits_as_standby_then_takes_over(
    url: DatabaseUrl, tmp_path: Path
) -> None:
    first, second = TimedAdapter(), TimedAdapter()
    active = app_on(url, tmp_path, "a", first)
    standby = app_on(url, tmp_path, "b", second)
    await active.start()
    assert active.role == "active"
    waiting = asyncio.create_task(standby.start())
    try:
        await until(lambda: standby.role == "standby", timeout=10)
        assert not second.sent and second.host is None  # adapters not started
        http = standby._standby_http
        assert http is not None
        status, ready = await asyncio.to_thread(get_json, http.port, "/ready")
        assert (status, ready["role"], ready["ready"]) == (200, "standby", True)
        metrics = await asyncio.to_thread(
            lambda: (
                urllib.request.build_opener(urllib.request.ProxyHandler({}))
                .open(f"http://127.0.0.1:{http.port}/metrics", timeout=5)
                .read()
                .decode()
            )
        )
        assert "samverkan_instance_active 0.0" in metrics
        await asyncio.sleep(LEASE * 2)
        assert not waiting.done()  # still waiting while the active one runs

        texts = await queue(active, 20, "before")
        await until(lambda: len(first.sent) == 20, timeout=10)
        await active.stop()  # the lock is let go
        await asyncio.wait_for(waiting, 15)
        assert standby.role == "active"
        assert active.services is not None
        # The standby's service carries on as the active one's.
        assert standby.services.http is http
        status, ready = await asyncio.to_thread(get_json, http.port, "/ready")
        assert ready["role"] == "active"
        later = await queue(standby, 10, "after")
        await until(lambda: len(second.sent) == 10, timeout=10)
        assert first.texts() == texts and second.texts() == later
    finally:
        waiting.cancel()
        await standby.stop()
        await active.stop()


async def test_a_standby_asked_to_stop_while_waiting_leaves_quietly(
    url: DatabaseUrl, tmp_path: Path
) -> None:
    active = app_on(url, tmp_path, "a", TimedAdapter())
    standby = app_on(url, tmp_path, "b", TimedAdapter())
    await active.start()
    try:
        run = asyncio.create_task(standby.run())
        await until(lambda: standby.role == "standby", timeout=10)
        standby.request_stop()
        await asyncio.wait_for(run, 10)
        assert standby.role == "stopped"
    finally:
        await active.stop()


async def lock_session(url: DatabaseUrl) -> int:
    admin = await asyncpg.connect(SERVER)
    try:
        pid = await admin.fetchval(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1"
            " AND (l.classid::bigint << 32 | l.objid::bigint) = $2",
            url.dsn().rsplit("/", 1)[1],
            INSTANCE_LOCK_KEY,
        )
        assert pid is not None
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        return int(pid)
    finally:
        await admin.close()


async def test_an_active_app_that_loses_the_lock_posts_nothing_after_the_standby_begins(
    url: DatabaseUrl, tmp_path: Path
) -> None:
    first, second = TimedAdapter(delay=0.01), TimedAdapter(delay=0.01)
    active = app_on(url, tmp_path, "a", first)
    standby = app_on(url, tmp_path, "b", second)
    running = asyncio.create_task(active.run())
    await until(lambda: active.role == "active" and hasattr(active, "services"), timeout=15)
    taking_over = asyncio.create_task(standby.run())
    try:
        await until(lambda: standby.role == "standby", timeout=10)
        texts = await queue(active, 300, "post")
        await until(lambda: len(first.sent) >= 30, timeout=10)
        # The lock's session ends on the server while the active App's other connection
        # works on: only the fence can keep it from posting on.
        cut_at = time.monotonic()
        await lock_session(url)
        with pytest.raises(InstanceLockLost):
            await asyncio.wait_for(running, 15)
        assert active.lock_lost is not None
        await until(lambda: standby.role == "active", timeout=15)
        await until(lambda: len({t for t in first.texts() + second.texts()}) == 300, 30)
    finally:
        standby.request_stop()
        await asyncio.wait_for(taking_over, 15)
        if not running.done():
            active.request_stop()
            await asyncio.gather(running, return_exceptions=True)
    last_of_first = max(t for t, _ in first.stamps)
    first_of_second = min(t for t, _ in second.stamps)
    assert last_of_first < first_of_second, (last_of_first - cut_at, first_of_second - cut_at)
    # The old one stopped within a lease of the cut; each post went out, in order, and
    # at most the one in flight at the cut went out twice.
    assert last_of_first - cut_at <= LEASE + 0.5
    together = first.texts() + second.texts()
    assert sorted(set(together)) == texts
    assert len(together) - len(set(together)) <= 1
    assert second.texts() == sorted(second.texts())
