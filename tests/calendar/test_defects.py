"""One bad event never costs a feed, and one bad feed never costs the others.

Each defect seen in real exports sits between two good events: the parse leaves out
that event alone, with one warning naming its UID and line; through a running bot the
healthy feed beside it always loads, and organisers hear once. An unexpected error in
one feed is logged with its traceback, told once, and every other feed refreshes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.clock import FakeClock
from plugins.calendar.components import REASONS
from plugins.calendar.model import Occurrence
from plugins.calendar.parsing import Window, parse_calendar
from plugins.calendar.settings import feed_id
from plugins.calendar.storage import Store
from tests.calendar.support import (
    FIXTURES,
    Bot,
    feed_toml,
    fixture_copy,
    line_of,
    make_settings,
    vcalendar,
    vevent,
)
from tests.engines import Target

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
STOCKHOLM = ZoneInfo("Europe/Stockholm")
GOOD_1 = vevent(
    "UID:good-1@test.example", "DTSTART;TZID=Europe/Stockholm:20261210T180000", "SUMMARY:Möte 1"
)
GOOD_2 = vevent(
    "UID:good-2@test.example", "DTSTART;TZID=Europe/Stockholm:20261211T180000", "SUMMARY:Möte 2"
)
# (name, the broken event, the UID the warning names, the reason's code)
DEFECTS = [
    ("no start", vevent("UID:nostart@x", "SUMMARY:Utan start"), "'nostart@x'", "no_start"),
    (
        "two starts",
        vevent("UID:twice@x", "DTSTART:20261201T100000Z", "DTSTART:20261202T100000Z"),
        "'twice@x'",
        "two_starts",
    ),
    ("empty UID", vevent("UID:", "DTSTART:20261201T100000Z"), "(no UID)", "empty_uid"),
    (
        "no UID, two starts",
        vevent("DTSTART:20261201T100000Z", "DTSTART:20261202T100000Z", "SUMMARY:X"),
        "(no UID)",
        "two_starts",
    ),
    ("bad date", vevent("UID:baddate@x", "DTSTART:notadate"), "'baddate@x'", "bad_date"),
    (
        "bad rule",
        vevent("UID:badrule@x", "DTSTART:20261201T100000Z", "RRULE:FREQ=SOMETIMES"),
        "'badrule@x'",
        "bad_rule",
    ),
    (
        "every second",
        vevent("UID:secondly@x", "DTSTART:20261201T100000Z", "RRULE:FREQ=SECONDLY"),
        "'secondly@x'",
        "too_fine",
    ),
    (
        "never closed",
        "BEGIN:VEVENT\r\nUID:open@x\r\nDTSTART:20261201T100000Z\r\n",
        "'open@x'",
        "unclosed",
    ),
    (
        "two ends",
        vevent("UID:ends@x", "DTSTART:20261201T100000Z", "DTEND:20261201T110000Z", "DTEND:x"),
        "'ends@x'",
        "duplicate",
    ),
]


def parse(text: str) -> list[Occurrence]:
    window = Window(START, START + timedelta(days=90), STOCKHOLM, 20_000, 500)
    parsed = parse_calendar(text.encode(), source="t", associations=("*",), window=window)
    return parsed.occurrences


@pytest.mark.parametrize(("name", "broken", "named", "code"), DEFECTS, ids=[d[0] for d in DEFECTS])
def test_a_broken_event_alone_is_left_out(
    name: str, broken: str, named: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = vcalendar(GOOD_1, broken, GOOD_2)
    window = Window(START, START + timedelta(days=90), STOCKHOLM, 20_000, 500)
    with caplog.at_level(logging.WARNING, logger="plugins.calendar"):
        parsed = parse_calendar(text.encode(), source="t", associations=("*",), window=window)
    # The same feed without the broken event: what must come out of it.
    expected = parse(vcalendar(GOOD_1, GOOD_2))
    assert [(o.uid, o.start) for o in parsed.occurrences] == [(o.uid, o.start) for o in expected]
    assert len(parsed.left_out) == 1
    (item,) = parsed.left_out
    line = line_of(text, broken.split("\r\n")[1])
    assert (item.line, item.code) == (line, code)
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert warnings == [f"feed t: event {named} (line {line}) left out: {REASONS[code]}"]


def defective_feed() -> str:
    return vcalendar(GOOD_1, *(d[1] for d in DEFECTS), GOOD_2)


async def stored_uids(bot: Bot, source: str) -> set[str]:
    store: Store = bot.plugin.store
    return {o.uid for o in await store.load_source(source, START)}


async def test_the_healthy_feed_loads_and_organisers_hear_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, db_target: Target
) -> None:
    broken = tmp_path / "trasig.ics"
    broken.write_text(defective_feed(), encoding="utf-8")
    healthy = fixture_copy(tmp_path, "single.ics")
    feeds = feed_toml(broken, ["falun"], name="Trasig") + feed_toml(healthy, ["falun"])
    settings = make_settings(tmp_path, feeds, database=db_target)
    with caplog.at_level(logging.WARNING, logger="plugins.calendar"):
        bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert await stored_uids(bot, feed_id(str(healthy))) == {"single-1@test.example"}
        assert await stored_uids(bot, feed_id(str(broken))) == {
            "good-1@test.example",
            "good-2@test.example",
        }
        assert len(await bot.pending()) == 3 * 3  # three events, three offsets each
        left_out = [r for r in caplog.records if "left out" in r.getMessage()]
        assert len(left_out) == len(DEFECTS)
        (notice,) = bot.texts("styrelse")
        first = line_of(defective_feed(), "UID:nostart@x")  # the first of them
        assert notice.startswith(
            f"I kalenderflödet Trasig går {len(DEFECTS)} händelser inte att läsa,"
            f" till exempel den på rad {first} ("
        )
        # Plain words, never bytes of the file.
        assert not any(uid in notice for uid in ("nostart@x", "notadate", "SOMETIMES"))

        # Changed and read again: the same events are left out, nobody is told again.
        broken.write_text(defective_feed().replace("Möte 1", "Möte ett"), encoding="utf-8")
        bot.clock.advance(timedelta(hours=13))
        await bot.refresh()
        assert len(bot.texts("styrelse")) == 1
    finally:
        await bot.stop()
    again = await Bot(settings, FakeClock(START + timedelta(hours=14))).start()
    try:
        assert again.texts("styrelse") == []  # not after a restart either
        assert "good-1@test.example" in await stored_uids(again, feed_id(str(broken)))
    finally:
        await again.stop()


async def test_an_unexpected_error_in_one_feed_is_told_once_and_the_others_refresh(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    db_target: Target,
) -> None:
    healthy = fixture_copy(tmp_path, "single.ics")
    cursed = fixture_copy(tmp_path, "floating.ics")
    feeds = feed_toml(cursed, ["mora"], name="Förhäxad") + feed_toml(healthy, ["falun"])
    settings = make_settings(tmp_path, feeds, database=db_target)
    real_insert = Store.insert_many

    async def insert_many(self: Store, items: list[Occurrence]) -> None:
        if any(o.source == feed_id(str(cursed)) for o in items):
            raise RuntimeError("a bug of ours")
        await real_insert(self, items)

    monkeypatch.setattr(Store, "insert_many", insert_many)
    with caplog.at_level(logging.WARNING, logger="plugins.calendar"):
        bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert {k for k in await bot.pending() if "single-1" in k}  # the other feed loaded
        assert await stored_uids(bot, feed_id(str(cursed))) == set()
        failure = next(r for r in caplog.records if "could not be applied" in r.getMessage())
        assert failure.exc_info is not None  # with its traceback
        assert bot.texts("styrelse") == [
            "Kalenderflödet Förhäxad går inte att läsa: ett oväntat fel uppstod i boten"
            " (felet står i loggen). Jag behåller det jag hade och säger till när det"
            " fungerar igen."
        ]
        for hours in (13, 26):  # read afresh each time: the error again, told no more
            bot.clock.set(START + timedelta(hours=hours))
            await bot.refresh()
        assert len(bot.texts("styrelse")) == 1

        monkeypatch.setattr(Store, "insert_many", real_insert)
        bot.clock.set(START + timedelta(hours=39))
        await bot.refresh()
        assert await stored_uids(bot, feed_id(str(cursed))) == {
            "floating-1@test.example",
            "floating-2@test.example",
        }
        assert bot.texts("styrelse")[1:] == ["Kalenderflödet Förhäxad fungerar igen."]
    finally:
        await bot.stop()


def test_the_fixtures_stay_whole() -> None:
    # The broken fixture of the older tests still parses to its one good series.
    text = (FIXTURES / "endless.ics").read_text(encoding="utf-8")
    uids = {o.uid for o in parse(text)}
    assert uids == {"endless-daily@test.example", "endless-minutely@test.example"}
