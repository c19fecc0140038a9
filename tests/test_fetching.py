"""The fetcher against a real server on 127.0.0.1 (allowed, as `[fetching] allow` lets a
deployment): conditional requests, caps before and after decompression, time caps,
redirects, failures in plain Swedish, and local files."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path

import pytest
from yarl import URL

from bot.core.clock import FakeClock
from bot.core.i18n import Translator
from bot.fetching import Fetcher, FetchError
from tests.fetching_server import (
    FEED,
    LAST_MODIFIED,
    MB,
    FeedServer,
    closed_port,
    feed_server,
    gzip_bomb,
)

LOOPBACK = [ip_network("127.0.0.0/8")]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with feed_server() as state:
        yield state


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    made = Fetcher(LOOPBACK, clock=FakeClock(datetime(2026, 11, 25, 12, tzinfo=UTC)))
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture(scope="module")
def sv() -> Translator:
    t = Translator("sv")
    t.load_dir(ROOT / "bot" / "locales")
    return t


async def failure(fetcher: Fetcher, location: str, **options: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(location, **options)  # type: ignore[arg-type]
    return caught.value


async def test_an_unchanged_feed_is_answered_304_by_etag_or_date(
    server: FeedServer, fetcher: Fetcher
) -> None:
    first = await fetcher.fetch(server.url("/feed"), accept="application/rss+xml")
    assert (first.status, first.body, first.last_modified) == (200, FEED, LAST_MODIFIED)
    assert first.etag and first.content_type == "application/rss+xml"
    assert first.headers["content-type"] == "application/rss+xml; charset=utf-8"
    asked = server.seen[0].headers
    assert asked["User-Agent"].startswith("Samverkan/")
    assert asked["Accept"] == "application/rss+xml"
    assert asked["Accept-Encoding"] == "gzip, deflate"
    assert "If-None-Match" not in asked

    again = await fetcher.fetch(server.url("/feed"), etag=first.etag, last_modified=LAST_MODIFIED)
    assert (again.status, again.body, again.unchanged) == (304, b"", True)
    assert again.etag == first.etag
    assert server.seen[1].headers["If-None-Match"] == first.etag
    assert server.seen[1].headers["If-Modified-Since"] == LAST_MODIFIED

    by_date = await fetcher.fetch(server.url("/feed"), last_modified=LAST_MODIFIED)
    assert by_date.status == 304

    server.body = FEED.replace(b"Nyheter", b"Nytt")
    changed = await fetcher.fetch(server.url("/feed"), etag=first.etag)
    assert changed.status == 200 and b"Nytt" in changed.body and changed.etag != first.etag


async def test_no_cookie_is_kept_between_fetches(server: FeedServer, fetcher: Fetcher) -> None:
    await fetcher.fetch(server.url("/feed"))  # sets a cookie
    assert (await fetcher.fetch(server.url("/cookie"))).body == b"none"


async def test_compressed_bodies_are_read(server: FeedServer, fetcher: Fetcher) -> None:
    for coding in ("gzip", "zlib", "raw"):
        got = await fetcher.fetch(server.url(f"/gzip?as={coding}"))
        assert got.body == FEED, coding
    unknown = await failure(fetcher, server.url("/brotli"))
    assert (unknown.kind, unknown.reason_key) == ("bad_content", "fetching.encoding")


async def test_a_20_mb_answer_stops_at_the_cap_in_bounded_time_and_memory(
    server: FeedServer, fetcher: Fetcher
) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        err = await failure(fetcher, server.url("/big"), max_bytes=MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert err.kind == "too_large" and str(err) == f"it is larger than the cap of {MB} bytes"
    assert elapsed < 5
    assert peak < 4 * MB  # the cap, its copy, and the server's own buffers
    await asyncio.sleep(0)  # let the server see the hang-up
    assert server.streamed < 10 * MB

    declared = await failure(fetcher, server.url("/declared"), max_bytes=MB)
    assert str(declared) == f"it is {2 * MB} bytes, more than the cap of {MB}"


async def test_a_gzip_bomb_stops_at_the_cap(server: FeedServer, fetcher: Fetcher) -> None:
    server.bomb = gzip_bomb(200 * MB)
    assert len(server.bomb) < MB // 2  # small on the wire
    tracemalloc.start()
    started = time.monotonic()
    try:
        err = await failure(fetcher, server.url("/bomb"), max_bytes=MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.kind == "too_large"
    assert time.monotonic() - started < 5
    assert peak < 4 * MB  # not the 200 MB it inflates to


async def test_a_slow_server_is_cut_off_at_the_time_cap(
    server: FeedServer, fetcher: Fetcher, sv: Translator
) -> None:
    for path in ("/slow", "/drip"):
        started = time.monotonic()
        err = await failure(fetcher, server.url(path), timeout=0.3)
        assert time.monotonic() - started < 2, path
        assert (err.kind, str(err)) == ("offline", "no complete answer within 0.3 s")
        assert err.reason(sv.t) == "inget fullständigt svar inom 0.3 sekunder"


async def test_redirects_are_followed_up_to_five(server: FeedServer, fetcher: Fetcher) -> None:
    five = await fetcher.fetch(server.url("/go?n=5"))
    assert five.body == FEED and five.url == server.url("/go?n=0")
    six = await failure(fetcher, server.url("/go?n=6"))
    assert (six.kind, six.status, six.reason_key) == ("http", 301, "fetching.redirects")
    bare = await failure(fetcher, server.url("/bare"))
    assert (bare.kind, bare.reason_key) == ("http", "fetching.bad_redirect")


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/feed",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://127.0.0.1:25/",
        "ftp://127.0.0.1/feed",
    ],
)
async def test_a_redirect_out_of_bounds_is_refused(
    server: FeedServer, fetcher: Fetcher, target: str
) -> None:
    err = await failure(fetcher, str(URL(server.url("/go")).with_query(to=target)))
    assert err.kind == "blocked"
    assert len(server.seen) == 1  # the redirect, and nothing after it


async def test_errors_are_told_apart_and_explained_without_the_body(
    server: FeedServer, fetcher: Fetcher, sv: Translator
) -> None:
    gone = await failure(fetcher, server.url("/status?code=410"))
    missing = await failure(fetcher, server.url("/status?code=404"))
    broken = await failure(fetcher, server.url("/status?code=500"))
    assert (gone.kind, gone.status, gone.gone) == ("http", 410, True)
    assert (missing.status, missing.gone) == (404, False)
    assert gone.reason(sv.t) == "servern säger att det är borttaget för gott (felkod 410)"
    assert missing.reason(sv.t) == "adressen finns inte på servern (felkod 404)"
    assert broken.reason(sv.t) == "servern svarade med felkod 500"
    assert str(broken) == "the server answered HTTP 500"
    for err in (gone, missing, broken):
        assert "SECRET" not in str(err) + err.reason(sv.t) + err.reason(sv.t, "en")

    busy = await failure(fetcher, server.url("/status?code=429&wait=120"))
    assert (busy.status, busy.retry_after) == (429, 120.0)
    assert busy.reason(sv.t) == "servern är upptagen och ber oss vänta (felkod 429)"
    later = "Wed, 25 Nov 2026 12:05:00 GMT"  # five minutes after the fake clock's now
    down = await failure(fetcher, server.url(f"/status?code=503&wait={later}"))
    assert down.retry_after == 300.0

    unreachable = await failure(fetcher, f"http://127.0.0.1:{closed_port()}/feed")
    assert unreachable.kind == "offline"
    assert unreachable.reason(sv.t) == "servern går inte att nå just nu"


async def test_a_local_path_is_read_and_unchanged_is_304(tmp_path: Path, fetcher: Fetcher) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    first = await fetcher.fetch(str(path))
    assert (first.status, first.body, first.url) == (200, FEED, str(path))
    assert first.etag and first.last_modified and first.content_type == "application/xml"
    again = await fetcher.fetch(str(path), etag=first.etag, last_modified=first.last_modified)
    assert (again.status, again.body) == (304, b"")

    path.write_bytes(FEED + b"\n")  # one byte more: another size
    changed = await fetcher.fetch(str(path), etag=first.etag)
    assert changed.status == 200 and changed.etag != first.etag
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # same size
    touched = await fetcher.fetch(str(path), etag=changed.etag)
    assert touched.status == 200

    too_big = await failure(fetcher, str(path), max_bytes=10)
    assert too_big.kind == "too_large"
    missing = await failure(fetcher, str(tmp_path / "nope.xml"))
    assert (missing.kind, missing.reason_key) == ("offline", "fetching.file_unreadable")
    folder = await failure(fetcher, str(tmp_path))
    assert (folder.kind, folder.reason_key) == ("blocked", "fetching.not_a_file")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    piped = await failure(fetcher, str(fifo), timeout=2)  # refused, never waited on
    assert piped.reason_key == "fetching.not_a_file"


async def test_other_schemes_and_paths_typed_in_chat_are_refused(
    tmp_path: Path, fetcher: Fetcher, sv: Translator
) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    for location in (f"file://{path}", "ftp://example.org/feed", "data:text/plain,hej", "x:y"):
        err = await failure(fetcher, location)
        assert (err.kind, err.reason_key) == ("blocked", "fetching.scheme"), location
    typed = await failure(fetcher, str(path), local=False)
    assert typed.kind == "blocked"
    assert typed.reason(sv.t).startswith("en sökväg på datorn går inte här")
