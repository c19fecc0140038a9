"""No feed can stall the bot: each is parsed in a worker process under a time and a memory
budget, a series that never ends or never matches costs a bounded amount, and the
event loop answers commands while a 30,000-event file is read."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.clock import FakeClock
from bot.core.i18n import Translator
from plugins.calendar.errors import FeedError
from plugins.calendar.isolation import Budget, ParseWorker
from plugins.calendar.parsing import Window
from plugins.calendar.settings import feed_id
from tests.calendar.support import Bot, feed_toml, make_settings, vcalendar, vevent
from tests.support import until

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
STOCKHOLM = ZoneInfo("Europe/Stockholm")
WINDOW = Window(START, START + timedelta(days=90), STOCKHOLM, 50_000, 500)
LOCALES = Path(__file__).resolve().parents[2] / "plugins" / "calendar" / "locales"
HEALTHY = vevent("UID:healthy@x", "DTSTART:20261210T180000", "SUMMARY:Medlemsmöte")


def many_events(n: int) -> str:
    """n short events, one every three minutes from eight days ahead."""
    first = START + timedelta(days=8)
    return vcalendar(
        *(
            vevent(
                f"UID:e{i}@many",
                f"DTSTART:{first + timedelta(minutes=3 * i):%Y%m%dT%H%M%SZ}",
                f"SUMMARY:Händelse {i}",
            )
            for i in range(n)
        )
    )


@pytest.fixture
async def worker() -> AsyncIterator[ParseWorker]:
    made = ParseWorker()
    try:
        yield made
    finally:
        await made.close()


def swedish(error: FeedError) -> str:
    translator = Translator()
    translator.load_dir(LOCALES)
    return error.reason(translator.t, "sv")


async def test_a_parse_past_its_budgets_is_refused_and_says_which(worker: ParseWorker) -> None:
    body = many_events(10_000).encode()
    with pytest.raises(FeedError) as slow:
        await worker.parse(
            body, source="f", associations=(), window=WINDOW, budget=Budget(0.5, 512)
        )
    assert slow.value.reason_key == "calendar.reason.parse_slow"
    assert swedish(slow.value) == "det tar längre än 0.5 sekunder att läsa in det"
    # One event whose description alone is 16 MB: its copies, as it is read, fill 64 MiB.
    bloated = vcalendar(
        vevent("UID:big@x", "DTSTART:20261210T180000", "DESCRIPTION:" + "x" * 2**24)
    )
    with pytest.raises(FeedError) as big:
        await worker.parse(
            bloated.encode(), source="f", associations=(), window=WINDOW, budget=Budget(60, 64)
        )
    assert big.value.reason_key == "calendar.reason.parse_memory"
    assert swedish(big.value) == "det kräver mer än 64 MiB minne att läsa in det"
    # The worker that failed is gone; the next parse gets a new one and works.
    small = vcalendar(HEALTHY).encode()
    parsed = await worker.parse(
        small, source="f", associations=(), window=WINDOW, budget=Budget(60, 512)
    )
    assert [o.uid for o in parsed.occurrences] == ["healthy@x"]


async def test_a_rule_that_never_matches_costs_only_its_own_event(
    worker: ParseWorker, caplog: pytest.LogCaptureFixture
) -> None:
    never = vevent(
        "UID:never@x", "DTSTART:20261201T100000Z", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"
    )
    body = vcalendar(never, HEALTHY).encode()
    with caplog.at_level(logging.WARNING, logger="plugins.calendar"):
        parsed = await worker.parse(
            body, source="f", associations=(), window=WINDOW, budget=Budget(60, 512, 0.3)
        )
    assert [o.uid for o in parsed.occurrences] == ["healthy@x"]
    assert [(i.uid, i.code) for i in parsed.left_out] == [("never@x", "too_slow")]
    assert "event 'never@x' (line 4) left out: working out its dates took too long" in (caplog.text)


async def test_an_endless_rule_begun_long_ago_stops_at_the_cap(worker: ParseWorker) -> None:
    every_minute = vevent("UID:minutes@x", "DTSTART:20100101T000000Z", "RRULE:FREQ=MINUTELY")
    began = time.perf_counter()
    parsed = await worker.parse(
        vcalendar(every_minute).encode(),
        source="f",
        associations=(),
        window=WINDOW,
        budget=Budget(60, 512),
    )
    elapsed = time.perf_counter() - began
    assert len(parsed.occurrences) == WINDOW.max_per_series
    assert min(o.start for o in parsed.occurrences) > WINDOW.start
    assert parsed.cutoffs["minutes@x"] == max(o.start for o in parsed.occurrences)
    assert elapsed < 30  # sixteen years of minutes are never walked through
    assert parsed.peak_kib < 512 * 1024


async def test_a_worker_that_dies_is_an_unexpected_error_logged_in_full(
    worker: ParseWorker, caplog: pytest.LogCaptureFixture
) -> None:
    body = many_events(20_000).encode()
    task = asyncio.create_task(
        worker.parse(body, source="f", associations=(), window=WINDOW, budget=Budget(120, 1024))
    )
    await until(lambda: worker.pid is not None)
    await asyncio.sleep(0.3)  # reading by now
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    with (
        caplog.at_level(logging.ERROR, logger="plugins.calendar"),
        pytest.raises(FeedError) as died,
    ):
        await task
    assert died.value.reason_key == "calendar.reason.unexpected"
    assert "the parsing process failed (exit status -9)" in caplog.text


async def test_a_hostile_feed_and_a_huge_one_never_stall_the_bot(tmp_path: Path) -> None:
    hostile = tmp_path / "fientlig.ics"
    every_second = vevent("UID:secondly@x", "DTSTART:20261126T000000Z", "RRULE:FREQ=SECONDLY")
    hostile.write_text(vcalendar(every_second, HEALTHY), encoding="utf-8")
    huge = tmp_path / "stor.ics"
    huge.write_text(vcalendar(HEALTHY), encoding="utf-8")
    feeds = feed_toml(hostile, ["falun"]) + feed_toml(huge, ["mora"])
    extra = "max_occurrences = 40000\nparse_timeout = '600s'\n"
    settings = make_settings(tmp_path, feeds, reminders='"1h"', extra=extra)
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert {
            o.uid for o in await bot.plugin.store.load_source(feed_id(str(hostile)), START)
        } == {"healthy@x"}
        huge.write_text(many_events(30_000), encoding="utf-8")
        loop = asyncio.get_running_loop()
        worst = 0.0
        refresh = asyncio.create_task(bot.refresh())

        async def tick() -> None:
            nonlocal worst
            while not refresh.done():
                before = loop.time()
                await asyncio.sleep(0.01)
                worst = max(worst, loop.time() - before - 0.01)

        ticker = asyncio.create_task(tick())
        began = time.perf_counter()
        await asyncio.sleep(0.5)  # the worker is reading by now
        await bot.say("mora", "bo", "!event list --days 30")  # Mora reads English
        answered_while_reading = not refresh.done()
        assert bot.texts("mora")[-1].startswith("Upcoming events in the next 30 days")
        await refresh
        await ticker
        elapsed = time.perf_counter() - began
        assert answered_while_reading
        stored = await bot.plugin.store.load_source(feed_id(str(huge)), START)
        assert len(stored) == 30_000
        assert len(await bot.pending()) == 30_000 + 1  # one offset each; the healthy one
        assert worst < 2.0  # generous: the loop never waited on the parse
        assert elapsed < 600
    finally:
        await bot.stop()
