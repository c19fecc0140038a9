"""Out-of-range dates, durations, numbers and ids written in chat: each gets a clear reply
in the user's language, naming the range, and nothing is stored (issue 14: they used to
reach an internal error, no reply at all, or were quietly changed). Through a real App
and the console, as a user writes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.clock import FakeClock
from bot.core.commands import LARGEST_INTEGER
from bot.core.timeparse import EARLIEST_TIME, LATEST_TIME, LONGEST_DURATION, format_duration
from tests.calendar.support import Bot as CalendarBot
from tests.calendar.support import make_settings as calendar_settings
from tests.polls.support import Bot as PollsBot
from tests.polls.support import make_settings as polls_settings
from tests.updates.support import Bot as UpdatesBot
from tests.updates.support import make_settings as updates_settings

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
EARLIEST = EARLIEST_TIME.strftime("%Y-%m-%d %H:%M")
LATEST = LATEST_TIME.strftime("%Y-%m-%d %H:%M")
# Our own apology, in either language: a user's mistake must never get it.
APOLOGIES = ("Förlåt, något gick fel hos mig", "Sorry, something went wrong on my side")


@pytest.fixture
async def calendar(tmp_path: Path) -> AsyncIterator[CalendarBot]:
    running = await CalendarBot(
        calendar_settings(tmp_path, extra='horizon = "60d"'), FakeClock(START)
    ).start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def polls(tmp_path: Path) -> AsyncIterator[PollsBot]:
    running = await PollsBot(polls_settings(tmp_path), FakeClock(START)).start()
    try:
        yield running
    finally:
        await running.stop()


def no_apology(texts: list[str]) -> None:
    assert not [t for t in texts if t.startswith(APOLOGIES)], texts


async def test_times_outside_the_calendar_of_people(calendar: CalendarBot) -> None:
    for when in ("0001-01-01 00:00", "9999-12-31 23:59", "1969-12-31 23:59", "3000-01-01 00:00"):
        await calendar.say("falun", "anna", f'!händelse ny "Möte" "{when}"')
        reply = calendar.texts("falun")[-1]
        assert reply.startswith(f"”{when}” går inte som tid"), reply
        assert f"mellan {EARLIEST} och {LATEST}" in reply
        await calendar.say("mora", "anna", f'!event add "Meeting" "{when}"')  # Mora reads English
        assert f"it must be between {EARLIEST} and {LATEST}" in calendar.texts("mora")[-1]
    # The last minute of the range is a time like any other.
    await calendar.say("falun", "anna", f'!händelse ny "Sist" "{LATEST}"')
    assert calendar.texts("falun")[-1].startswith("Händelse ")
    no_apology(calendar.texts())


async def test_event_lengths_outside_their_range(calendar: CalendarBot) -> None:
    for length in ("99999999999999999999d", "100000d", "367d", "30s"):
        await calendar.say(
            "falun", "anna", f'!händelse ny "Läger" "2026-12-20 14:00" --längd {length}'
        )
        reply = calendar.texts("falun")[-1]
        assert f"”{length}” går inte som längd: det ska vara mellan 1m och 366d" in reply
    assert [k for k in await calendar.pending() if ":manual:" in k] == []
    await calendar.say("falun", "anna", '!händelse ny "Läger" "2026-12-20 14:00" --längd 366d')
    assert calendar.texts("falun")[-1].startswith("Händelse ")
    no_apology(calendar.texts())


async def test_ids_past_64_bits_and_below_one(calendar: CalendarBot) -> None:
    past = str(LARGEST_INTEGER + 1)
    for command in (f"!händelse ta-bort {past}", "!händelse ta-bort 0", "!händelse ta-bort -1"):
        await calendar.say("falun", "anna", command)
        assert f"det ska vara mellan 1 och {LARGEST_INTEGER}" in calendar.texts("falun")[-1]
    await calendar.say("falun", "bo", f"!händelse svara {past} ja")
    assert f"”{past}” går inte som id" in calendar.texts("falun")[-1]
    # The largest id is only an id that no event has.
    await calendar.say("falun", "anna", f"!händelse ta-bort {LARGEST_INTEGER}")
    assert "går inte som" not in calendar.texts("falun")[-1]
    no_apology(calendar.texts())


async def test_days_are_refused_not_changed(calendar: CalendarBot) -> None:
    horizon = calendar.plugin.settings.horizon.days
    for days in ("-1", "0", str(horizon + 1), str(LARGEST_INTEGER + 1)):
        await calendar.say("falun", "bo", f"!händelse lista --dagar {days}")
        reply = calendar.texts("falun")[-1]
        assert reply.startswith(f"”{days}” går inte som dagar"), reply
    await calendar.say("mora", "bo", "!event list --days 0")
    assert "it must be between 1 and" in calendar.texts("mora")[-1]
    await calendar.say("falun", "bo", f"!händelse lista --dagar {horizon}")
    assert f"{horizon} dagar" in calendar.texts("falun")[-1]
    no_apology(calendar.texts())


async def test_poll_times_and_lengths_outside_their_range(polls: PollsBot) -> None:
    new = '!omröstning ny "Fika?" "Ja" "Nej"'
    for when in ("0001-01-01 00:00", "9999-12-31 23:59"):
        await polls.say("falun", "anna", f'{new} --till "{when}"')
        assert f"mellan {EARLIEST} och {LATEST}" in polls.last("falun")
    longest = format_duration(LONGEST_DURATION)
    await polls.say("falun", "anna", f"{new} --längd 99999999999999999999d")
    assert f"det ska vara mellan 1s och {longest}" in polls.last("falun")
    await polls.say("leksand", "anna", '!poll new "Q?" "Yes" "No" --for 99999999999999999999d')
    assert f"it must be between 1s and {longest}" in polls.last("leksand")
    # Within the general range, the poll's own limit speaks.
    await polls.say("falun", "anna", f"{new} --längd {LONGEST_DURATION.days}d")
    assert "högst 365 dagar" in polls.last("falun")
    assert not [t for t in polls.texts() if t.startswith(("📊", "🔒"))]
    await polls.say("falun", "anna", f"{new} --längd {timedelta(days=2).days}d")
    assert polls.last("falun").startswith("Omröstning ")
    no_apology(polls.texts())


@pytest.fixture
async def updates(tmp_path: Path) -> AsyncIterator[UpdatesBot]:
    running = await UpdatesBot(updates_settings(tmp_path), FakeClock(START)).start()
    try:
        yield running
    finally:
        await running.stop()


async def test_update_and_feed_ids_past_64_bits(updates: UpdatesBot) -> None:
    past = str(LARGEST_INTEGER + 1)
    room = "falun"
    for command in (
        f"!flöde ta-bort {past}",
        f"!flöde pausa {past}",
        f"!flöde återuppta {past}",
        "!flöde ta-bort 0",
        f"!update cancel {past}",
        f'!update edit {past} "Ny text"',
    ):
        await updates.say(room, "anna", command)
        assert f"det ska vara mellan 1 och {LARGEST_INTEGER}" in updates.texts(room)[-1], command
    await updates.say(room, "anna", '!uppdatering ny "Nytt" --tid "9999-01-01 10:00"')
    assert f"mellan {EARLIEST} och {LATEST}" in updates.texts(room)[-1]
    no_apology(updates.texts())
