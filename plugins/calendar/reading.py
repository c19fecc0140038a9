"""From a calendar file's bytes to its top-level components as text, each with its line.

The file is cut into components here instead of being handed whole to icalendar, so
that one broken event costs only itself, and so that a warning can name the line where
the event begins. What real exporters write is read tolerantly:

- bytes that are not UTF-8 are read as Windows-1252 (a stray "ö" from an old export),
  and counted, so that the log says so once;
- folded lines are unfolded; lines end in CRLF, LF or a lone CR;
- spaces in the lists of a recurrence rule are dropped: Exchange writes
  `BYDAY=MO, TU, WE`, which icalendar refuses (the whole series was lost);
- a file that stops before END:VCALENDAR is refused as a whole: it was cut short, and
  reading what is there would make every later event look cancelled.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

_BREAK = re.compile(r"\r\n|\n|\r")
_RULE = re.compile(r"^(RRULE|EXRULE)([;:])", re.IGNORECASE)
# Components that are never nested inside another: one beginning inside an open block
# means that block was never closed.
_TOP_LEVEL = frozenset({"VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "VTIMEZONE"})
_ERRORS = "samverkan.cp1252"
# What an event keeps of itself: what a reminder needs, and what places it in time.
# The rest (attendees, alarms, stamps, vendors' X- properties) is never read: less to
# parse, no personal data held even for a moment, and no X-SAMVERKAN- property of ours
# can be written by a feed.
EVENT_PROPERTIES = frozenset(
    {
        "UID",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RRULE",
        "EXRULE",
        "RDATE",
        "EXDATE",
        "RECURRENCE-ID",
        "SEQUENCE",
        "STATUS",
        "SUMMARY",
        "LOCATION",
        "DESCRIPTION",
        "URL",
    }
)


def _as_cp1252(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    chunk = error.object[error.start : error.end]
    return chunk.decode("cp1252", errors="replace"), error.end


codecs.register_error(_ERRORS, _as_cp1252)


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    bad_bytes: int  # bytes that were not UTF-8
    first_bad_line: int | None


def decode(body: bytes) -> Decoded:
    """The file's text. Bytes that are not UTF-8 are read as Windows-1252."""
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]
    try:
        return Decoded(body.decode("utf-8"), 0, None)
    except UnicodeDecodeError as exc:
        first_line = body.count(b"\n", 0, exc.start) + 1
    # Counted in C: what strict decoding keeps, encoded back, against the whole.
    good = len(body.decode("utf-8", errors="ignore").encode("utf-8"))
    return Decoded(body.decode("utf-8", errors=_ERRORS), len(body) - good, first_line)


@dataclass(slots=True)
class Block:
    """One top-level component: its logical (unfolded) lines from BEGIN to END."""

    name: str
    line: int  # the physical line of its BEGIN, counted from 1
    lines: list[str] = field(default_factory=list)
    closed: bool = False
    uid: str | None = None  # the value of its first UID line; None when it has none

    @property
    def text(self) -> str:
        body = self.lines if self.closed else [*self.lines, f"END:{self.name}"]
        return "\r\n".join(body) + "\r\n"


@dataclass(slots=True)
class Scan:
    header: list[str] = field(default_factory=list)  # the VCALENDAR's own properties
    blocks: list[Block] = field(default_factory=list)
    calendars: int = 0
    closed: bool = False  # an END:VCALENDAR was seen
    rules_mended: int = 0  # recurrence rules with spaces taken out


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(physical line number, unfolded line), blank lines dropped."""
    out: list[tuple[int, str]] = []
    for number, raw in enumerate(_BREAK.split(text), start=1):
        if raw[:1] in (" ", "\t"):
            if out:
                out[-1] = (out[-1][0], out[-1][1] + raw[1:])
            continue
        if raw.strip():
            out.append((number, raw))
    return out


def _name_value(line: str) -> tuple[str, str]:
    head, _, value = line.partition(":")
    return head.partition(";")[0].strip().upper(), value


def mend_rule(line: str) -> str:
    """`RRULE:FREQ=WEEKLY;BYDAY=MO, TU, WE` -> `RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE`."""
    head, sep, value = line.partition(":")
    return head + sep + re.sub(r"\s+", "", value)


def scan(text: str) -> Scan:
    """Cut the file into its components. A time zone keeps all of its lines (and its
    STANDARD and DAYLIGHT parts); an event keeps only EVENT_PROPERTIES, none of its
    nested components (alarms)."""
    result = Scan()
    depth: list[str] = []  # open components inside the current block
    block: Block | None = None
    in_calendar = False
    for number, line in logical_lines(text):
        name, value = _name_value(line)
        component = value.strip().upper()
        if name == "BEGIN" and component == "VCALENDAR" and block is None:
            result.calendars += 1
            in_calendar = True
            continue
        if name == "END" and component == "VCALENDAR":
            if block is not None:
                result.blocks.append(block)  # never closed
                block, depth = None, []
            in_calendar = False
            result.closed = True
            continue
        if block is not None and name == "BEGIN" and component in _TOP_LEVEL:
            result.blocks.append(block)  # the previous one was never closed
            block, depth = None, []
        if block is None:
            if name == "BEGIN":
                block = Block(component, number, [f"BEGIN:{component}"])
            elif in_calendar:
                result.header.append(line)
            continue
        if name == "BEGIN":
            depth.append(component)
        elif name == "END" and depth:
            depth.pop()
        elif name == "END" and component == block.name:
            block.lines.append(line)
            block.closed = True
            result.blocks.append(block)
            block = None
            continue
        if block.name != "VEVENT":
            block.lines.append(line)
            continue
        if depth or name not in EVENT_PROPERTIES:
            continue
        if name == "UID" and block.uid is None:
            block.uid = value.strip()
        if _RULE.match(line) and " " in line:
            result.rules_mended += 1
            block.lines.append(mend_rule(line))
        else:
            block.lines.append(line)
    if block is not None:
        result.blocks.append(block)
    return result
