"""Each component of a scanned file through icalendar, one at a time, and checked.

An event that cannot be used is left out with the reason and the line it begins on;
the others are collected into one calendar for the expansion. Time zones are read
first, so that events may name a VTIMEZONE defined further down. Zone names are
resolved as icalendar does (IANA names, Windows names such as "W. Europe Standard
Time" through CLDR's windowsZones table, vendor prefixes); X-WR-TIMEZONE gets the same
treatment here. A zone that cannot be resolved leaves its times floating: read in the
bot's zone, and named in the log.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from icalendar.cal.component import Component
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from plugins.calendar.reading import Block, Scan

log = logging.getLogger(__name__)

# Properties whose value must be one and readable, or the event cannot be placed.
_SINGLE = ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID")
_TIMES = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")
_RULES = ("RRULE", "EXRULE")
# Rules that repeat more often than this are refused: no meeting recurs every second,
# and such a rule is the cheapest way to make an expansion cost minutes.
_TOO_FINE = frozenset({"SECONDLY"})

# Why an event is left out: the code (an i18n key under calendar.left_out) and the
# words for the log.
REASONS: dict[str, str] = {
    "unclosed": "it is never closed (END:VEVENT is missing)",
    "unreadable": "icalendar cannot read it",
    "no_start": "it has no start (DTSTART)",
    "two_starts": "it has two starts (DTSTART)",
    "duplicate": "a property that may appear once appears twice (DTEND, DURATION, RECURRENCE-ID)",
    "empty_uid": "its UID line is empty",
    "two_uids": "it has two UIDs",
    "bad_date": "one of its dates cannot be read",
    "bad_rule": "its recurrence rule cannot be read",
    "too_fine": "it repeats more often than once a minute",
    "too_slow": "working out its dates took too long",
    "unexpandable": "its dates cannot be worked out",
}


@dataclass(frozen=True, slots=True)
class LeftOut:
    uid: str  # as written; empty when the event has none
    line: int
    code: str  # a key of REASONS


@dataclass(slots=True)
class Components:
    calendar: icalendar.Calendar
    left_out: list[LeftOut] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # uid -> line of its first event
    unknown_zones: set[str] = field(default_factory=set)


def zone_named(name: str) -> ZoneInfo | None:
    """An IANA zone from an IANA or Windows name; None when neither is known."""
    cleaned = name.strip().strip("/")
    for candidate in (cleaned, WINDOWS_TO_OLSON.get(cleaned, "")):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return None


def shown(value: str, limit: int = 60) -> str:
    """Text from the file as a log shows it: quoted, control characters escaped, short."""
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(text)


def dt_of(prop: Any) -> date | datetime | None:
    """The date or time of a property; None when it is absent or broken (icalendar 7
    raises on a broken property's `dt`)."""
    if prop is None or isinstance(prop, list):
        return None
    try:
        value = prop.dt
    except Exception:
        return None
    return value if isinstance(value, date) else None


def _parse(block: Block) -> Component | None:
    try:
        component = Component.from_ical(block.text)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError...
        log.debug("component at line %d cannot be read: %s", block.line, exc.__class__.__name__)
        return None
    return component if isinstance(component, Component) else None


def _header(scan: Scan, unknown: set[str]) -> icalendar.Calendar:
    text = "BEGIN:VCALENDAR\r\n" + "".join(f"{line}\r\n" for line in scan.header)
    try:
        calendar = icalendar.Calendar.from_ical(text + "END:VCALENDAR\r\n")
    except Exception:
        log.debug("the calendar's own properties cannot be read; going on without them")
        calendar = icalendar.Calendar()
    if not isinstance(calendar, icalendar.Calendar):
        calendar = icalendar.Calendar()
    named = calendar.get("X-WR-TIMEZONE")
    if named is not None:
        zone = zone_named(str(named))
        del calendar["X-WR-TIMEZONE"]
        if zone is None:
            unknown.add(str(named))
        else:
            # recurring-ical-events reads this (x-wr-timezone), by its IANA name only.
            calendar.add("X-WR-TIMEZONE", zone.key)
    return calendar


def _problem(event: Component, block: Block) -> str | None:
    """Why `event` cannot be used, as a code of REASONS; None when it can."""
    if not block.closed:
        return "unclosed"
    uid = event.get("UID")
    if isinstance(uid, list):
        return "two_uids"
    if uid is not None and not str(uid).strip():
        return "empty_uid"
    start = event.get("DTSTART")
    if start is None:
        return "no_start"
    if isinstance(start, list):
        return "two_starts"
    if any(isinstance(event.get(name), list) for name in _SINGLE):
        return "duplicate"
    broken = {str(name).upper() for name, _ in event.errors if name}
    if broken & set(_RULES):
        return "bad_rule"
    if broken & set(_TIMES) or dt_of(start) is None:
        return "bad_date"
    for name in _RULES:
        for rule in _listed(event.get(name)):
            if any(str(f).upper() in _TOO_FINE for f in rule.get("FREQ", [])):
                return "too_fine"
    return None


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _unresolved_zones(event: Component) -> Iterable[str]:
    """TZIDs icalendar could not resolve: their times came out floating."""
    for name in _TIMES:
        for prop in _listed(event.get(name)):
            tzid = getattr(prop, "params", {}).get("TZID")
            if not tzid:
                continue
            values = [dt_of(prop)] if name in _SINGLE else [dt_of(d) for d in _dts(prop)]
            if any(isinstance(v, datetime) and v.tzinfo is None for v in values):
                yield str(tzid)


def _dts(prop: Any) -> list[Any]:
    return list(getattr(prop, "dts", []) or [])


def derived_uid(event: Component) -> str:
    """A stable UID for an event without one, from its start and title, so that its
    reminders and answers keep pointing at it from one refresh to the next."""
    start = event.get("DTSTART")
    seed = f"{start.to_ical() if start is not None else b''!r}"
    seed += str(event.get("SUMMARY", ""))
    return "nouid-" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def read_components(scan: Scan) -> Components:
    """Parse every block; keep the events that can be used."""
    unknown: set[str] = set()
    calendar = _header(scan, unknown)
    result = Components(calendar, unknown_zones=unknown)
    # Time zones first, whatever their place in the file: icalendar resolves a TZID
    # when it reads the time, from the zones it has seen.
    for block in scan.blocks:
        if block.name == "VTIMEZONE" and block.closed:
            zone = _parse(block)
            if zone is not None:
                calendar.add_component(zone)
    for block in scan.blocks:
        if block.name != "VEVENT":
            continue
        event = _parse(block)
        code = "unreadable" if event is None else _problem(event, block)
        if event is None or code is not None:
            result.left_out.append(LeftOut(block.uid or "", block.line, code or "unreadable"))
            continue
        if event.get("UID") is None:
            event.add("UID", derived_uid(event))
        uid = str(event.get("UID"))
        result.lines.setdefault(uid, block.line)
        unknown.update(_unresolved_zones(event))
        calendar.add_component(event)
    return result
