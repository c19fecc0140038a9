"""Parsing and expansion of our own iCal fixtures, and the pure rules around them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.core.refs import RoomRef
from plugins.calendar.arming import due_at
from plugins.calendar.fetching import FeedError
from plugins.calendar.model import Occurrence, parse_reminder_key, reminder_key
from plugins.calendar.parsing import Parsed, Window, parse_calendar
from plugins.calendar.settings import CalendarSettings, refresh_cron
from tests.calendar.support import FIXTURES

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def parse(
    name: str,
    *,
    start: datetime = NOW,
    days: int = 90,
    tz: ZoneInfo = STOCKHOLM,
    per_series: int = 500,
    total: int = 20_000,
) -> Parsed:
    body = (FIXTURES / name).read_bytes()
    window = Window(start, start + timedelta(days=days), tz, total, per_series)
    return parse_calendar(body, source="test", associations=("*",), window=window)


def local(o: Occurrence) -> tuple[str, str]:
    return (o.start.astimezone(STOCKHOLM).isoformat(), o.end.astimezone(STOCKHOLM).isoformat())


def test_floating_times_are_read_in_the_bots_zone() -> None:
    parsed = parse("floating.ics")
    meeting = next(o for o in parsed.occurrences if o.uid == "floating-1@test.example")
    assert local(meeting) == ("2026-12-10T18:30:00+01:00", "2026-12-10T20:00:00+01:00")
    assert meeting.single and not meeting.all_day
    lunches = [o for o in parsed.occurrences if o.uid == "floating-2@test.example"]
    assert [o.start.astimezone(STOCKHOLM).hour for o in lunches] == [12, 12, 12]
    # The same file read by a bot in another zone means other instants.
    london = parse("floating.ics", tz=ZoneInfo("Europe/London"))
    other = next(o for o in london.occurrences if o.uid == "floating-1@test.example")
    assert other.start - meeting.start == timedelta(hours=1)


def test_weekly_rule_with_exdate_and_a_moved_occurrence() -> None:
    parsed = parse("weekly.ics")
    by_occ = {o.occ: o for o in parsed.occurrences}
    assert sorted(by_occ) == [
        "20261201T170000Z",
        "20261208T170000Z",
        "20261222T170000Z",
        "20261229T170000Z",
        "20270105T170000Z",
    ]  # 15 December is excluded; COUNT=6 minus one EXDATE
    moved = by_occ["20261222T170000Z"]  # identity: the original start
    assert local(moved) == ("2026-12-23T19:00:00+01:00", "2026-12-23T20:30:00+01:00")
    assert moved.title == "Studiecirkel (flyttad till onsdag)"
    assert not moved.single


def test_all_day_events() -> None:
    parsed = parse("allday.ics")
    one, three = parsed.occurrences
    assert one.all_day and three.all_day
    assert one.occ == "20261212" and local(one)[0] == "2026-12-12T00:00:00+01:00"
    assert three.end - three.start == timedelta(days=3)


def test_cancelled_events_and_cancelled_occurrences_are_marked() -> None:
    parsed = parse("cancelled.ics")
    flags = {(o.uid, o.occ): o.cancelled for o in parsed.occurrences}
    assert flags == {
        ("cancelled-1@test.example", "20261209T170000Z"): True,
        ("series-1@test.example", "20261203T160000Z"): False,
        ("series-1@test.example", "20261210T160000Z"): True,
        ("series-1@test.example", "20261217T160000Z"): False,
    }


def test_both_dst_transitions_keep_local_time() -> None:
    parsed = parse("dst.ics", start=datetime(2026, 3, 1, tzinfo=UTC), days=300)
    for uid, hour in (
        ("spring@test.example", 18),
        ("autumn@test.example", 18),
        ("floating-dst@test.example", 9),
    ):
        items = [o for o in parsed.occurrences if o.uid == uid]
        assert len(items) == 3
        assert {o.start.astimezone(STOCKHOLM).hour for o in items} == {hour}
        # The UTC instants differ by the change of offset across the transition.
        utc_hours = [o.start.hour for o in items]
        assert len(set(utc_hours)) == 2


def test_reminders_count_days_on_the_local_calendar_across_dst() -> None:
    parsed = parse("dst.ics", start=datetime(2026, 3, 1, tzinfo=UTC), days=300)
    spring = next(o for o in parsed.occurrences if o.occ == "20260329T160000Z")
    # 29 March 18.00 CEST; 1d before is 28 March 18.00 CET, 23 hours earlier.
    day_before = due_at(spring, timedelta(days=1), STOCKHOLM, time(9))
    assert day_before.astimezone(STOCKHOLM).isoformat() == "2026-03-28T18:00:00+01:00"
    assert spring.start - day_before == timedelta(hours=23)
    autumn = next(o for o in parsed.occurrences if o.occ == "20261025T170000Z")
    week_before = due_at(autumn, timedelta(days=7), STOCKHOLM, time(9))
    assert week_before.astimezone(STOCKHOLM).isoformat() == "2026-10-18T18:00:00+02:00"
    hour_before = due_at(autumn, timedelta(hours=1), STOCKHOLM, time(9))
    assert autumn.start - hour_before == timedelta(hours=1)


def test_all_day_reminders_count_from_the_configured_time() -> None:
    one = parse("allday.ics").occurrences[0]
    due = due_at(one, timedelta(days=1, hours=1), STOCKHOLM, time(9, 30))
    assert due.astimezone(STOCKHOLM).isoformat() == "2026-12-11T08:30:00+01:00"


def test_a_malformed_file_is_refused_with_a_reason() -> None:
    with pytest.raises(FeedError, match="not a valid iCalendar file"):
        parse("malformed.ics")
    with pytest.raises(FeedError, match="not a valid iCalendar file"):
        parse_calendar(
            b"<html><body>Not found</body></html>",
            source="test",
            associations=("*",),
            window=Window(NOW, NOW + timedelta(days=1), STOCKHOLM, 10, 10),
        )


def test_rules_without_end_are_expanded_over_the_window_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        parsed = parse("endless.ics", days=30, per_series=200)
    daily = [o for o in parsed.occurrences if o.uid == "endless-daily@test.example"]
    assert len(daily) == 30  # one a day inside the 30-day window, none after
    assert max(o.start for o in daily) < NOW + timedelta(days=30)
    minutely = [o for o in parsed.occurrences if o.uid == "endless-minutely@test.example"]
    assert len(minutely) == 200
    assert parsed.cutoffs["endless-minutely@test.example"] == max(o.start for o in minutely)
    # The event with a broken date is left out, with a log line; the others stay.
    assert parsed.skipped == 1
    assert "broken-date@test.example" in caplog.text
    assert "recurs more than 200 times" in caplog.text


def test_a_huge_file_hits_the_occurrence_cap(tmp_path: Path) -> None:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:e{i}@huge\r\nDTSTART:20261201T{i % 24:02d}0000\r\n"
        f"SUMMARY:Event {i}\r\nEND:VEVENT\r\n"
        for i in range(3000)
    )
    body = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{events}END:VCALENDAR\r\n".encode()
    window = Window(NOW, NOW + timedelta(days=30), STOCKHOLM, 2000, 500)
    with pytest.raises(FeedError, match="more than 2000 occurrences"):
        parse_calendar(body, source="huge", associations=("*",), window=window)


def test_reminder_keys_name_the_event_and_parse_back() -> None:
    room = RoomRef.parse("matrix:!abc:example.org")
    key = reminder_key("urn:uuid:1:2", "20261208T170000Z", timedelta(days=1), room)
    assert key == "reminder:urn:uuid:1:2:20261208T170000Z:1d:matrix:!abc:example.org"
    assert parse_reminder_key(key, room) == ("urn:uuid:1:2", "20261208T170000Z")
    assert parse_reminder_key(key, RoomRef.parse("discord:1")) is None
    assert parse_reminder_key("poll:1:matrix:!abc:example.org", room) is None


def test_settings_check_refresh_and_offsets() -> None:
    assert refresh_cron(timedelta(minutes=15)) == "*/15 * * * *"
    assert refresh_cron(timedelta(hours=6)) == "0 */6 * * *"
    assert refresh_cron(timedelta(days=1)) == "0 0 * * *"
    with pytest.raises(ValidationError, match="refresh must be whole minutes"):
        CalendarSettings.model_validate({"refresh": "7m"})
    with pytest.raises(ValidationError, match="only once"):
        CalendarSettings.model_validate({"reminders": ["1h", "60m"]})
    with pytest.raises(ValidationError, match="HH:MM"):
        CalendarSettings.model_validate({"all_day_time": "25:00"})
    ordered = CalendarSettings.model_validate({"reminders": ["1h", "7d", "1d"]})
    assert ordered.reminders == [timedelta(days=7), timedelta(days=1), timedelta(hours=1)]
