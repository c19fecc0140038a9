"""One kind of time per event: what recurring-ical-events needs to get mixed ones right.

An event whose DTSTART is a date or a floating time and whose DTEND (or EXDATE, RDATE)
is in UTC made the library treat the whole series as UTC: the start came out an hour
off in Stockholm. Here the other times are brought to the kind of DTSTART first, through
the bot's zone, which is what a floating time means. A DATE start with a timed end keeps
its date (an all-day start); its true length travels in X-SAMVERKAN-LENGTH, since the
library drops the hours of a date plus a duration.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from icalendar.cal.component import Component

from plugins.calendar.components import dt_of

LENGTH = "X-SAMVERKAN-LENGTH"  # seconds; set on events whose length we keep ourselves


def _kind(value: date | datetime) -> str:
    if not isinstance(value, datetime):
        return "date"
    return "floating" if value.tzinfo is None else "aware"


def instant(value: date | datetime, tz: tzinfo) -> datetime:
    """The aware instant of a date (local midnight), floating or aware time."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tz)
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _like(value: date | datetime, start: date | datetime, tz: tzinfo) -> date | datetime:
    """`value` in the kind of `start`."""
    kind = _kind(start)
    if kind == "date":
        return instant(value, tz).astimezone(tz).date()
    moment = instant(value, tz)
    if kind == "floating":
        return moment.astimezone(tz).replace(tzinfo=None)
    assert isinstance(start, datetime) and start.tzinfo is not None
    return moment.astimezone(start.tzinfo)


def _times(prop: Any) -> list[date | datetime] | None:
    """The dates of an EXDATE or RDATE (however many lines); None if one is a period
    (a start and an end, rare enough to be kept as written)."""
    found: list[date | datetime] = []
    for p in _listed(prop):
        for item in getattr(p, "dts", None) or []:
            try:
                value = item.dt
            except Exception:
                continue
            if isinstance(value, tuple):
                return None
            if isinstance(value, date):
                found.append(value)
    return found


def one_kind(event: Component, tz: tzinfo) -> None:
    """Bring DTEND, EXDATE and RDATE of `event` to the kind of its DTSTART, in place."""
    start = dt_of(event.get("DTSTART"))
    if start is None:
        return
    kind = _kind(start)
    end = dt_of(event.get("DTEND"))
    if end is not None and _kind(end) != kind:
        del event["DTEND"]
        if kind == "date":
            length = instant(end, tz) - instant(start, tz)
            event.add(LENGTH, str(int(max(length, timedelta(0)).total_seconds())))
        else:
            event.add("DTEND", _like(end, start, tz))
    for name in ("EXDATE", "RDATE"):
        prop = event.get(name)
        if prop is None:
            continue
        values = _times(prop)
        if values is None or all(_kind(v) == kind for v in values):
            continue
        del event[name]
        event.add(name, [_like(v, start, tz) for v in values])


def _listed(prop: Any) -> list[Any]:
    return prop if isinstance(prop, list) else [prop]
