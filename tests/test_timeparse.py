from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.core.timeparse import format_duration, parse_duration, parse_local_time

TZ = ZoneInfo("Europe/Stockholm")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1h", 3600), ("1d", 86400), ("7d", 604800), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "0s", "3", "1x", "-1h", "1h foo"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_local_time_across_dst() -> None:
    winter = parse_local_time("2026-01-10 18:00", TZ)
    summer = parse_local_time("2026-07-10 18:00", TZ)
    assert winter.utcoffset() == timedelta(hours=1)
    assert summer.utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError, match="does not exist"):
        parse_local_time("2026-03-29 02:30", TZ)
    with pytest.raises(ValueError):
        parse_local_time("2026-02-30 10:00", TZ)


def test_refs_round_trip() -> None:
    for text in ("matrix:!abc:example.org", "discord:1234", "console:falun"):
        assert str(RoomRef.parse(text)) == text
    for text in ("matrix:@anna:example.org", "discord:1234", "console:anna"):
        assert str(UserRef.parse(text)) == text
    ref = MessageRef(RoomRef.parse("matrix:!abc:example.org"), "$ev/x")
    assert MessageRef.parse(str(ref)) == ref


@pytest.mark.parametrize("text", ["irc:#x", "discord:abc", "matrix:abc", "console:", "falun"])
def test_bad_refs(text: str) -> None:
    with pytest.raises(ValueError):
        RoomRef.parse(text)
