"""What real exporters write, read right: floating and all-day times at the window's
edges, a DATE or floating start with a UTC end, Windows zone names, Exchange's spaced
BYDAY lists, bad bytes and unknown zones (said once), and lazy expansion giving what
the library gives."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

from plugins.calendar.parsing import Parsed, Window, parse_calendar
from tests.calendar.support import FIXTURES, vcalendar, vevent

STOCKHOLM = ZoneInfo("Europe/Stockholm")
START = datetime(2026, 11, 25, 12, tzinfo=UTC)


def parse(
    text: str | bytes,
    *,
    start: datetime = START,
    end: datetime | None = None,
    tz: ZoneInfo = STOCKHOLM,
) -> Parsed:
    body = text.encode() if isinstance(text, str) else text
    window = Window(start, end or start + timedelta(days=90), tz, 20_000, 500)
    return parse_calendar(body, source="t", associations=("*",), window=window)


def local(when: date | datetime, tz: ZoneInfo = STOCKHOLM) -> datetime:
    """The instant of a local wall time (or local midnight of a date)."""
    if not isinstance(when, datetime):
        when = datetime.combine(when, time(0))
    return when.replace(tzinfo=tz).astimezone(UTC)


def test_floating_and_all_day_events_at_the_windows_end_are_kept() -> None:
    # The window ends half an hour after local midnight: events of the last local day
    # begin before it, though their wall times read as UTC would come after it.
    last_day = date(2027, 2, 24)
    end = local(datetime.combine(last_day, time(0, 30)))
    text = vcalendar(
        vevent("UID:allday@x", f"DTSTART;VALUE=DATE:{last_day:%Y%m%d}", "SUMMARY:Heldag"),
        vevent("UID:floating@x", f"DTSTART:{last_day:%Y%m%d}T001500", "SUMMARY:Sent"),
        vevent("UID:after@x", f"DTSTART:{last_day:%Y%m%d}T004500", "SUMMARY:Efter"),
    )
    by_uid = {o.uid: o for o in parse(text, end=end).occurrences}
    assert sorted(by_uid) == ["allday@x", "floating@x"]
    assert by_uid["allday@x"].start == local(last_day)
    assert by_uid["floating@x"].start == local(datetime.combine(last_day, time(0, 15)))


def test_a_floating_event_that_overlaps_the_windows_start_is_kept() -> None:
    begun = START.astimezone(STOCKHOLM).replace(tzinfo=None) - timedelta(minutes=30)
    text = vcalendar(
        vevent(
            "UID:running@x",
            f"DTSTART:{begun:%Y%m%dT%H%M%S}",
            f"DTEND:{begun + timedelta(hours=1):%Y%m%dT%H%M%S}",
        )
    )
    (item,) = parse(text).occurrences
    assert item.start == local(begun) and item.end == local(begun + timedelta(hours=1))


@pytest.mark.parametrize(
    ("start", "end", "all_day", "expected"),
    [
        # A DATE start with a UTC end: local midnight to that instant.
        (
            "DTSTART;VALUE=DATE:20261210",
            "DTEND:20261210T150000Z",
            True,
            (local(date(2026, 12, 10)), datetime(2026, 12, 10, 15, tzinfo=UTC)),
        ),
        # A floating start with a UTC end: the start in the bot's zone, not in UTC.
        (
            "DTSTART:20261210T180000",
            "DTEND:20261210T190000Z",
            False,
            (local(datetime(2026, 12, 10, 18)), datetime(2026, 12, 10, 19, tzinfo=UTC)),
        ),
        # A UTC start with a floating end: the end in the bot's zone.
        (
            "DTSTART:20261210T170000Z",
            "DTEND:20261210T200000",
            False,
            (datetime(2026, 12, 10, 17, tzinfo=UTC), local(datetime(2026, 12, 10, 20))),
        ),
    ],
)
def test_mixed_kinds_of_time_give_the_right_instants(
    start: str, end: str, all_day: bool, expected: tuple[datetime, datetime]
) -> None:
    (item,) = parse(vcalendar(vevent("UID:mixed@x", start, end))).occurrences
    assert (item.start, item.end) == expected
    assert item.all_day is all_day


def test_a_floating_series_with_utc_exdates_stays_in_local_time() -> None:
    text = vcalendar(
        vevent(
            "UID:series@x",
            "DTSTART:20261202T180000",
            "DTEND:20261202T190000",
            "RRULE:FREQ=WEEKLY;COUNT=3",
            # 9 December 18.00 in Stockholm, written in UTC as Outlook does.
            "EXDATE:20261209T170000Z",
        )
    )
    starts = [o.start for o in parse(text).occurrences]
    assert starts == [local(datetime(2026, 12, 2, 18)), local(datetime(2026, 12, 16, 18))]


def test_windows_zone_names_are_mapped_to_their_iana_zones() -> None:
    london = ZoneInfo("Europe/London")
    text = vcalendar(
        vevent("UID:tzid@x", "DTSTART;TZID=GTB Standard Time:20261210T180000"),
        vevent("UID:floating@x", "DTSTART:20261211T180000"),
        header=("X-WR-TIMEZONE:W. Europe Standard Time",),
    )
    by_uid = {o.uid: o for o in parse(text, tz=london).occurrences}
    bucharest, berlin = ZoneInfo("Europe/Bucharest"), ZoneInfo("Europe/Berlin")
    assert by_uid["tzid@x"].start == local(datetime(2026, 12, 10, 18), bucharest)
    # Floating times mean the calendar's zone (X-WR-TIMEZONE), not the bot's.
    assert by_uid["floating@x"].start == local(datetime(2026, 12, 11, 18), berlin)


def test_unknown_zones_and_bad_bytes_are_said_once(caplog: pytest.LogCaptureFixture) -> None:
    text = vcalendar(
        vevent("UID:a@x", "DTSTART;TZID=Not/Defined:20261210T180000", "SUMMARY:M\xf6te"),
        vevent("UID:b@x", 'DTSTART;TZID="(GMT+01:00) Amsterdam, Berlin":20261211T180000'),
        vevent("UID:c@x", "DTSTART;TZID=Not/Defined:20261212T180000", "SUMMARY:F\xf6rm\xf6te"),
    )
    body = text.encode("cp1252")
    with caplog.at_level(logging.WARNING, logger="plugins.calendar"):
        parsed = parse(body)
    by_uid = {o.uid: o for o in parsed.occurrences}
    assert by_uid["a@x"].title == "Möte" and by_uid["c@x"].title == "Förmöte"
    assert by_uid["a@x"].start == local(datetime(2026, 12, 10, 18))  # the bot's zone
    assert by_uid["b@x"].start == local(datetime(2026, 12, 11, 18))
    first_bad = text.split("\r\n").index("SUMMARY:M\xf6te") + 1
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"feed t: 3 byte(s) are not UTF-8 (the first on line {first_bad}); read as Windows-1252",
        "feed t: unknown time zone(s) '(GMT+01:00) Amsterdam, Berlin', 'Not/Defined';"
        " their times are read in Europe/Stockholm",
    ]


def test_exchanges_spaced_byday_lists_are_read() -> None:
    spaced = vevent(
        "UID:spaced@x",
        "DTSTART;TZID=W. Europe Standard Time:20261130T090000",
        "RRULE:FREQ=WEEKLY;BYDAY=MO, TU, WE;COUNT=6",
    )
    tight = spaced.replace("MO, TU, WE", "MO,TU,WE").replace("spaced@x", "tight@x")
    parsed = parse(vcalendar(spaced, tight))
    starts = {
        uid: [o.start for o in parsed.occurrences if o.uid == uid]
        for uid in ("spaced@x", "tight@x")
    }
    assert len(starts["spaced@x"]) == 6
    assert starts["spaced@x"] == starts["tight@x"]


@pytest.mark.parametrize(
    "name", ["weekly.ics", "dst.ics", "cancelled.ics", "floating.ics", "allday.ics", "single.ics"]
)
def test_lazy_expansion_gives_what_the_library_gives(name: str) -> None:
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)
    body = (FIXTURES / name).read_bytes()
    ours = parse(body, start=start, end=end).occurrences
    calendar = icalendar.Calendar.from_ical(body)
    reference = recurring_ical_events.of(calendar).between(
        start.astimezone(STOCKHOLM), end.astimezone(STOCKHOLM)
    )
    theirs = []
    for occurrence in reference:
        when = occurrence["DTSTART"].dt
        if not isinstance(when, datetime):
            when = datetime.combine(when, time(0))
        theirs.append((str(occurrence["UID"]), local(when) if when.tzinfo is None else when))
    assert sorted((o.uid, o.start) for o in ours) == sorted(theirs)
