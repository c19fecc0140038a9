"""Feeds over HTTP from a local server: RSS, Atom and JSON Feed with ETags and
Last-Modified, entries that change between fetches; failures backed off, told once per
streak and their recovery once; 410 Gone and a day of failures pause a feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.clock import FakeClock
from tests.engines import Target
from tests.test_http_service import scrape
from tests.updates.server import NewsServer, news_server
from tests.updates.support import Bot, Item, atom, feed_toml, json_feed, make_settings, rss

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def news(*numbers: int, prefix: str = "Nyhet") -> list[Item]:
    return [
        Item(
            title=f"{prefix} {n}",
            guid=f"tag:region.example,2026:{n}",
            link=f"https://region.example/n/{n}",
            summary=f"<p>Om {prefix.lower()} {n}.</p>",
            published=START - timedelta(hours=n),
        )
        for n in numbers
    ]


@pytest.fixture
async def server() -> AsyncIterator[NewsServer]:
    async with news_server() as running:
        yield running


async def test_three_formats_conditional_requests_and_changes(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    server.serve("/rss", rss(news(2, 1)), "application/rss+xml")
    server.serve("/atom", atom(news(2, 1, prefix="Beslut")), "application/atom+xml")
    # This server knows dates but no ETags: If-Modified-Since alone.
    server.serve(
        "/json", json_feed(news(2, 1, prefix="Motion")), "application/feed+json", etag=False
    )
    feeds = "".join(
        feed_toml(server.url(p), ["falun"], mode="instant", id=p[1:])
        for p in ("/rss", "/atom", "/json")
    )
    bot = await Bot(make_settings(tmp_path, feeds, database=db_target), FakeClock(START)).start()
    try:
        assert bot.posts() == []  # adding posts nothing old
        await bot.refresh()
        for path in ("/rss", "/atom", "/json"):
            assert server.statuses(path) == [200, 304]
        conditional = [a for a in server.asked if a.status == 304]
        assert {a.path for a in conditional if a.if_none_match} == {"/rss", "/atom"}
        assert all(a.if_modified_since for a in conditional)

        server.serve("/rss", rss(news(3, 2, 1)))
        server.serve("/atom", atom(news(4, 3, 2, 1, prefix="Beslut")), "application/atom+xml")
        server.serve(
            "/json", json_feed(news(3, 2, 1, prefix="Motion")), "application/feed+json", etag=False
        )
        await bot.refresh()
        falun = bot.texts("falun")
        # Feeds are fetched side by side; each feed's entries come oldest first.
        titles = [t.split("\n")[0] for t in falun]
        assert titles.index("📰 [Beslut 3](https://region.example/n/3)") < titles.index(
            "📰 [Beslut 4](https://region.example/n/4)"
        )
        assert sorted(titles) == [
            "📰 [Beslut 3](https://region.example/n/3)",
            "📰 [Beslut 4](https://region.example/n/4)",
            "📰 [Motion 3](https://region.example/n/3)",
            "📰 [Nyhet 3](https://region.example/n/3)",
        ]
        assert bot.texts("falun2") == falun and bot.texts("mora") == []

        # Nyhet 3 is corrected at the source: its copies are edited, nothing is posted.
        fixed = news(3, 2, 1)
        fixed[0] = Item("Nyhet 3 (rättad)", fixed[0].guid, fixed[0].link, "<p>Ny text.</p>")
        server.serve("/rss", rss(fixed))
        await bot.refresh()
        edits = [t for t in bot.texts() if t.startswith("(ändrat)")]
        assert len(edits) == 2 and all("Nyhet 3 (rättad)" in t and "Ny text." in t for t in edits)
        assert len(bot.posts()) == 2 * len(falun) + 2
        await bot.refresh()  # all unchanged now
        assert len(bot.posts()) == 2 * len(falun) + 2
        assert server.statuses("/rss")[-1] == 304
    finally:
        await bot.stop()


def notices(bot: Bot) -> list[str]:
    return bot.texts("styrelse")


async def test_a_failing_feed_is_told_once_backs_off_and_its_recovery_once(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    server.serve("/rss", rss(news(1)))
    settings = make_settings(
        tmp_path, feed_toml(server.url("/rss"), ["falun"], mode="instant"), database=db_target
    )
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    try:
        server.fail("/rss", 503)
        waits = []
        for _ in range(5):
            await bot.refresh()
            (feed,) = await bot.plugin.store.feeds()
            assert feed.next_fetch is not None
            waits.append(round(feed.next_fetch - clock.now().timestamp()))
        # Busy: tried again from the interval (15m), doubling, told after three failures.
        assert waits == [900, 1800, 3600, 7200, 14400]
        (told,) = notices(bot)
        assert told.startswith("⚠️ Nyhetsflödet Regionen (#1) går inte att läsa:")
        assert "servern är upptagen" in told and "SECRET" not in told and "<b>" not in told
        await bot.say("falun", "anna", "!flöde lista")
        listing = bot.texts("falun")[-1]
        assert "senaste fel" in listing and "servern är upptagen" in listing

        server.fail("/rss", 200)
        server.serve("/rss", rss(news(2, 1)))
        await bot.refresh()
        await bot.refresh()
        assert notices(bot) == [told, "✅ Nyhetsflödet Regionen (#1) fungerar igen."]
        assert len(bot.texts("falun")) == 2  # the list, and Nyhet 2
        (feed,) = await bot.plugin.store.feeds()
        assert (
            feed.failures == 0
            and feed.next_fetch == (clock.now() + timedelta(minutes=15)).timestamp()
        )

        # A refusal (404) is told at the first failure, and tried again less often.
        clock.advance(timedelta(minutes=15))
        server.fail("/rss", 404)
        await bot.refresh()
        assert notices(bot)[-1].startswith(
            "⚠️ Nyhetsflödet Regionen (#1) går inte att läsa: adressen finns inte"
        )
        (feed,) = await bot.plugin.store.feeds()
        assert feed.next_fetch == (clock.now() + timedelta(hours=1)).timestamp()
    finally:
        await bot.stop()


async def test_gone_pauses_the_feed_and_resume_starts_it_again(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    server.serve("/rss", rss(news(1)))
    settings = make_settings(
        tmp_path, feed_toml(server.url("/rss"), ["falun"], mode="instant"), database=db_target
    )
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        server.fail("/rss", 410)
        await bot.refresh()
        (told,) = notices(bot)
        assert "finns inte längre" in told and "flöde återuppta 1" in told
        asked = len(server.asked)
        await bot.refresh()
        await bot.advance_to(START + timedelta(hours=3))
        assert len(server.asked) == asked  # paused: not fetched
        await bot.say("falun", "anna", "!flöde lista")
        assert "pausat: finns inte längre (410)" in bot.texts("falun")[-1]

        server.fail("/rss", 200)
        server.serve("/rss", rss(news(2, 1)))
        await bot.say("falun", "anna", "!flöde återuppta 1")
        assert bot.texts("falun")[-2].startswith("📰 [Nyhet 2]")
        assert bot.texts("falun")[-1] == "Flöde #1 (Regionen) hämtas igen."
        assert len(notices(bot)) == 1  # the organiser restarted it: nothing more to tell
    finally:
        await bot.stop()


async def test_a_day_of_failures_pauses_the_feed_with_one_notice(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    server.serve("/rss", rss(news(1)))
    settings = make_settings(tmp_path, feed_toml(server.url("/rss"), ["falun"]), database=db_target)
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        server.fail("/rss", 500)
        await bot.advance_to(START + timedelta(days=2))  # every tick on time
        failed, paused = notices(bot)
        assert failed.startswith("⚠️") and "felkod 500" in failed
        assert paused.startswith("⏸️ Nyhetsflödet Regionen (#1) har inte gått att läsa sedan måndag")
        (feed,) = await bot.plugin.store.feeds()
        assert feed.paused == "failing"
        tries = len(server.asked)
        # 15m, 30m, 1h, 2h, 4h, then every 6h: a day is about nine tries, not 96.
        assert 8 <= tries <= 11
        await bot.advance_to(START + timedelta(days=3))
        assert len(server.asked) == tries
    finally:
        await bot.stop()


async def test_metrics_count_failing_paused_and_waiting(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    server.serve("/rss", rss(news(1)))
    server.serve("/gone", rss(news(1)))
    feeds = '[http]\nlisten = "127.0.0.1:0"\n' + "".join(
        feed_toml(server.url(p), ["falun"], id=p[1:]) for p in ("/rss", "/gone")
    )
    bot = await Bot(make_settings(tmp_path, feeds, database=db_target), FakeClock(START)).start()
    try:
        server.fail("/rss", 503)
        server.fail("/gone", 410)
        await bot.refresh()
        got = await scrape(bot.running)
        assert got[("samverkan_updates_feeds_failing", ())] == 2
        assert got[("samverkan_updates_feeds_paused", ())] == 1
        server.fail("/rss", 200)
        server.serve("/rss", rss(news(3, 2, 1)))
        await bot.refresh()
        got = await scrape(bot.running)
        assert got[("samverkan_updates_feeds_failing", ())] == 1  # the paused one
        assert got[("samverkan_updates_entries_waiting", ())] == 2
    finally:
        await bot.stop()


async def test_a_feed_answering_304_for_weeks_keeps_what_it_carries(
    tmp_path: Path, server: NewsServer, db_target: Target
) -> None:
    server.serve("/rss", rss(news(2, 1)))
    settings = make_settings(
        tmp_path, feed_toml(server.url("/rss"), ["mora"], mode="instant"), database=db_target
    )
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    try:
        for _ in range(5):  # 50 days of 304s, past the 30-day retention
            clock.advance(timedelta(days=10))
            await bot.refresh()
        assert server.statuses("/rss") == [200, 304, 304, 304, 304, 304]
        count = await bot.running.db.fetchval("SELECT COUNT(*) FROM updates_entries")
        assert count == 2
        server.serve("/rss", rss(news(3, 2, 1)))
        await bot.refresh()
        assert [t.split("\n")[0] for t in bot.texts("mora")] == [
            "📰 [Nyhet 3](https://region.example/n/3)"
        ]
        # Gone from the feed, an entry is forgotten after the retention.
        clock.advance(timedelta(minutes=15))
        server.serve("/rss", rss(news(3)))
        await bot.refresh()
        clock.advance(timedelta(days=31))
        await bot.refresh()
        count = await bot.running.db.fetchval("SELECT COUNT(*) FROM updates_entries")
        assert count == 1
    finally:
        await bot.stop()
