"""Feeds over HTTP from a local server on 127.0.0.1 (allowed by `[fetching] allow`):
conditional requests, and bad input (malformed, oversized, slow, failing, unreachable)
that keeps the last good data; without the allow, loopback is refused."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from bot.core.clock import FakeClock
from bot.fetching import Fetcher
from plugins.calendar.fetching import Conditional, FeedError, fetch
from plugins.calendar.settings import FeedSettings
from tests.calendar.support import FIXTURES, Bot, feed_toml, make_settings
from tests.engines import Target
from tests.support import serve_on_loopback

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
LAST_MODIFIED = "Wed, 25 Nov 2026 10:00:00 GMT"
LOOPBACK = ("127.0.0.0/8",)


@dataclass
class Seen:
    path: str
    if_none_match: str | None
    if_modified_since: str | None
    status: int


@dataclass
class CalendarServer:
    """Serves calendars with ETags; each path can be switched to misbehave."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        mode = self.modes.get(path, "ok")
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if mode == "slow":
            await asyncio.sleep(5)
        if mode == "error":
            self.seen.append(Seen(path, inm, ims, 500))
            return web.Response(status=500, text="oops")
        if mode == "huge":
            self.seen.append(Seen(path, inm, ims, 200))
            response = web.StreamResponse()  # chunked: no Content-Length to trust
            await response.prepare(request)
            chunk = b"X" * 65536
            try:
                for _ in range(64):
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionError:
                pass  # the bot hung up at its cap, as it should
            return response
        body = b"this is not a calendar" if mode == "broken" else self.bodies[path]
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if inm == etag:
            self.seen.append(Seen(path, inm, ims, 304))
            return web.Response(status=304, headers={"ETag": etag})
        self.seen.append(Seen(path, inm, ims, 200))
        return web.Response(
            body=body,
            content_type="text/calendar",
            headers={"ETag": etag, "Last-Modified": LAST_MODIFIED},
        )

    def statuses(self, path: str) -> list[int]:
        return [s.status for s in self.seen if s.path == path]


@pytest.fixture
async def server() -> AsyncIterator[CalendarServer]:
    state = CalendarServer()
    app = web.Application()
    app.router.add_get("/{name}", state.handle)
    runner, port = await serve_on_loopback(app, shutdown_timeout=0.1)
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unchanged_feed_costs_a_304_and_a_change_is_applied(
    tmp_path: Path, server: CalendarServer, db_target: Target
) -> None:
    single = (FIXTURES / "single.ics").read_bytes()
    server.bodies["/a.ics"] = single
    settings = make_settings(
        tmp_path, feed_toml(f"{server.base}/a.ics", ["falun"]), allow=LOOPBACK, database=db_target
    )
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert server.statuses("/a.ics") == [200]
        assert len(await bot.pending()) == 3
        await bot.refresh()
        assert server.statuses("/a.ics") == [200, 304]
        conditional = server.seen[-1]
        assert conditional.if_none_match and conditional.if_modified_since == LAST_MODIFIED

        server.bodies["/a.ics"] = single.replace(b"20261208T", b"20261209T")
        await bot.refresh()
        assert server.statuses("/a.ics") == [200, 304, 200]
        due = sorted((await bot.pending()).values())
        assert due[0] == datetime(2026, 12, 2, 17, tzinfo=UTC)  # 9 December 18.00, 7d before

        # Half a day on, the window has moved: fetched in full and expanded again.
        bot.clock.advance(timedelta(hours=13))
        await bot.refresh()
        assert server.seen[-1].if_none_match is None and server.seen[-1].status == 200
    finally:
        await bot.stop()


async def test_bad_feeds_keep_their_last_good_data_and_organisers_hear_once(
    tmp_path: Path, server: CalendarServer, caplog: pytest.LogCaptureFixture, db_target: Target
) -> None:
    floating = (FIXTURES / "floating.ics").read_bytes()
    server.bodies["/a.ics"] = floating
    server.bodies["/b.ics"] = (FIXTURES / "single.ics").read_bytes()
    feeds = feed_toml(f"{server.base}/a.ics", ["mora"], name="Mora-kalendern")
    feeds += feed_toml(f"{server.base}/b.ics", ["falun"], name="Falu-kalendern")
    feeds += feed_toml(f"http://127.0.0.1:{closed_port()}/gone.ics", ["falun"], name="Borta")
    settings = make_settings(
        tmp_path,
        feeds,
        extra="timeout = '1s'\nmax_bytes = 100000\n",
        allow=LOOPBACK,
        database=db_target,
    )
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        falun_keys = {k for k in await bot.pending() if "single-1" in k}
        assert len(falun_keys) == 3
        (gone,) = bot.texts("styrelse")
        assert gone.startswith("Kalenderflödet Borta går inte att läsa: servern går inte att nå")

        reasons = {
            "broken": "not a valid iCalendar file",
            "huge": "it is larger than the cap of 100000 bytes",
            "slow": "no complete answer within 1 s",
            "error": "the server answered HTTP 500",
        }
        for number, (mode, reason) in enumerate(reasons.items()):
            server.modes["/b.ics"] = mode
            # Mora's feed changes at the same time and is applied all the same.
            server.bodies["/a.ics"] = floating.replace(b"Medlemsm", f"M{number} ".encode())
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="plugins.calendar"):
                await bot.refresh()
            assert f"calendar feed Falu-kalendern failed: {reason}" in caplog.text
            assert "its last good data is kept" in caplog.text
            assert {k for k in await bot.pending() if "single-1" in k} == falun_keys
            await bot.say("mora", "bo", "!event list --days 30")
            assert f"M{number} öte" in bot.texts("mora")[-1]
            await bot.say("falun", "bo", "!händelse lista")
            assert "Styrelsemöte" in bot.texts("falun")[-1]

        told = bot.texts("styrelse")
        assert len(told) == 2  # Borta once, Falu-kalendern once, over five failing refreshes
        assert told[1].startswith(
            "Kalenderflödet Falu-kalendern går inte att läsa: det är ingen giltig iCalendar-fil."
        )
        assert "this is not a calendar" not in told[1]  # never the feed's own bytes
        server.modes["/b.ics"] = "ok"
        await bot.refresh()
        await bot.refresh()
        assert bot.texts("styrelse")[2:] == ["Kalenderflödet Falu-kalendern fungerar igen."]
    finally:
        await bot.stop()


async def test_a_feed_on_loopback_is_refused_without_the_allow(
    tmp_path: Path, server: CalendarServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.bodies["/a.ics"] = (FIXTURES / "single.ics").read_bytes()
    feeds = feed_toml(f"{server.base}/a.ics", ["falun"], name="Intern")
    feeds += feed_toml(f"http://localhost:{closed_port()}/b.ics", ["mora"], name="Lokal")
    settings = make_settings(tmp_path, feeds)
    with caplog.at_level(logging.WARNING, logger="plugins.calendar"):
        bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert server.seen == []  # refused before any connection
        assert await bot.pending() == {}
        assert "calendar feed Intern failed: the address is loopback and not allowed" in (
            caplog.text
        )
        assert sorted(bot.texts("styrelse")) == [
            "Kalenderflödet Intern går inte att läsa: adressen leder till ett internt nät"
            " som boten inte får hämta från. Jag behåller det jag hade och säger till när det"
            " fungerar igen.",
            "Kalenderflödet Lokal går inte att läsa: adressen leder till ett internt nät"
            " som boten inte får hämta från. Jag behåller det jag hade och säger till när det"
            " fungerar igen.",
        ]
    finally:
        await bot.stop()


async def test_local_files_are_capped_and_compared_by_size_and_time(tmp_path: Path) -> None:
    huge = tmp_path / "huge.ics"
    event = (FIXTURES / "single.ics").read_text().split("BEGIN:VEVENT", 1)[1]
    huge.write_text(
        "BEGIN:VCALENDAR\nVERSION:2.0\n" + ("BEGIN:VEVENT" + event) * 2000, encoding="utf-8"
    )
    fetcher = Fetcher()
    try:
        with pytest.raises(FeedError, match="more than the cap of 100000"):
            await fetch(FeedSettings(url=str(huge)), fetcher, None, max_bytes=100_000, timeout=5)
        small = FeedSettings(url=str(FIXTURES / "single.ics"))
        first = await fetch(small, fetcher, None, max_bytes=100_000, timeout=5)
        assert first.body == (FIXTURES / "single.ics").read_bytes() and first.etag
        since = Conditional(first.etag, first.last_modified, first.fingerprint)
        again = await fetch(small, fetcher, since, max_bytes=100_000, timeout=5)
        assert again.body is None and again.fingerprint == first.fingerprint
        with pytest.raises(FeedError, match="cannot read the file") as missing:
            await fetch(
                FeedSettings(url=str(tmp_path / "missing.ics")),
                fetcher,
                None,
                max_bytes=100_000,
                timeout=5,
            )
        assert missing.value.reason_key == "fetching.file_unreadable"
    finally:
        await fetcher.close()
