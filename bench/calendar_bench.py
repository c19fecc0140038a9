"""Calendar figures: loading and arming, lateness of a burst, refresh of a big feed.

1. Time and memory to load and arm 10,000 events with three offsets (30,000 wake-ups),
   through a real App start (the parse in its worker process); floor: our parse and
   expansion of the same file, in this process. The arming overhead is the difference.
2. Lateness (due instant to the post reaching the console adapter) p50 and p99 when
   1,000 reminders fall due in the same minute, on the real clock and the real
   APScheduler waker; floor: the lateness of a single reminder, measured the same way.
3. Refresh of a 5,000-event feed over HTTP (a local server with ETags): unchanged (a
   conditional request answered 304) and changed (every event retitled, a tenth moved).
4. Hostile feeds (a rule every second without end, every minute since 2010, one that
   never matches) through the parse worker: wall time and the worker's peak memory,
   beside a healthy one-event feed through the same worker.

Prints figures; asserts nothing. Run `make bench` or `python bench/calendar_bench.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.console import ConsoleAdapter  # noqa: E402
from bot.app import App  # noqa: E402
from bot.core.clock import Clock, FakeClock, SystemClock  # noqa: E402
from bot.core.messages import OutgoingMessage  # noqa: E402
from bot.core.refs import MessageRef, RoomRef  # noqa: E402
from bot.scheduling import ManualWaker  # noqa: E402
from bot.settings import RootSettings, load_settings  # noqa: E402
from plugins.calendar import CalendarPlugin  # noqa: E402
from plugins.calendar.isolation import Budget, ParseWorker  # noqa: E402
from plugins.calendar.parsing import Window, parse_calendar  # noqa: E402
from plugins.calendar.settings import CalendarSettings  # noqa: E402
from tests.support import serve_on_loopback  # noqa: E402

TZ = ZoneInfo("Europe/Stockholm")


def ics(
    starts: list[datetime], title: str = "Möte", length: timedelta = timedelta(hours=2)
) -> bytes:
    out = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Samverkan bench//SV"]
    for i, start in enumerate(starts):
        local = start.astimezone(TZ)
        out += [
            "BEGIN:VEVENT",
            f"UID:bench-{i}@samverkan.example",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID=Europe/Stockholm:{local:%Y%m%dT%H%M%S}",
            f"DTEND;TZID=Europe/Stockholm:{local + length:%Y%m%dT%H%M%S}",
            f"SUMMARY:{title} {i}",
            "LOCATION:Folkets hus",
            "DESCRIPTION:Dagordning och fika. Alla medlemmar välkomna.",
            "END:VEVENT",
        ]
    out.append("END:VCALENDAR")
    return ("\r\n".join(out) + "\r\n").encode()


def settings(
    tmp: Path, feed: str, *, rooms: int = 1, reminders: str = '"7d", "1d", "1h"'
) -> RootSettings:
    room_list = ", ".join(f'"console:r{i}"' for i in range(rooms))
    body = f"""
[bot]
database = "{tmp / "bench.db"}"
[[associations]]
id = "falun"
name = "Falun"
rooms = [{room_list}]
[calendar]
reminders = [{reminders}]
digest = "0 8 1 1 *"
refresh = "1d"
max_occurrences = 50000
[[calendar.feeds]]
url = "{feed}"
associations = ["*"]
[fetching]
allow = ["127.0.0.0/8"]
"""
    path = tmp / "bench.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path, {"calendar": (CalendarSettings, CalendarSettings)})


class TimedConsole(ConsoleAdapter):
    """The console adapter, noting when each post reaches it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__("Samverkan", stdin=io.StringIO(), stdout=io.StringIO())
        self.clock = clock
        self.sent_at: list[datetime] = []
        self.expected = 0
        self.all_sent = asyncio.Event()

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        self.sent_at.append(self.clock.now())
        if len(self.sent_at) >= self.expected:
            self.all_sent.set()
        return await super().send(room, message, token)


def app_for(s: RootSettings, clock: Clock, console: ConsoleAdapter, *, manual: bool) -> App:
    return App(
        s,
        [CalendarPlugin],
        adapters={"console": console},
        clock=clock,
        waker=ManualWaker() if manual else None,
    )


# -- 1. load and arm ---------------------------------------------------------------------


async def load_and_arm(n: int, rounds: int) -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    # Spread over days 8..80, so that all three offsets lie ahead of every event.
    starts = [now + timedelta(days=8, minutes=10 * i) for i in range(n)]
    body = ics(starts)
    window = Window(now, now + timedelta(days=90), TZ, 50_000, 500)

    async def run(measure_memory: bool) -> tuple[float, int, float]:
        with tempfile.TemporaryDirectory() as tmp_s:
            tmp = Path(tmp_s)
            (tmp / "feed.ics").write_bytes(body)
            s = settings(tmp, str(tmp / "feed.ics"))
            clock = FakeClock(now)
            app = app_for(s, clock, TimedConsole(clock), manual=True)
            if measure_memory:
                tracemalloc.start()
            t0 = time.perf_counter()
            await app.start()
            elapsed = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] if measure_memory else 0
            if measure_memory:
                tracemalloc.stop()
            armed = len(await app.scheduler.pending("calendar:reminder:"))
            plugin = next(p for p in app.plugins if isinstance(p, CalendarPlugin))
            assert plugin.feeds is not None
            ((parsing, _peak),) = plugin.feeds.parse_costs.values()
            await app.stop()
            assert armed == 3 * n, armed
            return elapsed, peak, parsing

    def floor_once() -> float:
        t0 = time.perf_counter()
        parsed = parse_calendar(body, source="floor", associations=("*",), window=window)
        assert len(parsed.occurrences) == n
        return time.perf_counter() - t0

    # Interleaved, medians: the machine is shared, and its load moves.
    loads, floors, shares = [], [], []
    for _ in range(rounds):
        floors.append(floor_once())
        elapsed, _, parsing = await run(False)
        loads.append(elapsed)
        shares.append((elapsed - parsing) / parsing)
    load, floor = statistics.median(loads), statistics.median(floors)
    _, heap, _ = await run(True)
    worker = ParseWorker()
    try:
        parsed = await worker.parse(
            body, source="f", associations=("*",), window=window, budget=Budget(600, 1024)
        )
    finally:
        await worker.close()
    overhead = load - floor
    print(f"load+arm {n} events x 3 offsets ({3 * n} wake-ups), whole App start:")
    print(f"  {load:.2f} s (median of {rounds}); floor, parse + expansion alone: {floor:.2f} s")
    print(
        f"  ratio {load / floor:.2f}x; arming overhead (load - floor) / floor:"
        f" {overhead / floor:.2f}"
    )
    each = ", ".join(f"{x:.2f}" for x in shares)
    print(
        "  in the same run, (App start - the worker's own parse) / that parse:"
        f" {statistics.median(shares):.2f} (median; each run {each})"
    )
    print(
        f"  memory: bot's python heap peak (tracemalloc) {heap / 2**20:.1f} MiB;"
        f" parse worker's peak RSS {parsed.peak_kib / 1024:.1f} MiB"
    )


# -- 2. lateness of a burst --------------------------------------------------------------


async def lateness(n: int) -> list[float]:
    """n reminders due at the same instant, a few seconds ahead on the real clock."""
    clock = SystemClock()
    due = (clock.now() + timedelta(seconds=6)).replace(microsecond=0)
    start = due + timedelta(hours=1)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "feed.ics").write_bytes(ics([start] * n))
        s = settings(tmp, str(tmp / "feed.ics"), reminders='"1h"')
        console = TimedConsole(clock)
        console.expected = n
        app = app_for(s, clock, console, manual=False)
        await app.start()
        try:
            armed = len(await app.scheduler.pending("calendar:reminder:"))
            assert armed == n, f"only {armed} armed: loading took too long"
            await asyncio.wait_for(console.all_sent.wait(), 120)
            # Let the wake-up that posted them finish re-arming before stopping: the
            # scheduler's stop does not wait for a run in progress.
            await asyncio.sleep(0.5)
        finally:
            await app.stop()
    return sorted((t - due).total_seconds() for t in console.sent_at)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# -- 3. refresh of a big feed over HTTP --------------------------------------------------


class Server:
    def __init__(self) -> None:
        self.body = b""
        self.statuses: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.statuses.append(304)
            return web.Response(status=304, headers={"ETag": etag})
        self.statuses.append(200)
        return web.Response(body=self.body, content_type="text/calendar", headers={"ETag": etag})


async def refresh(n: int, rounds: int) -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    starts = [now + timedelta(days=8, minutes=10 * i) for i in range(n)]
    server = Server()
    server.body = ics(starts)
    web_app = web.Application()
    web_app.router.add_get("/feed.ics", server.handle)
    runner, port = await serve_on_loopback(web_app)
    host = "127.0.0.1"
    with tempfile.TemporaryDirectory() as tmp_s:
        s = settings(Path(tmp_s), f"http://{host}:{port}/feed.ics")
        clock = FakeClock(now)
        app = app_for(s, clock, TimedConsole(clock), manual=True)
        await app.start()
        plugin = next(p for p in app.plugins if isinstance(p, CalendarPlugin))
        unchanged, changed = [], []
        for r in range(rounds):
            t0 = time.perf_counter()
            await plugin.refresh_feeds()
            unchanged.append(time.perf_counter() - t0)
            moved = [
                st + timedelta(hours=1) if i % 10 == r % 10 else st for i, st in enumerate(starts)
            ]
            server.body = ics(moved, title=f"Möte v{r}")
            t0 = time.perf_counter()
            await plugin.refresh_feeds()
            changed.append(time.perf_counter() - t0)
        await app.stop()
    await runner.cleanup()
    assert server.statuses.count(304) == rounds, server.statuses
    u, c = statistics.median(unchanged), statistics.median(changed)
    print(f"refresh of a {n}-event feed over HTTP (median of {rounds}):")
    print(f"  unchanged (conditional request, 304): {u * 1000:.1f} ms")
    print(
        f"  changed (all retitled, a tenth moved by an hour): {c * 1000:.0f} ms; ratio {c / u:.0f}x"
    )


# -- 4. hostile feeds ---------------------------------------------------------------------


def hostile_feed(rule: str, start: str = "20261126T000000Z") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//SV\r\n"
        f"BEGIN:VEVENT\r\nUID:hostile@bench\r\nDTSTART:{start}\r\nRRULE:{rule}\r\n"
        "SUMMARY:Fientlig\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:healthy@bench\r\nDTSTART:20261210T180000\r\n"
        "SUMMARY:Medlemsmöte\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


async def hostile() -> None:
    """Each feed through the worker as the bot parses it: wall time and the worker's peak
    memory, beside the floor of a healthy one-event feed through the same worker."""
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    window = Window(now, now + timedelta(days=90), TZ, 20_000, 500)
    cases = [
        ("floor: one healthy event", hostile_feed("FREQ=YEARLY;COUNT=1")),
        ("FREQ=SECONDLY, no end (refused: finer than a minute)", hostile_feed("FREQ=SECONDLY")),
        (
            "FREQ=MINUTELY, no end, begun 2010 (cut at 500)",
            hostile_feed("FREQ=MINUTELY", "20100101T000000Z"),
        ),
        (
            "FREQ=DAILY that never matches (stopped at 2 s of CPU)",
            hostile_feed("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"),
        ),
    ]
    worker = ParseWorker()
    results: list[tuple[str, float, float, int]] = []
    try:
        await worker.parse(
            cases[0][1], source="warm", associations=(), window=window, budget=Budget(60, 512)
        )
        for name, body in cases:
            t0 = time.perf_counter()
            parsed = await worker.parse(
                body, source="f", associations=(), window=window, budget=Budget(60, 512)
            )
            results.append(
                (name, time.perf_counter() - t0, parsed.peak_kib / 1024, len(parsed.occurrences))
            )
    finally:
        await worker.close()
    floor = results[0][1]
    print("hostile feeds through the parse worker (a started worker; wall time, peak RSS):")
    for name, elapsed, mib, count in results:
        print(
            f"  {name}: {elapsed * 1000:.0f} ms ({elapsed / floor:.0f}x floor),"
            f" {mib:.0f} MiB, {count} occurrences kept"
        )


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    await load_and_arm(10_000, rounds=3)
    single = await lateness(1)
    burst = await lateness(1000)
    print("lateness, due instant to the post reaching the console adapter:")
    print(f"  floor, one reminder alone: {single[0] * 1000:.1f} ms")
    p50, p99 = pct(burst, 50), pct(burst, 99)
    print(f"  1000 due in the same minute (all at one instant, one room): p50 {p50 * 1000:.0f} ms,")
    print(
        f"  p99 {p99 * 1000:.0f} ms, max {burst[-1] * 1000:.0f} ms;"
        f" p99/floor {p99 / max(single[0], 1e-6):.0f}x"
    )
    await refresh(5000, rounds=3)
    await hostile()


if __name__ == "__main__":
    asyncio.run(main())
