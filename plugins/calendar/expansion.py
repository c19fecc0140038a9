"""Recurrence expanded lazily, so that the per-series cap bounds time and memory.

recurring-ical-events asks dateutil for `rule.between(start, stop)`, which builds the
whole list of the window before any cap of ours applies (and caches every datetime it
passes on the way): `FREQ=SECONDLY` over 90 days was 7.8 million datetimes, 54 s and
525 MiB. Here each rule is iterated instead, merged in order, and dropped as soon as the
caller has enough. A rule without COUNT that repeats by the minute, hour, day or week is
moved forward to the window first (by whole periods of the rule, which yields the same
instants), so that a series begun years ago does not walk through every minute since.

One thing iteration cannot bound: a rule that never matches (`FREQ=DAILY;BYMONTH=2;
BYMONTHDAY=30`) makes dateutil search until the year 9999 without yielding. In the
worker process a CPU-time alarm (`cpu_deadline`) stops such a series; the feed's own time
budget stops everything else.
"""

from __future__ import annotations

import heapq
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, tzinfo
from types import FrameType
from typing import Any

from recurring_ical_events.series import Series
from recurring_ical_events.util import compare_greater, convert_to_datetime

_PERIOD = {
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
}


class SeriesTooSlow(BaseException):
    """A series used up its CPU time (BaseException: no library's `except Exception`
    may swallow it)."""


@contextmanager
def cpu_deadline(seconds: float | None) -> Iterator[None]:
    """Raise SeriesTooSlow inside the block once it has used `seconds` of CPU time.
    Only in a process's main thread (signals); elsewhere, or with None, no limit."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise SeriesTooSlow

    previous = signal.signal(signal.SIGVTALRM, expired)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def _rule_parts(rule: Any) -> dict[str, str]:
    text = str(getattr(rule, "string", "") or "")
    return dict(p.split("=", 1) for p in text.upper().split(";") if "=" in p)


def _moved_forward(rule: Any, dtstart: datetime, target: datetime) -> Any:
    """`rule` starting at the last whole period of it before `target`, uncached."""
    parts = _rule_parts(rule)
    period = _PERIOD.get(parts.get("FREQ", ""))
    if period is None or "COUNT" in parts:
        return rule.replace(cache=False)
    try:
        step = period * max(1, int(parts.get("INTERVAL", "1")))
    except ValueError:
        return rule.replace(cache=False)
    # Wall-clock arithmetic, as dateutil's own iteration does.
    if dtstart.tzinfo is not None and target.tzinfo is not None:
        target = target.astimezone(dtstart.tzinfo)
    ahead = target.replace(tzinfo=None) - dtstart.replace(tzinfo=None)
    periods = ahead // step - 1
    if periods <= 0:
        return rule.replace(cache=False)
    return rule.replace(dtstart=dtstart + step * periods, cache=False)


def _within(stream: Any, start: datetime, stop: datetime, until: date | None) -> Iterator[datetime]:
    for when in stream:
        if when > stop or (until is not None and compare_greater(when, until)):
            return
        if when >= start:
            yield when


class _LazyRules(Series.RecurrenceRules):  # type: ignore[misc]
    tzinfo: tzinfo | None
    start: datetime

    def rrule_between(self, span_start: Any, span_stop: Any) -> Iterator[datetime]:
        start = convert_to_datetime(span_start, self.tzinfo)
        stop = convert_to_datetime(span_stop, self.tzinfo)
        streams = []
        for index, rule in enumerate(self.rrules):
            # The first is the set of RDATEs and DTSTART: finite, as written in the file.
            source = rule if index == 0 else _moved_forward(rule, self.start, start)
            streams.append(_within(source, start, stop, getattr(rule, "until", None)))
        yield from heapq.merge(*streams)


class LazySeries(Series):  # type: ignore[misc]
    """A series whose rules are iterated, not listed."""

    RecurrenceRules = _LazyRules
