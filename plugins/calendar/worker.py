"""The process that parses feeds for the bot, one request at a time.

The bot starts it (`isolation.py`) and keeps it between parses. Each request is a
length-prefixed frame on stdin: a JSON header line, then the feed's bytes; each answer a
length-prefixed JSON document on stdout: the occurrences, or the reason the feed was
refused, and the log records the parse made (the bot logs them as its own). JSON, not
pickle: what comes back is data, read as data.

Budgets: the process's address space is capped (RLIMIT_AS) at the memory budget, and
exits with status 3 when a parse runs out of it; each parse has a CPU-time alarm at the
time budget (the bot's own timeout kills the process sooner, by the clock; the alarm is
what stops a parse whose bot has gone away), and each series a CPU-time alarm of its own.
Each answer says how large the process has grown: past half its budget, the bot lets
it go, so that the next parse starts with all of it. Time zones that feeds define are
forgotten between parses: one feed's VTIMEZONE never decides another's times.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from icalendar.timezone import tzp

from plugins.calendar.components import LeftOut
from plugins.calendar.errors import FeedError
from plugins.calendar.model import Occurrence
from plugins.calendar.parsing import Parsed, Window, parse_calendar

EXIT_MEMORY = 3
FRAME = 8  # bytes of the length before each request and answer


class _Records(logging.Handler):
    """Keeps the records of one parse, to be sent back with the answer."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[list[Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        safe = [a if isinstance(a, int | float | str) else str(a) for a in args]
        self.records.append([record.name, record.levelno, str(record.msg), safe])


class ParseTooSlow(BaseException):
    """The parse used up its CPU time (BaseException: no library's `except Exception`
    may swallow it)."""


def encode(parsed: Parsed) -> dict[str, Any]:
    return {
        "occurrences": [
            [
                o.uid,
                o.occ,
                o.start.timestamp(),
                o.end.timestamp(),
                o.all_day,
                o.title,
                o.location,
                o.excerpt,
                o.url,
                o.single,
                o.cancelled,
            ]
            for o in parsed.occurrences
        ],
        "cutoffs": {uid: when.timestamp() for uid, when in parsed.cutoffs.items()},
        "left_out": [[i.uid, i.line, i.code] for i in parsed.left_out],
    }


def decode(data: dict[str, Any], source: str, associations: tuple[str, ...]) -> Parsed:
    """An answer of the worker, checked field by field as it is read."""

    def when(value: Any) -> datetime:
        return datetime.fromtimestamp(float(value), UTC)

    occurrences = [
        Occurrence(
            source=source,
            uid=str(r[0]),
            occ=str(r[1]),
            start=when(r[2]),
            end=when(r[3]),
            all_day=bool(r[4]),
            title=str(r[5]),
            location=str(r[6]),
            excerpt=str(r[7]),
            url=str(r[8]),
            associations=associations,
            single=bool(r[9]),
            cancelled=bool(r[10]),
        )
        for r in data["occurrences"]
    ]
    return Parsed(
        occurrences=occurrences,
        cutoffs={str(uid): when(ts) for uid, ts in dict(data["cutoffs"]).items()},
        left_out=[LeftOut(str(u), int(n), str(c)) for u, n, c in data["left_out"]],
        peak_kib=int(data.get("peak_kib", 0)),
        seconds=float(data.get("parse_s", 0.0)),
    )


def _status_kib(field: str) -> int:
    """A line of /proc/self/status in KiB (Linux); 0 where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_peak() -> None:
    """Start VmHWM afresh, so that the peak reported is this parse's (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def _expired(signum: int, frame: FrameType | None) -> None:
    raise ParseTooSlow


def _parse(header: dict[str, Any], body: bytes) -> dict[str, Any]:
    window = Window(
        start=datetime.fromtimestamp(float(header["start"]), UTC),
        end=datetime.fromtimestamp(float(header["end"]), UTC),
        tz=ZoneInfo(str(header["tz"])),
        max_occurrences=int(header["max_occurrences"]),
        max_per_series=int(header["max_per_series"]),
    )
    tzp.use_zoneinfo()  # forgets the zones the last feed defined
    _reset_peak()
    signal.setitimer(signal.ITIMER_PROF, float(header["seconds"]))
    try:
        parsed = parse_calendar(
            body,
            source=str(header["source"]),
            associations=(),
            window=window,
            series_cpu=float(header["series_cpu"]),
        )
        return encode(parsed)
    except FeedError as exc:
        return {"refused": [str(exc), exc.reason_key, exc.params]}
    except ParseTooSlow:
        return {"slow": True}
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(stdin: BinaryIO, stdout: BinaryIO, memory_bytes: int) -> int:
    """Answer requests until stdin closes (the bot stopped, or let this process go)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    signal.signal(signal.SIGPROF, _expired)
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # icalendar warns through `warnings`: into the records
    while True:
        head = _read(stdin, FRAME)
        if head is None:
            return 0
        request = _read(stdin, int.from_bytes(head, "big"))
        if request is None:
            return 0
        line, _, body = request.partition(b"\n")
        records.records = []
        try:
            began = time.perf_counter()
            answer = _parse(json.loads(line), body)
            answer["parse_s"] = time.perf_counter() - began
            answer["log"] = records.records
            answer["peak_kib"] = _status_kib("VmHWM")
            answer["size_kib"] = _status_kib("VmSize")
            data = json.dumps(answer, ensure_ascii=False).encode()
            del answer
        except MemoryError:
            os._exit(EXIT_MEMORY)  # nothing more can be relied on; the status says it
        stdout.write(len(data).to_bytes(FRAME, "big") + data)
        stdout.flush()


def main() -> int:
    return serve(sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[2]))
