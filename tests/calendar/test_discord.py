"""Against the Discord stand-in: a reminder arrives with its two buttons, and a press
counts as an answer (a later press replaces the earlier one)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.discord import DiscordAdapter
from bot.app import App
from bot.core.clock import FakeClock, SystemClock
from bot.scheduling import ManualWaker
from plugins.calendar import CalendarPlugin
from plugins.calendar.arming import RSVP_NO, RSVP_YES
from tests.calendar.support import feed_toml, fixture_copy
from tests.discord.botrun import World, discord_factory
from tests.discord.botrun import config_text as discord_config
from tests.support import settings_from

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
WEEK_BEFORE = datetime(2026, 12, 1, 17, tzinfo=UTC)  # single.ics: 8 December 18.00
UID, OCC = "single-1@test.example", "20261208T170000Z"


async def test_reminders_reach_discord_with_buttons_that_answer(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun, mora, _ = world.channels
    feed = fixture_copy(tmp_path, "single.ics")
    settings = settings_from(
        tmp_path,
        discord_config(world, tmp_path)
        + """
        [calendar]
        digest = "0 8 1 1 *"
        refresh = "1d"
        """
        + feed_toml(feed, ["falun"]),
        [CalendarPlugin],
    )
    built: list[DiscordAdapter] = []
    clock = FakeClock(START)
    app = App(
        settings,
        [CalendarPlugin],
        # The platform's clock is the real one.
        adapter_factories={"discord": discord_factory(settings, built, clock=SystemClock())},
        clock=clock,
        waker=ManualWaker(),
        delivery_backoff=0.1,
    )
    task = asyncio.create_task(app.run())
    try:
        await s.wait_for(lambda: bool(built) and built[0]._ready.is_set(), 15, "Discord")
        while (due := await app.scheduler.next_due()) is not None and due <= WEEK_BEFORE:
            clock.set(due)
            await app.scheduler.run_due()
        posted = await s.wait_for(
            lambda: [m for m in s.channel_messages(falun.id) if m.author_id == s.bot.id],
            what="the reminder",
        )
        (reminder,) = posted
        assert "Påminnelse: Styrelsemöte" in reminder.data["content"]
        buttons = [c for row in reminder.data["components"] for c in row["components"]]
        assert [b["custom_id"] for b in buttons] == [RSVP_YES, RSVP_NO]
        assert not [m for m in s.channel_messages(mora.id) if m.author_id == s.bot.id]

        store = next(p for p in app.plugins if isinstance(p, CalendarPlugin)).store

        async def counts() -> dict[str, int]:
            return await store.counts(UID, OCC)

        await s.click(reminder, world.bertil, RSVP_YES)
        await s.click(reminder, world.anna, RSVP_NO)
        for _ in range(500):
            if await counts() == {"yes": 1, "no": 1}:
                break
            await asyncio.sleep(0.01)
        assert await counts() == {"yes": 1, "no": 1}
        await s.click(reminder, world.anna, RSVP_YES)  # she changes her mind
        for _ in range(500):
            if await counts() == {"yes": 2}:
                break
            await asyncio.sleep(0.01)
        assert await counts() == {"yes": 2}
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 20)
