"""Fetcher figures: 200 feeds refreshed from a local server, all unchanged.

The server (aiohttp, a subprocess of its own on 127.0.0.1, so that its CPU is not
counted) serves 200 feeds, each with an ETag and a Last-Modified, and answers 304 to a
request that carries either. One cycle asks for all 200 at once, with the validators
of the last good fetch, as a feed refresh does. Per cycle (median of the cycles, the
kinds interleaved: ours, floor, ours, ...): wall time, CPU time of this process, and
the share of the 200 answered 304 (target 100 %), for

- ours: `bot.fetching.Fetcher`, the URLs by address (127.0.0.1) and by name
  (`localhost`, looked up and checked again on every new connection);
- the floor: 200 bare aiohttp conditional GETs, with the same connection limits as ours
  (8 per host), and with aiohttp's defaults (100 per session, DNS cached).

Prints figures; asserts nothing. Run `.venv/bin/python bench/fetch_bench.py`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from ipaddress import ip_network
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.fetching import CONNECTIONS, CONNECTIONS_PER_HOST, Fetcher  # noqa: E402

FEEDS = 200
CYCLES = int(os.environ.get("BENCH_SAMPLES", "15"))

SERVER = """
import hashlib, sys
from aiohttp import web

LAST_MODIFIED = "Wed, 25 Nov 2026 10:00:00 GMT"
BODIES = {i: (f"<rss><channel><title>Flöde {i}</title>" + "<item>x</item>" * 200
              + "</channel></rss>").encode() for i in range(int(sys.argv[1]))}
TAGS = {i: '"' + hashlib.sha256(b).hexdigest()[:16] + '"' for i, b in BODIES.items()}

async def feed(request):
    i = int(request.match_info["i"])
    headers = {"ETag": TAGS[i], "Last-Modified": LAST_MODIFIED}
    inm = request.headers.get("If-None-Match")
    if inm == TAGS[i] or (inm is None and request.headers.get("If-Modified-Since")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=BODIES[i], headers=headers, content_type="application/rss+xml")

async def main():
    app = web.Application()
    app.router.add_get("/feed/{i}", feed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()

import asyncio
asyncio.run(main())
"""


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(FEEDS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


Cycle = Callable[[], Awaitable[int]]  # one refresh of every feed; how many were 304


def ours(fetcher: Fetcher, urls: list[str]) -> tuple[Cycle, Cycle]:
    tags: dict[str, tuple[str | None, str | None]] = {}

    async def first() -> int:
        for url, got in zip(urls, await asyncio.gather(*map(fetcher.fetch, urls)), strict=True):
            tags[url] = (got.etag, got.last_modified)
        return 0

    async def one(url: str) -> bool:
        etag, modified = tags[url]
        got = await fetcher.fetch(url, etag=etag, last_modified=modified)
        if not got.unchanged:
            tags[url] = (got.etag, got.last_modified)
        return got.unchanged

    async def cycle() -> int:
        return sum(await asyncio.gather(*map(one, urls)))

    return first, cycle


def bare(session: aiohttp.ClientSession, urls: list[str]) -> tuple[Cycle, Cycle]:
    tags: dict[str, dict[str, str]] = {}

    async def get(url: str) -> bool:
        async with session.get(url, headers=tags.get(url, {})) as resp:
            await resp.read()
            if resp.status == 200:
                tags[url] = {
                    "If-None-Match": resp.headers["ETag"],
                    "If-Modified-Since": resp.headers["Last-Modified"],
                }
            return resp.status == 304

    async def first() -> int:
        return sum(await asyncio.gather(*map(get, urls)))

    async def cycle() -> int:
        return sum(await asyncio.gather(*map(get, urls)))

    return first, cycle


async def main() -> None:
    proc, port = start_server()
    by_ip = [f"http://127.0.0.1:{port}/feed/{i}" for i in range(FEEDS)]
    by_name = [f"http://localhost:{port}/feed/{i}" for i in range(FEEDS)]
    loopback = [ip_network("127.0.0.0/8")]
    fetcher_ip, fetcher_name = Fetcher(loopback), Fetcher(loopback)
    same_limits = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS, limit_per_host=CONNECTIONS_PER_HOST)
    )
    defaults = aiohttp.ClientSession()
    kinds = {
        "ours, by address": ours(fetcher_ip, by_ip),
        "ours, by name": ours(fetcher_name, by_name),
        "floor, same limits": bare(same_limits, by_ip),
        "floor, aiohttp defaults": bare(defaults, by_name),
    }
    wall: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    unchanged: dict[str, list[int]] = {k: [] for k in kinds}
    try:
        for first, _ in kinds.values():
            await first()  # the first fetch of each: 200s, validators kept
        for _ in range(CYCLES):
            for name, (_, cycle) in kinds.items():
                c0, t0 = time.process_time(), time.perf_counter()
                count = await cycle()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                unchanged[name].append(count)
    finally:
        await fetcher_ip.close()
        await fetcher_name.close()
        await same_limits.close()
        await defaults.close()
        proc.terminate()
        proc.wait()

    floor_wall = statistics.median(wall["floor, same limits"])
    floor_cpu = statistics.median(cpu["floor, same limits"])
    print(f"{FEEDS} feeds, all unchanged, refreshed at once; median of {CYCLES} cycles each:")
    for name in kinds:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        share = 100 * sum(unchanged[name]) / (FEEDS * CYCLES)
        print(
            f"  {name:24} {w * 1000:7.1f} ms wall ({w / floor_wall:4.2f}x)"
            f"   {c * 1000:7.1f} ms CPU ({c / floor_cpu:4.2f}x)"
            f"   {c / FEEDS * 1e6:6.0f} µs CPU a feed   304: {share:5.1f} %"
        )
    print("  (ratios against the floor with the same limits, measured in the same run)")


if __name__ == "__main__":
    asyncio.run(main())
