"""Updates figures: a big feed parsed and deduplicated, and how soon a new entry is
posted in instant mode.

1. A 5 MB RSS feed with 5,000 entries: our parse (defusedxml's screen, feedparser, the
   entries cut and sanitised) and dedup, time and Python heap peak; floor: feedparser
   alone on the same bytes. Then the whole refresh through a real App and a local HTTP
   server: the first fetch (5,000 entries recorded, none posted) and a changed one (one
   new, one retitled, 4,998 known).
2. Instant mode on the real clock and the real APScheduler waker, refresh "1m" (the
   floor): an entry added on the server at a moment within the minute, to its copy
   reaching the console adapter. The wait is the rest of the interval; what comes after
   the tick is ours; floor: a bare aiohttp GET and feedparser parse of the same feed.

Prints figures; asserts nothing. Run `make bench` or `python bench/updates_bench.py`.
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import feedparser
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
from plugins.updates import UpdatesPlugin  # noqa: E402
from plugins.updates.dedup import Known, match  # noqa: E402
from plugins.updates.parsing import _screen, parse_feed  # noqa: E402
from plugins.updates.settings import UpdatesSettings  # noqa: E402
from tests.support import serve_on_loopback  # noqa: E402
from tests.updates.support import Item, rss  # noqa: E402

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
PARAGRAPH = (
    "Regiongruppen har lämnat en motion om kollektivtrafiken i länet, med fler turer på "
    "landsbygden, ett länskort för unga och pendlarparkeringar vid stationerna. "
)


def entries(n: int, start: int = 0, title: str = "Nyhet") -> list[Item]:
    summary = f"<p>{PARAGRAPH * 4}</p><p><a href='https://region.example/x'>Läs mer</a></p>"
    return [
        Item(
            f"{title} {i}",
            f"tag:region.example,2026:{i}",
            f"https://region.example/nyheter/{i}",
            summary,
            NOW - timedelta(minutes=i),
        )
        for i in range(start + n - 1, start - 1, -1)
    ]


def timed(fn: Callable[[], Any], rounds: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def heap_peak(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Server:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def handle(self, request: web.Request) -> web.Response:
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=self.body, content_type="application/rss+xml", headers={"ETag": etag}
        )


def settings(tmp: Path, url: str, *, refresh: str, mode: str) -> RootSettings:
    body = f"""
[bot]
database = "{tmp / "bench.db"}"
[fetching]
allow = ["127.0.0.0/8"]
[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun"]
[updates]
refresh = "{refresh}"
schedule = "0 8 1 1 *"
max_bytes = 6000000
max_new = 100
[[updates.feeds]]
url = "{url}"
associations = ["*"]
mode = "{mode}"
"""
    path = tmp / "bench.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path, {"updates": (UpdatesSettings, UpdatesSettings)})


class TimedConsole(ConsoleAdapter):
    """The console adapter, noting when each post reaches it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__("Samverkan", stdin=io.StringIO(), stdout=io.StringIO())
        self.clock = clock
        self.sent_at: list[float] = []
        self.arrived = asyncio.Event()

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        self.sent_at.append(time.time())
        self.arrived.set()
        return await super().send(room, message, token)


def plugin_of(app: App) -> UpdatesPlugin:
    return next(p for p in app.plugins if isinstance(p, UpdatesPlugin))


# -- 1. a big feed -----------------------------------------------------------------------


async def big_feed(n: int) -> None:
    body = rss(entries(n))
    print(f"a {len(body) / 1e6:.1f} MB RSS feed with {n} entries:")
    floor_t, _ = timed(lambda: feedparser.parse(io.BytesIO(body)))
    floor_mem = heap_peak(lambda: feedparser.parse(io.BytesIO(body)))

    def ours() -> Any:
        return parse_feed(
            body,
            content_type="application/rss+xml",
            url="https://region.example/feed",
            max_entries=n,
            summary_lines=3,
            summary_chars=300,
        )

    ours_t, parsed = timed(ours)
    ours_mem = heap_peak(ours)
    screen_t, _ = timed(lambda: _screen(body))
    quiet_t, _ = timed(lambda: feedparser.parse(io.BytesIO(body), sanitize_html=False))
    new_t, first = timed(lambda: match("f", parsed.entries, []))
    known = [Known(i, e.guid, e.link, e.title, e.digest, "posted", 0) for i, e in first.new]
    known_t, again = timed(lambda: match("f", parsed.entries, known))
    assert len(first.new) == n and len(again.unchanged) == n
    print(f"  floor, feedparser alone: {floor_t:.2f} s, heap peak {floor_mem / 2**20:.0f} MiB")
    print(
        f"  our parse (screen + feedparser + entries): {ours_t:.2f} s ({ours_t / floor_t:.2f}x),"
        f" heap peak {ours_mem / 2**20:.0f} MiB ({ours_mem / floor_mem:.2f}x)"
    )
    print(
        f"    of which defusedxml's screen {screen_t:.2f} s, feedparser without its sanitiser"
        f" {quiet_t:.2f} s, the entries (nh3, cut, escape) {ours_t - screen_t - quiet_t:.2f} s"
    )
    print(f"  dedup in memory: all new {new_t * 1000:.0f} ms, all known {known_t * 1000:.0f} ms")

    server = Server(body)
    web_app = web.Application()
    web_app.router.add_get("/feed.rss", server.handle)
    runner, port = await serve_on_loopback(web_app)
    with tempfile.TemporaryDirectory() as tmp_s:
        s = settings(Path(tmp_s), f"http://127.0.0.1:{port}/feed.rss", refresh="1d", mode="instant")
        clock = FakeClock(NOW)
        console = TimedConsole(clock)
        app = App(
            s, [UpdatesPlugin], adapters={"console": console}, clock=clock, waker=ManualWaker()
        )
        t0 = time.perf_counter()
        await app.start()  # the first fetch runs when ready
        first_t = time.perf_counter() - t0
        plugin = plugin_of(app)
        changed = entries(n)
        changed[5] = Item("Rättad", changed[5].guid, changed[5].link, "<p>Ny</p>")
        server.body = rss([*entries(1, start=n, title="Ny"), *changed])

        async def refresh() -> None:
            for feed in await plugin.store.feeds():
                await plugin.store.set_feed(feed.key, next_fetch=None)
            await plugin.refresh_due()

        t0 = time.perf_counter()
        await refresh()
        changed_t = time.perf_counter() - t0
        t0 = time.perf_counter()
        await refresh()
        unchanged_t = time.perf_counter() - t0
        # The heap peak of another such refresh, apart: tracemalloc slows what it traces.
        server.body = rss([*entries(2, start=n, title="Ny"), *changed])
        tracemalloc.start()
        await refresh()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await app.delivery.wait_idle(10)
        await app.stop()
    await runner.cleanup()
    print(f"  through the App over HTTP: first fetch (App start included) {first_t:.2f} s;")
    print(
        f"  changed (1 new, 1 retitled, {n - 1} known) {changed_t:.2f} s, heap peak"
        f" {peak / 2**20:.0f} MiB; unchanged (304) {unchanged_t * 1000:.0f} ms;"
        f" posts {len(console.sent_at)}"
    )


# -- 2. instant mode on the real clock ---------------------------------------------------


async def instant(offsets: list[float]) -> None:
    base = entries(20)
    server = Server(rss(base))
    web_app = web.Application()
    web_app.router.add_get("/feed.rss", server.handle)
    runner, port = await serve_on_loopback(web_app)
    url = f"http://127.0.0.1:{port}/feed.rss"
    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        async with session.get(url) as resp:
            raw = await resp.read()
        feedparser.parse(io.BytesIO(raw))
        floor = time.perf_counter() - t0
    waits, after = [], []
    with tempfile.TemporaryDirectory() as tmp_s:
        s = settings(Path(tmp_s), url, refresh="1m", mode="instant")
        clock = SystemClock()
        console = TimedConsole(clock)
        app = App(s, [UpdatesPlugin], adapters={"console": console}, clock=clock)
        await app.start()
        try:
            for i, offset in enumerate(offsets):
                # Into the minute by `offset` seconds, then a new entry on the server.
                now = time.time()
                await asyncio.sleep((60 - now % 60 + offset) % 60)
                console.arrived.clear()
                server.body = rss([*entries(1, start=100 + i, title="Ny"), *base])
                changed = time.time()
                await asyncio.wait_for(console.arrived.wait(), 90)
                posted = console.sent_at[-1]
                tick = changed - changed % 60 + 60  # the next whole minute
                waits.append(posted - changed)
                after.append(posted - tick)
        finally:
            await app.stop()
    await runner.cleanup()
    print("instant mode, refresh 1m: a new entry on the server to its copy at the adapter:")
    for offset, wait, extra in zip(offsets, waits, after, strict=True):
        print(
            f"  changed {offset:.0f} s into the minute: {wait:.2f} s"
            f" = {wait - extra:.2f} s to the tick + {extra * 1000:.0f} ms after it"
        )
    print(
        f"  floor, a bare GET + feedparser of the same feed: {floor * 1000:.0f} ms;"
        f" after the tick, median {statistics.median(after) * 1000:.0f} ms"
    )


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    await big_feed(5000)
    await instant([15.0, 45.0])


if __name__ == "__main__":
    asyncio.run(main())
