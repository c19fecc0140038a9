"""From iCalendar bytes to occurrences, expanded over a bounded window only.

The file is cut into its components (`reading`), each read by icalendar and checked on
its own (`components`): an event that cannot be used is left out, with one warning that
names its UID and line, and the rest of the feed is used. recurring-ical-events then
expands RRULE/RDATE, applies EXDATE and RECURRENCE-ID overrides (and X-WR-TIMEZONE),
series by series and lazily (`expansion`), each cut off after `max_per_series`
occurrences, so that an RRULE without end costs a bounded amount.

Times without TZID are floating: read in the bot's zone, as the exports of common
organising platforms mean them; all-day events start at local midnight. The window is
handed to the library in the bot's zone and a day wider on each side, then cut exactly
here, so that a floating or all-day event near its edge is neither lost nor shifted.
Untrusted text is trimmed to what a post shows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from icalendar.cal.component import Component
from recurring_ical_events.adapters.event import EventAdapter
from recurring_ical_events.selection.base import SelectComponents

from plugins.calendar.components import REASONS, LeftOut, dt_of, read_components, shown
from plugins.calendar.errors import FeedError
from plugins.calendar.expansion import LazySeries, SeriesTooSlow, cpu_deadline
from plugins.calendar.kinds import LENGTH, instant, one_kind
from plugins.calendar.model import Occurrence, occ_id
from plugins.calendar.reading import decode, scan

log = logging.getLogger(__name__)

_TITLE_MAX = 200
_LOCATION_MAX = 200
_EXCERPT_MAX = 240
_SPACE = re.compile(r"\s+")
# Events left out are named one by one up to this many per parse, then counted.
_NAMED_MAX = 20
_MARGIN = timedelta(days=1)


@dataclass
class Parsed:
    occurrences: list[Occurrence] = field(default_factory=list)
    # Series cut off by the per-series cap: nothing is known of them after this start.
    cutoffs: dict[str, datetime] = field(default_factory=dict)
    left_out: list[LeftOut] = field(default_factory=list)  # broken events, by line
    peak_kib: int = 0  # the worker process's peak memory, when parsed in one
    seconds: float = 0.0  # the time the worker took, its process's start not included

    @property
    def skipped(self) -> int:
        return len(self.left_out)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    tz: ZoneInfo
    max_occurrences: int
    max_per_series: int


def clean(value: object, limit: int) -> str:
    """One line of plain text, at most `limit` characters."""
    text = _SPACE.sub(" ", str(value or "")).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class _Collect(SelectComponents):  # type: ignore[misc]
    """Takes the events (after X-WR-TIMEZONE is applied), grouped by UID; the series are
    built here, one at a time, so that one that fails costs only itself."""

    def __init__(self) -> None:
        self.groups: dict[str, list[Component]] = {}

    def collect_series_from(self, source: Any, suppress_errors: Any) -> list[Any]:
        for component in source.subcomponents:
            if component.name == "VEVENT":
                self.groups.setdefault(str(component.get("UID")), []).append(component)
        return []


def _grouped(calendar: icalendar.Calendar, source: str) -> dict[str, list[Component]]:
    if str(calendar.get("CALSCALE", "GREGORIAN")).upper() != "GREGORIAN":
        raise FeedError(
            "not a valid iCalendar file (its CALSCALE is not GREGORIAN)",
            "calendar.reason.not_ical",
        )
    collect = _Collect()
    try:
        recurring_ical_events.of(calendar, components=[collect])
    except Exception as exc:
        log.warning(
            "feed %s: its X-WR-TIMEZONE cannot be applied (%s); times without a zone are"
            " read in the bot's zone",
            source,
            exc.__class__.__name__,
        )
        collect.groups.clear()
        collect.collect_series_from(calendar, ())
    return collect.groups


def _recurring(groups: dict[str, list[Component]]) -> set[str]:
    marks = ("RRULE", "RDATE", "RECURRENCE-ID")
    return {
        uid
        for uid, members in groups.items()
        if len(members) > 1 or any(m.get(p) is not None for m in members for p in marks)
    }


def parse_calendar(
    body: bytes,
    *,
    source: str,
    associations: tuple[str, ...],
    window: Window,
    series_cpu: float | None = None,
) -> Parsed:
    """Parse and expand. Raises FeedError for a file that is not iCalendar, or that has
    more occurrences than the cap. `series_cpu` bounds each series' CPU time (only in a
    process's main thread: the worker)."""
    decoded = decode(body)
    if decoded.bad_bytes:
        log.warning(
            "feed %s: %d byte(s) are not UTF-8 (the first on line %s); read as Windows-1252",
            source,
            decoded.bad_bytes,
            decoded.first_bad_line,
        )
    scanned = scan(decoded.text)
    if not scanned.calendars:
        raise FeedError("not a valid iCalendar file (no VCALENDAR)", "calendar.reason.not_ical")
    if not scanned.closed:
        raise FeedError(
            "not a valid iCalendar file (it ends before END:VCALENDAR; cut short?)",
            "calendar.reason.truncated",
        )
    if scanned.rules_mended:
        log.info(
            "feed %s: %d recurrence rule(s) had spaces in their lists; read without them",
            source,
            scanned.rules_mended,
        )
    found = read_components(scanned)
    if found.unknown_zones:
        names = sorted(found.unknown_zones)
        log.warning(
            "feed %s: unknown time zone(s) %s%s; their times are read in %s",
            source,
            ", ".join(shown(z) for z in names[:5]),
            f" and {len(names) - 5} more" if len(names) > 5 else "",
            window.tz.key,
        )
    groups = _grouped(found.calendar, source)
    recurring = _recurring(groups)
    parsed = Parsed(left_out=list(found.left_out))
    for uid, members in groups.items():
        line = found.lines.get(uid, 0)
        try:
            # A series without rules is finite as written: no alarm needed for it.
            with cpu_deadline(series_cpu if uid in recurring else None):
                for member in members:
                    one_kind(member, window.tz)
                series = LazySeries([EventAdapter(m) for m in members])
                _expand(series, uid, uid not in recurring, source, associations, window, parsed)
        except FeedError:
            raise
        except SeriesTooSlow:
            parsed.left_out.append(LeftOut(uid, line, "too_slow"))
        except Exception as exc:
            log.debug("feed %s: event %s: %r", source, shown(uid), exc)
            parsed.left_out.append(LeftOut(uid, line, "unexpandable"))
    _tell_left_out(parsed.left_out, source)
    return parsed


def _tell_left_out(left_out: Sequence[LeftOut], source: str) -> None:
    for item in left_out[:_NAMED_MAX]:
        log.warning(
            "feed %s: event %s (line %d) left out: %s",
            source,
            shown(item.uid) if item.uid else "(no UID)",
            item.line,
            REASONS.get(item.code, item.code),
        )
    if len(left_out) > _NAMED_MAX:
        log.warning("feed %s: %d more events left out", source, len(left_out) - _NAMED_MAX)


def _expand(
    series: Any,
    uid: str,
    single: bool,
    source: str,
    associations: tuple[str, ...],
    window: Window,
    parsed: Parsed,
) -> None:
    kept: list[Occurrence] = []
    limit = window.max_occurrences - len(parsed.occurrences)
    span_start = (window.start - _MARGIN).astimezone(window.tz)
    span_end = (window.end + _MARGIN).astimezone(window.tz)
    for occurrence in series.between(span_start, span_end):
        # Cheap checks first: copying the component (`as_component`) is the costly part.
        # (A date end may be carried further by X-SAMVERKAN-LENGTH: checked after.)
        if instant(occurrence.start, window.tz) >= window.end or (
            isinstance(occurrence.end, datetime)
            and instant(occurrence.end, window.tz) <= window.start
        ):
            continue
        item = _occurrence(
            occurrence.as_component(False), uid, single, source, associations, window.tz
        )
        if item is None or item.end <= window.start or item.start >= window.end:
            continue
        if len(kept) >= window.max_per_series:
            parsed.cutoffs[uid] = max(o.start for o in kept)
            log.warning(
                "feed %s: event %s recurs more than %d times in the window; later ones"
                " are left out",
                source,
                shown(uid),
                window.max_per_series,
            )
            break
        kept.append(item)
        if len(kept) > limit:
            raise FeedError(
                f"it has more than {window.max_occurrences} occurrences in the window",
                "calendar.reason.too_many",
                limit=window.max_occurrences,
            )
    parsed.occurrences.extend(kept)


def _occurrence(
    component: Any,
    uid: str,
    single: bool,
    source: str,
    associations: tuple[str, ...],
    tz: ZoneInfo,
) -> Occurrence | None:
    raw_start = dt_of(component.get("DTSTART"))
    if raw_start is None:
        return None
    all_day = not isinstance(raw_start, datetime)
    start = instant(raw_start, tz).astimezone(UTC)
    end = _end(component, start, all_day, tz)
    rid = dt_of(component.get("RECURRENCE-ID"))
    url = str(component.get("URL", "") or "").strip()
    return Occurrence(
        source=source,
        uid=uid,
        occ=occ_id(rid if rid is not None else raw_start, tz),
        start=start,
        end=max(end, start),
        all_day=all_day,
        title=clean(component.get("SUMMARY"), _TITLE_MAX),
        location=clean(component.get("LOCATION"), _LOCATION_MAX),
        excerpt=clean(component.get("DESCRIPTION"), _EXCERPT_MAX),
        url=url if url.startswith(("https://", "http://")) and len(url) < 500 else "",
        associations=associations,
        single=single,
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
    )


def _end(component: Any, start: datetime, all_day: bool, tz: ZoneInfo) -> datetime:
    length = component.get(LENGTH)
    if length is not None:
        return start + timedelta(seconds=int(str(length)))
    raw_end: date | datetime | None = dt_of(component.get("DTEND"))
    if raw_end is not None:
        return instant(raw_end, tz).astimezone(UTC)
    duration = getattr(component.get("DURATION"), "dt", None)
    if isinstance(duration, timedelta):
        return start + duration
    return start + (timedelta(days=1) if all_day else timedelta(0))
