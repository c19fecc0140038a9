"""Reminders through a real App: posted at their instants, moved, cancelled, and across
restarts and downtime. The clock is fake and the waker manual: nothing sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.clock import FakeClock
from bot.core.refs import RoomRef
from plugins.calendar.model import reminder_key
from tests.calendar.support import Bot, feed_toml, fixture_copy, make_settings
from tests.engines import Target

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
# single.ics: Styrelsemöte, tuesday 8 December 2026 18.00-20.00 in Stockholm (17.00 UTC).
EVENT = datetime(2026, 12, 8, 17, tzinfo=UTC)
UID = "single-1@test.example"
OCC = "20261208T170000Z"
WEEK_BEFORE = EVENT - timedelta(days=7)
DAY_BEFORE = EVENT - timedelta(days=1)
HOUR_BEFORE = EVENT - timedelta(hours=1)


@pytest.fixture
async def single(tmp_path: Path, db_target: Target) -> AsyncIterator[tuple[Bot, Path]]:
    path = fixture_copy(tmp_path, "single.ics")
    settings = make_settings(tmp_path, feed_toml(path, ["falun"]), database=db_target)
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        yield bot, path
    finally:
        await bot.stop()


def reminders(bot: Bot, room: str) -> list[str]:
    return [t for t in bot.texts(room) if "Påminnelse" in t or "Reminder" in t]


async def test_reminders_are_armed_and_posted_at_their_instants(
    single: tuple[Bot, Path],
) -> None:
    bot, _ = single
    pending = await bot.pending()
    assert sorted(pending.values()) == [WEEK_BEFORE, DAY_BEFORE, HOUR_BEFORE]

    await bot.advance_to(WEEK_BEFORE - timedelta(seconds=1))
    assert reminders(bot, "falun") == []
    await bot.advance_to(WEEK_BEFORE)
    for room in ("falun", "falun2"):
        (text,) = reminders(bot, room)
        assert text.startswith("📅 Påminnelse: Styrelsemöte")
        assert "tisdag 8 december kl. 18.00–20.00 (om 7 dagar)" in text
        assert "📍 Folkets hus, Falun" in text
        assert "https://example.org/kalendarium/styrelse" in text
        assert "…" in text and "så att vi ser det" not in text  # a short excerpt only
        assert "händelse svara" in text
    assert bot.texts("mora") == []  # the feed targets Falun only
    status = await bot.running.delivery.status(
        reminder_key(UID, OCC, timedelta(days=7), RoomRef("console", "falun"))
    )
    assert status == "sent"

    await bot.advance_to(HOUR_BEFORE)
    texts = reminders(bot, "falun")
    assert len(texts) == 3
    assert "(om 1 dag)" in texts[1] and "(om 1 timme)" in texts[2]
    assert not any("försenat" in t for t in texts)
    assert await bot.pending() == {}


async def test_an_english_association_reads_english(tmp_path: Path, db_target: Target) -> None:
    path = fixture_copy(tmp_path, "single.ics")
    bot = await Bot(
        make_settings(tmp_path, feed_toml(path, ["mora"]), database=db_target), FakeClock(START)
    ).start()
    try:
        await bot.advance_to(WEEK_BEFORE)
        (text,) = reminders(bot, "mora")
        assert "Tuesday 8 December at 18:00–20:00 (in 7 days)" in text
    finally:
        await bot.stop()


async def test_a_moved_event_rearms_and_tells_the_reminded_rooms(
    single: tuple[Bot, Path],
) -> None:
    bot, path = single
    await bot.advance_to(WEEK_BEFORE)  # the 7d reminder is out
    moved_to = datetime(2026, 12, 10, 18, tzinfo=UTC)  # thursday 19.00 local
    path.write_text(
        path.read_text()
        .replace("20261208T180000", "20261210T190000")
        .replace("20261208T200000", "20261210T210000"),
        encoding="utf-8",
    )
    await bot.refresh()
    for room in ("falun", "falun2"):
        notices = [t for t in bot.texts(room) if t.startswith("🔁")]
        assert notices == [
            "🔁 Ny tid: Styrelsemöte blir i stället torsdag 10 december kl. 19.00–21.00."
        ]
    pending = sorted((await bot.pending()).values())
    assert pending == [moved_to - timedelta(days=1), moved_to - timedelta(hours=1)]
    # A key keeps the occurrence's identity: its original start.
    assert all(OCC in key for key in await bot.pending())

    await bot.refresh()  # nothing new: no second notice
    assert len([t for t in bot.texts("falun") if t.startswith("🔁")]) == 1
    await bot.advance_to(DAY_BEFORE + timedelta(hours=2))
    assert len(reminders(bot, "falun")) == 1  # the old 1d instant passed quietly
    await bot.advance_to(moved_to - timedelta(days=1))
    assert "torsdag 10 december kl. 19.00" in reminders(bot, "falun")[-1]


async def test_a_move_before_any_reminder_says_nothing(single: tuple[Bot, Path]) -> None:
    bot, path = single
    path.write_text(path.read_text().replace("20261208T", "20261215T"), encoding="utf-8")
    await bot.refresh()
    assert bot.texts() == []
    # A week later: the 7d reminder is now due at the old event's own time.
    assert min((await bot.pending()).values()) == EVENT


async def test_a_cancelled_event_drops_its_reminders_and_says_so_once(
    single: tuple[Bot, Path],
) -> None:
    bot, path = single
    await bot.advance_to(WEEK_BEFORE)
    path.write_text(
        path.read_text().replace("SUMMARY:", "STATUS:CANCELLED\nSUMMARY:"), encoding="utf-8"
    )
    await bot.refresh()
    await bot.refresh()
    for room in ("falun", "falun2"):
        cancelled = [t for t in bot.texts(room) if t.startswith("❌")]
        assert cancelled == [
            "❌ Inställt: Styrelsemöte (tisdag 8 december kl. 18.00–20.00) blir inte av."
        ]
    assert await bot.pending() == {}
    await bot.advance_to(HOUR_BEFORE)
    assert len(reminders(bot, "falun")) == 1
    await bot.say("falun", "bo", "!händelse lista")
    assert "Styrelsemöte" not in bot.texts("falun")[-1]


async def test_a_vanished_event_is_as_good_as_cancelled(single: tuple[Bot, Path]) -> None:
    bot, path = single
    await bot.advance_to(WEEK_BEFORE)
    text = path.read_text()
    path.write_text(text[: text.index("BEGIN:VEVENT")] + "END:VCALENDAR\n", encoding="utf-8")
    await bot.refresh()
    assert [t for t in bot.texts("falun") if t.startswith("❌")]
    assert await bot.pending() == {}


async def test_a_vanished_event_never_reminded_goes_quietly(single: tuple[Bot, Path]) -> None:
    bot, path = single
    text = path.read_text()
    path.write_text(text[: text.index("BEGIN:VEVENT")] + "END:VCALENDAR\n", encoding="utf-8")
    await bot.refresh()
    assert bot.texts() == []
    assert await bot.pending() == {}


async def test_weekly_feed_arms_every_occurrence_but_the_excluded_one(
    tmp_path: Path, db_target: Target
) -> None:
    path = fixture_copy(tmp_path, "weekly.ics")
    bot = await Bot(
        make_settings(tmp_path, feed_toml(path, ["*"]), database=db_target), FakeClock(START)
    ).start()
    try:
        keys = await bot.pending()
        occurrences = {k.split(":")[-2] for k in keys}
        assert "20261215T170000Z" not in occurrences  # EXDATE
        moved = [d for k, d in keys.items() if "20261222T170000Z" in k]
        # The moved occurrence is reminded before its new time, 23 December 19.00.
        assert min(moved) == datetime(2026, 12, 16, 18, tzinfo=UTC)
        await bot.advance_to(datetime(2026, 12, 16, 18, tzinfo=UTC))
        assert "onsdag 23 december kl. 19.00" in reminders(bot, "mora")[-1].replace(
            "Wednesday 23 December at 19:00", "onsdag 23 december kl. 19.00"
        )
        assert "onsdag 23 december kl. 19.00" in reminders(bot, "falun")[-1]
    finally:
        await bot.stop()


async def test_a_restart_just_before_a_reminder_posts_it_exactly_once(
    tmp_path: Path, db_target: Target
) -> None:
    path = fixture_copy(tmp_path, "single.ics")
    settings = make_settings(tmp_path, feed_toml(path, ["falun"]), database=db_target)
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    await bot.advance_to(WEEK_BEFORE - timedelta(seconds=30))
    await bot.stop()
    clock.set(WEEK_BEFORE - timedelta(seconds=5))
    await bot.start()
    await bot.advance_to(WEEK_BEFORE + timedelta(seconds=1))
    await bot.running.scheduler.run_due()
    await bot.stop()
    await bot.start()  # and once more, after it was posted
    await bot.advance_to(WEEK_BEFORE + timedelta(minutes=5))
    await bot.stop()
    for room in ("falun", "falun2"):
        (text,) = reminders(bot, room)
        assert "försenat" not in text


async def test_a_bot_down_across_the_due_time_posts_it_marked_late(
    tmp_path: Path, db_target: Target
) -> None:
    path = fixture_copy(tmp_path, "single.ics")
    settings = make_settings(tmp_path, feed_toml(path, ["falun"]), database=db_target)
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    await bot.advance_to(DAY_BEFORE - timedelta(minutes=1))
    await bot.stop()
    clock.set(DAY_BEFORE + timedelta(minutes=20))  # within the hour of grace
    await bot.start()
    await bot.stop()
    texts = reminders(bot, "falun")
    assert len(texts) == 2
    assert texts[1].startswith("(försenat) 📅 Påminnelse: Styrelsemöte")


async def test_beyond_grace_a_reminder_is_reported_once_to_organisers(
    tmp_path: Path, db_target: Target
) -> None:
    path = fixture_copy(tmp_path, "single.ics")
    settings = make_settings(tmp_path, feed_toml(path, ["falun"]), database=db_target)
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    await bot.stop()
    clock.set(WEEK_BEFORE + timedelta(hours=3))
    await bot.start()
    await bot.stop()
    await bot.start()
    await bot.stop()
    assert reminders(bot, "falun") == []
    (report,) = bot.texts("styrelse")
    assert "påminnelse om en kalenderhändelse" in report
    assert "tisdag 1 december kl. 18.00" in report


async def test_the_weekly_agenda_goes_to_each_room_with_events(
    tmp_path: Path, db_target: Target
) -> None:
    weekly = fixture_copy(tmp_path, "weekly.ics")
    single = fixture_copy(tmp_path, "single.ics")
    feeds = feed_toml(weekly, ["falun"]) + feed_toml(single, ["falun"])
    clock = FakeClock(datetime(2026, 11, 29, 12, tzinfo=UTC))
    bot = await Bot(
        make_settings(tmp_path, feeds, digest="30 7 * * mon", database=db_target), clock
    ).start()
    try:
        monday = datetime(2026, 11, 30, 6, 30, tzinfo=UTC)  # 07.30 in Stockholm
        await bot.advance_to(monday - timedelta(seconds=1))
        assert bot.texts() == []
        await bot.advance_to(monday)
        for room in ("falun", "falun2"):
            (agenda,) = bot.texts(room)
            lines = agenda.splitlines()
            assert lines[0] == "📅 Veckans kalendarium för Falun:"
            assert len(lines) == 2  # 8 December is more than seven days ahead
            assert "tisdag 1 december kl. 18.00–19.30 – Studiecirkel (ABF Borlänge)" in lines[1]
        assert bot.texts("mora") == []  # nothing for Mora: no message at all
        await bot.advance_to(monday + timedelta(days=7))
        second = [t for t in bot.texts("falun") if t.startswith("📅 Veckans")][1]
        assert "Styrelsemöte" in second and "Studiecirkel" in second
    finally:
        await bot.stop()


async def test_settings_changes_take_effect_at_restart(tmp_path: Path, db_target: Target) -> None:
    path = fixture_copy(tmp_path, "single.ics")
    clock = FakeClock(START)
    bot = await Bot(
        make_settings(tmp_path, feed_toml(path, ["falun"]), database=db_target), clock
    ).start()
    await bot.say("falun", "anna", '!händelse ny "Möte" "2026-12-20 18:00"')
    await bot.stop()
    # Other offsets: the old ones are dropped, the new ones armed, feed and own events alike.
    changed = make_settings(
        tmp_path, feed_toml(path, ["falun"]), reminders='"2h"', database=db_target
    )
    bot = await Bot(changed, clock).start()
    labels = sorted(k.rsplit(":", 1)[1] for k in await bot.pending())
    assert labels == ["2h", "2h"]
    await bot.stop()
    # A feed taken out of the settings takes its events and reminders with it.
    bot = await Bot(
        make_settings(tmp_path, "", reminders='"2h"', database=db_target), clock
    ).start()
    try:
        assert [k for k in await bot.pending() if "single-1" in k] == []
        await bot.say("falun", "bo", "!händelse lista --dagar 60")
        listing = bot.texts("falun")[-1]
        assert "Möte" in listing and "Styrelsemöte" not in listing
    finally:
        await bot.stop()


async def test_a_start_with_the_same_settings_arms_nothing_again(
    tmp_path: Path, db_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugins.calendar.arming import Reminders

    settings = make_settings(tmp_path, database=db_target)
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    await bot.say("falun", "anna", '!händelse ny "Möte" "2026-12-20 18:00"')
    armed = await bot.pending()
    assert len(armed) == 3
    await bot.stop()

    # Every event is armed for these offsets already: the start reads none of them.
    calls: list[int] = []
    real = Reminders.arm_many

    async def counting(self: Reminders, items: list[object], now: datetime) -> int:
        calls.append(len(items))
        return await real(self, items, now)  # type: ignore[arg-type]

    monkeypatch.setattr(Reminders, "arm_many", counting)
    await bot.start()
    assert calls == [] and await bot.pending() == armed
    # A database whose reminders were stored but never armed for this code (an older
    # version's, or rows written by hand): the start arms them all.
    await bot.running.db.execute("DELETE FROM calendar_armed")
    await bot.running.db.execute("DELETE FROM schedule WHERE key LIKE 'calendar:reminder:%'")
    await bot.stop()
    await bot.start()
    try:
        assert calls == [1] and await bot.pending() == armed
        await bot.advance_to(datetime(2026, 12, 20, 16, tzinfo=UTC))  # the hour before
        posted = [t for t in bot.texts("falun") if t.startswith("📅 Påminnelse: Möte")]
        assert len(posted) == 3
    finally:
        await bot.stop()
