"""Durations (`90s`, `30m`, `1h`, `1d`, `7d`, `1h30m`) and local times (`YYYY-MM-DD HH:MM`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_LOCAL = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2})[:.](\d{2})\s*$")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `1h`, `1d`, `7d`, or sums such as `1h30m`; raises ValueError."""
    if not _WHOLE.match(text):
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 1h, 1d or 7d")
    seconds = sum(int(n) * _UNITS[u.lower()] for n, u in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
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
    """`YYYY-MM-DD HH:MM` read in `tz`; returns an aware datetime. Raises ValueError.

    A time that does not exist (skipped at the spring DST change) is refused rather than
    silently moved, and an ambiguous one (autumn) is read as the first occurrence.
    """
    m = _LOCAL.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a time written YYYY-MM-DD HH:MM")
    year, month, day, hour, minute = (int(g) for g in m.groups())
    naive = datetime(year, month, day, hour, minute)  # raises ValueError for 2024-02-30
    local = naive.replace(tzinfo=tz, fold=0)
    # Round-tripping through UTC exposes a wall time that the zone skipped.
    if local.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) != naive:
        raise ValueError(f"{text!r} does not exist in {tz.key} (clocks skip it)")
    return local
