"""Durations (`90s`, `30m`, `1h`, `1d`, `7d`, `1h30m`) and local times (`YYYY-MM-DD HH:MM`).

Both come from people (chat commands, the configuration), so both are bounded here: a
duration or a time that `datetime` cannot hold, or that no one means, is a ValueError
(`OutOfRangeError` says the range), never an OverflowError deep in the caller. Messages
never quote the text: a configuration value may be a secret put in the wrong place.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_LOCAL = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2})[:.](\d{2})\s*$")

# No duration the bot handles is longer than ten years; anything longer is a typo, and
# far longer ones do not fit a datetime once added to now.
SHORTEST_DURATION: Final = timedelta(seconds=1)
LONGEST_DURATION: Final = timedelta(days=3650)
# Times people write: from 1970 (the epoch the database counts from) to the end of
# 2999, so that adding any allowed duration still fits a datetime.
EARLIEST_TIME: Final = datetime(1970, 1, 1, 0, 0)
LATEST_TIME: Final = datetime(2999, 12, 31, 23, 59)


class OutOfRangeError(ValueError):
    """Well written, but outside `low`..`high` (already formatted for people)."""

    def __init__(self, what: str, low: str, high: str) -> None:
        super().__init__(f"{what} must be between {low} and {high}")
        self.low = low
        self.high = high


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `1h`, `1d`, `7d`, or sums such as `1h30m`; raises ValueError."""
    if not _WHOLE.match(text):
        raise ValueError("not a duration such as 90s, 30m, 1h, 1d or 7d")
    seconds = sum(int(n) * _UNITS[u.lower()] for n, u in _PART.findall(text))
    return checked_duration(seconds)


def checked_duration(seconds: float) -> timedelta:
    """`seconds` as a timedelta if within the durations the bot accepts; ValueError
    otherwise (infinite and NaN included)."""
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError("not a positive duration")
    if seconds > LONGEST_DURATION.total_seconds():
        raise OutOfRangeError(
            "a duration",
            format_duration(SHORTEST_DURATION),
            format_duration(LONGEST_DURATION),
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, in the largest exact units."""
    seconds = int(delta.total_seconds())
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"


def parse_local_time(text: str, tz: ZoneInfo) -> datetime:
    """`YYYY-MM-DD HH:MM` read in `tz`; returns an aware datetime. Raises ValueError
    (`OutOfRangeError` for a well-written time outside EARLIEST_TIME..LATEST_TIME).

    A time that does not exist (skipped at the spring DST change) is refused rather than
    silently moved, and an ambiguous one (autumn) is read as the first occurrence.
    """
    m = _LOCAL.match(text)
    if not m:
        raise ValueError("not a time written YYYY-MM-DD HH:MM")
    year, month, day, hour, minute = (int(g) for g in m.groups())
    naive = datetime(year, month, day, hour, minute)  # raises ValueError for 2024-02-30
    if not EARLIEST_TIME <= naive <= LATEST_TIME:
        raise OutOfRangeError(
            "a time",
            EARLIEST_TIME.strftime("%Y-%m-%d %H:%M"),
            LATEST_TIME.strftime("%Y-%m-%d %H:%M"),
        )
    local = naive.replace(tzinfo=tz, fold=0)
    # Round-tripping through UTC exposes a wall time that the zone skipped.
    if local.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) != naive:
        raise ValueError(f"does not exist in {tz.key} (clocks skip it)")
    return local
