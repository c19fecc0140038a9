"""Health and metrics over HTTP: the App started with `[http] listen = "127.0.0.1:0"`,
its endpoints asked over a real socket, and /metrics read with prometheus_client's own
parser. (The 503 of /ready when a platform goes away: tests/matrix/test_start_offline.)"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App
from bot.core.clock import FakeClock
from bot.core.errors import PermanentSendError
from bot.core.events import MessageReceived, Sender
from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.health_check import http_health
from bot.scheduling import ManualWaker
from plugins.calendar import CalendarPlugin
from plugins.help import HelpPlugin
from plugins.polls import PollsPlugin
from tests.support import RecordingAdapter, settings_from

log = logging.getLogger(__name__)

CONFIG = """
[bot]
organisers = ["console:anna"]

[http]
listen = "127.0.0.1:0"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun"]
"""
START = datetime(2026, 12, 1, 9, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = settings_from(tmp_path, CONFIG, [CalendarPlugin, PollsPlugin])
    app = App(
        settings,
        [HelpPlugin, CalendarPlugin, PollsPlugin],
        adapters={"console": RecordingAdapter()},
        clock=FakeClock(START),
        waker=ManualWaker(),
        delivery_backoff=0.01,
    )
    await app.start()
    yield app
    await app.stop()


def base_url(app: App) -> str:
    http = app.services.http
    assert http is not None and http.port > 0
    return f"http://127.0.0.1:{http.port}"


async def get(app: App, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(base_url(app) + path) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), await answer.text()


async def scrape(app: App) -> Samples:
    status, ctype, text = await get(app, "/metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def say(app: App, n: int, text: str) -> None:
    adapter = app.adapters["console"]
    assert isinstance(adapter, RecordingAdapter) and adapter.host is not None
    room = RoomRef("console", "falun")
    await adapter.host.handle(
        MessageReceived(
            event_id=f"h{n}",
            room=room,
            sender=Sender(UserRef("console", "anna"), "Anna"),
            at=START,
            ref=MessageRef(room, f"h{n}"),
            text=text,
        )
    )
    await app.delivery.wait_idle(5)


async def test_live_ready_and_metrics_of_a_running_app(app: App) -> None:
    http = app.services.http
    assert http is not None
    log.info("the HTTP service of the test App is bound to port %d", http.port)
    assert (await get(app, "/live"))[0] == 200
    status, _, body = await get(app, "/ready")
    assert status == 200, body
    assert json.loads(body) == {
        "ready": True,
        "role": "active",
        "checks": {"database": "ok", "adapter:console": "ok", "scheduler": "ok"},
    }
    # The command's way, from a thread: this loop serves the answer.
    listen = app.settings.http.listen.replace(":0", f":{http.port}")
    assert await asyncio.to_thread(http_health, listen) == 0

    adapter = app.adapters["console"]
    assert isinstance(adapter, RecordingAdapter)
    await say(app, 1, '!omröstning ny "Fika?" "Ja" "Nej"')
    await say(app, 2, '!händelse ny "Möte" "2026-12-10 18:00"')
    armed = len(await app.scheduler.pending("calendar:reminder:"))
    assert armed > 0
    # A post the platform refuses for good, and one held while the time goes on.
    adapter.failures.append(PermanentSendError("no such room"))
    await app.delivery.send("t:refused", RoomRef("console", "falun"), OutgoingMessage("x"))
    await app.delivery.wait_idle(5)
    app.delivery.hold("console")
    await app.delivery.send("t:held", RoomRef("console", "falun"), OutgoingMessage("y"))
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(timedelta(seconds=90))

    got = await scrape(app)
    console = (("platform", "console"),)
    assert got[("samverkan_sends_total", console)] == len(adapter.sent)
    permanent = (("kind", "permanent"), ("platform", "console"))
    assert got[("samverkan_send_failures_total", permanent)] == 1
    assert got[("samverkan_send_seconds_count", console)] == len(adapter.sent) + 1
    assert got[("samverkan_inbound_events_total", console)] == 2
    assert got[("samverkan_outbox_pending", console)] == 1
    assert got[("samverkan_outbox_oldest_pending_seconds", console)] == 90
    assert got[("samverkan_adapter_connected", console)] == 1
    assert got[("samverkan_database_writable", ())] == 1
    assert got[("samverkan_polls_open", ())] == 1
    assert got[("samverkan_calendar_reminders_armed", ())] == armed
    assert got[("samverkan_calendar_feeds_failing", ())] == 0
    assert got[("samverkan_last_event_age_seconds", console)] >= 0
    app.delivery.release("console")
    await app.delivery.wait_idle(5)
    assert (await scrape(app))[("samverkan_outbox_pending", console)] == 0


async def test_two_apps_in_one_process_keep_their_own_metrics(app: App, tmp_path: Path) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    settings = settings_from(other_dir, CONFIG, [PollsPlugin])
    other = App(
        settings,
        [PollsPlugin],
        adapters={"console": RecordingAdapter()},
        clock=FakeClock(START),
        waker=ManualWaker(),
    )
    await other.start()
    try:
        await say(app, 3, '!omröstning ny "Fika?" "Ja" "Nej"')
        mine, theirs = await scrape(app), await scrape(other)
        console = (("platform", "console"),)
        assert mine[("samverkan_polls_open", ())] == 1
        assert theirs[("samverkan_polls_open", ())] == 0
        assert theirs.get(("samverkan_inbound_events_total", console), 0) == 0
    finally:
        await other.stop()


def test_health_without_an_answer_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 9 of loopback (discard, never served here).
    assert http_health("127.0.0.1:9", timeout=2) == 1
    assert "unhealthy: no answer" in capsys.readouterr().err
