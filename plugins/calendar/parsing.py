"""From iCalendar bytes to occurrences, expanded over a bounded window only.

icalendar reads the file; recurring-ical-events expands RRULE/RDATE, applies EXDATE and
RECURRENCE-ID overrides (and X-WR-TIMEZONE). Each series is expanded lazily and cut off
after `max_per_series` occurrences, so an RRULE without end (or every minute) costs a
bounded amount. Times without TZID are floating: read in the bot's zone, as the exports of
common organising platforms mean them. Untrusted text is trimmed to what a post shows.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from plugins.calendar.fetching import FeedError
from plugins.calendar.model import Occurrence, occ_id

log = logging.getLogger(__name__)

_TITLE_MAX = 200
_LOCATION_MAX = 200
_EXCERPT_MAX = 240
_SPACE = re.compile(r"\s+")


@dataclass
class Parsed:
    occurrences: list[Occurrence] = field(default_factory=list)
    # Series cut off by the per-series cap: nothing is known of them after this start.
    cutoffs: dict[str, datetime] = field(default_factory=dict)
    skipped: int = 0  # broken series left out


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


def _aware(value: datetime | date, tz: ZoneInfo) -> tuple[datetime, bool]:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tz).astimezone(UTC), True
    if value.tzinfo is None:
        return value.replace(tzinfo=tz).astimezone(UTC), False
    return value.astimezone(UTC), False


def _prop(component: Any, name: str) -> Any:
    value = component.get(name)
    return getattr(value, "dt", None) if value is not None else None


def _recurring_uids(cal: icalendar.Calendar) -> set[str]:
    counts: Counter[str] = Counter()
    recurring: set[str] = set()
    for event in cal.walk("VEVENT"):
        uid = str(event.get("UID", ""))
        counts[uid] += 1
        if any(event.get(p) is not None for p in ("RRULE", "RDATE", "RECURRENCE-ID")):
            recurring.add(uid)
    return recurring | {uid for uid, n in counts.items() if n > 1}


def _ensure_uids(cal: icalendar.Calendar) -> None:
    """Give events without UID a stable one (their start and title), so that reminders
    and answers keep pointing at the same event from one refresh to the next."""
    for event in cal.walk("VEVENT"):
        if not str(event.get("UID", "")).strip():
            seed = f"{event.get('DTSTART').to_ical() if event.get('DTSTART') else b''!r}"
            seed += str(event.get("SUMMARY", ""))
            event.add("UID", "nouid-" + hashlib.sha256(seed.encode()).hexdigest()[:16])


def parse_calendar(
    body: bytes, *, source: str, associations: tuple[str, ...], window: Window
) -> Parsed:
    """Parse and expand; raises FeedError for a file that is not iCalendar."""
    try:
        cal = icalendar.Calendar.from_ical(body)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError...
        raise FeedError(
            f"not a valid iCalendar file ({exc.__class__.__name__}: {exc})",
            "calendar.reason.not_ical",
        ) from None
    if not isinstance(cal, icalendar.Calendar) or cal.name != "VCALENDAR":
        raise FeedError("not a valid iCalendar file (no VCALENDAR)", "calendar.reason.not_ical")
    _ensure_uids(cal)
    recurring = _recurring_uids(cal)
    try:
        query = recurring_ical_events.of(cal, skip_bad_series=True)
        series_list = list(query.series)
    except Exception as exc:
        raise FeedError(
            f"its events cannot be expanded ({exc.__class__.__name__})",
            "calendar.reason.unexpandable",
        ) from None
    parsed = Parsed()
    unreadable = {str(e.get("UID")) for e in cal.walk("VEVENT")} - {str(s.uid) for s in series_list}
    for uid in sorted(unreadable):
        parsed.skipped += 1
        log.warning(
            "feed %s: event %s left out, it cannot be read (a bad date or rule?)", source, uid
        )
    for series in series_list:
        uid = str(series.uid)
        try:
            _expand(series, uid, uid not in recurring, source, associations, window, parsed)
        except FeedError:
            raise
        except Exception as exc:
            parsed.skipped += 1
            log.warning("feed %s: event %s left out, it cannot be read: %s", source, uid, exc)
    return parsed


def _expand(
    series: Any,
    uid: str,
    single: bool,
    source: str,
    associations: tuple[str, ...],
    window: Window,
    parsed: Parsed,
) -> None:
    count = 0
    for occurrence in series.between(window.start, window.end):
        if count >= window.max_per_series:
            parsed.cutoffs[uid] = max(o.start for o in parsed.occurrences if o.uid == uid)
            log.warning(
                "feed %s: event %s recurs more than %d times in the window; later ones"
                " are left out",
                source,
                uid,
                window.max_per_series,
            )
            return
        item = _occurrence(
            occurrence.as_component(False), uid, single, source, associations, window.tz
        )
        if item is None or item.end <= window.start:
            continue
        count += 1
        parsed.occurrences.append(item)
        if len(parsed.occurrences) > window.max_occurrences:
            raise FeedError(
                f"it has more than {window.max_occurrences} occurrences in the window",
                "calendar.reason.too_many",
                limit=window.max_occurrences,
            )


def _occurrence(
    component: Any,
    uid: str,
    single: bool,
    source: str,
    associations: tuple[str, ...],
    tz: ZoneInfo,
) -> Occurrence | None:
    raw_start = _prop(component, "DTSTART")
    if raw_start is None:
        return None
    start, all_day = _aware(raw_start, tz)
    raw_end = _prop(component, "DTEND")
    duration = _prop(component, "DURATION")
    if raw_end is not None:
        end, _ = _aware(raw_end, tz)
    elif isinstance(duration, timedelta):
        end = start + duration
    else:
        end = start + (timedelta(days=1) if all_day else timedelta(0))
    end = max(end, start)
    rid = _prop(component, "RECURRENCE-ID")
    url = str(component.get("URL", "") or "").strip()
    return Occurrence(
        source=source,
        uid=uid,
        occ=occ_id(rid if rid is not None else raw_start, tz),
        start=start,
        end=end,
        all_day=all_day,
        title=clean(component.get("SUMMARY"), _TITLE_MAX),
        location=clean(component.get("LOCATION"), _LOCATION_MAX),
        excerpt=clean(component.get("DESCRIPTION"), _EXCERPT_MAX),
        url=url if url.startswith(("https://", "http://")) and len(url) < 500 else "",
        associations=associations,
        single=single,
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
    )
