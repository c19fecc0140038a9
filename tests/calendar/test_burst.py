"""A thousand reminders due at one instant: one wake-up takes them all, their posts are
queued together, and each room gets each reminder once, in order. (Their lateness on
the real clock is a figure of bench/calendar_bench.py, not a timed test.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.clock import FakeClock
from bot.core.refs import RoomRef
from plugins.calendar.model import reminder_key
from tests.calendar.support import Bot, feed_toml, make_settings, vcalendar, vevent

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
EVENT = datetime(2026, 12, 10, 17, tzinfo=UTC)  # 18.00 in Stockholm
OCC = "20261210T170000Z"
COUNT = 1000


async def test_a_thousand_reminders_due_at_one_instant_go_out_together(tmp_path: Path) -> None:
    uids = [f"burst-{i:04d}@test.example" for i in range(COUNT)]
    titles = {uid: f"Möte {i}" for i, uid in enumerate(uids)}
    feed = tmp_path / "burst.ics"
    feed.write_text(
        vcalendar(
            *(
                vevent(
                    f"UID:{uid}", "DTSTART;TZID=Europe/Stockholm:20261210T180000", f"SUMMARY:{t}"
                )
                for uid, t in titles.items()
            )
        ),
        encoding="utf-8",
    )
    settings = make_settings(tmp_path, feed_toml(feed, ["falun"]), reminders='"1h"')
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert len(await bot.pending()) == COUNT
        due = EVENT - timedelta(hours=1)
        await bot.advance_to(due - timedelta(seconds=1))  # the days before, lived through
        assert bot.texts("falun") == []
        bot.clock.set(due)
        assert await bot.running.scheduler.run_due() == COUNT  # one wake-up for all
        assert await bot.running.delivery.wait_idle(120)
        # Rows run in key order, and each room's lane keeps that order.
        expected = [f"📅 Påminnelse: {titles[uid]}" for uid in sorted(uids)]
        for room in ("falun", "falun2"):
            heads = [t.splitlines()[0] for t in bot.texts(room)]
            assert heads == expected
            keys = [
                reminder_key(uid, OCC, timedelta(hours=1), RoomRef("console", room)) for uid in uids
            ]
            statuses = await bot.running.delivery.statuses(keys)
            assert set(statuses.values()) == {"sent"} and len(statuses) == COUNT
        assert await bot.pending() == {}
        assert bot.texts("styrelse") == []  # nothing missed, nothing reported
    finally:
        await bot.stop()
