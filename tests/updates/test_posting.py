"""Posting from a local feed file: nothing old on the first fetch, new entries in every
room of the feed's associations (instant) or in one digest per room, edits of what
changed, filters, and the caps that keep a burst from flooding the rooms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.clock import FakeClock
from tests.engines import Target
from tests.updates.support import Bot, Item, feed_toml, make_settings, rss

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 10.00 in Stockholm


def items(*numbers: int, prefix: str = "Nyhet") -> list[Item]:
    return [
        Item(
            title=f"{prefix} {n}",
            guid=f"g{n}",
            link=f"https://region.example/n/{n}",
            summary=f"<p>Text om nyhet {n}.</p>",
            published=START - timedelta(hours=n),
        )
        for n in numbers
    ]


async def test_instant_posts_only_what_is_new_in_every_room(
    tmp_path: Path, db_target: Target
) -> None:
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss(items(3, 2, 1)))
    settings = make_settings(
        tmp_path, feed_toml(feed, ["falun"], mode="instant"), database=db_target
    )
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert bot.posts() == []  # the first fetch posts nothing old
        feed.write_bytes(rss(items(5, 4, 3, 2, 1)))
        await bot.refresh()
        falun = bot.texts("falun")
        assert len(falun) == 2 and falun == bot.texts("falun2")
        # Oldest first, so the room reads in order; the title links to the entry.
        assert falun[0].startswith("📰 [Nyhet 4](https://region.example/n/4)")
        assert "Text om nyhet 5." in falun[1]
        assert bot.texts("mora") == []
        await bot.refresh()  # nothing new: nothing posted
        assert len(bot.posts()) == 4
    finally:
        await bot.stop()


async def test_digest_per_room_at_the_schedule_in_each_rooms_language(
    tmp_path: Path, db_target: Target
) -> None:
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss(items(1)))
    settings = make_settings(
        tmp_path,
        feed_toml(feed, ["*"], name="Regionen"),
        extra="digest_max = 2",
        database=db_target,
    )
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    try:
        feed.write_bytes(rss(items(4, 3, 2, 1)))
        await bot.refresh()
        assert bot.posts() == []  # waiting for the digest
        await bot.advance_to(datetime(2026, 11, 24, 6, 59, tzinfo=UTC))
        assert bot.posts() == []
        await bot.advance_to(datetime(2026, 11, 24, 7, 1, tzinfo=UTC))  # 08.00 in Stockholm
        falun = bot.texts("falun")
        assert falun == bot.texts("falun2")
        assert falun == [
            "📰 Nyheter för Falun, tisdag 24 november\n"
            "• [Nyhet 2](https://region.example/n/2) — Regionen, måndag 23 november\n"
            "  Text om nyhet 2.\n"
            "• [Nyhet 3](https://region.example/n/3) — Regionen, måndag 23 november\n"
            "  Text om nyhet 3.\n"
            "… och 1 till. Skriv flöde lista för att se flödena."
        ]
        assert bot.texts("mora")[0].startswith("📰 News for Mora, Tuesday 24 November\n")
        # Nothing new by the next morning: no digest at all.
        await bot.advance_to(datetime(2026, 11, 25, 9, tzinfo=UTC))
        assert len(bot.posts()) == 3
        # An entry changed after the digest: the digest is edited where it was posted.
        changed = items(4, 3, 2, 1)
        changed[2] = Item(
            "Nyhet 2 (rättad)", "g2", changed[2].link, "<p>Ny.</p>", changed[2].published
        )
        feed.write_bytes(rss(changed))
        await bot.refresh()
        edited = [p for p in bot.posts() if p.text.startswith("(ändrat)")]
        assert {p.room for p in edited} == {"falun", "falun2", "mora"}
        assert "• [Nyhet 2 (rättad)](https://region.example/n/2)" in edited[0].text
        assert "… och 1 till" in edited[0].text
    finally:
        await bot.stop()


async def test_a_digest_due_while_down_is_late_or_reported(
    tmp_path: Path, db_target: Target
) -> None:
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss(items(1)))
    settings = make_settings(
        tmp_path, feed_toml(feed, ["mora"]), schedule="0 8 * * *", database=db_target
    )
    clock = FakeClock(START)
    bot = await Bot(settings, clock).start()
    feed.write_bytes(rss(items(2, 1)))
    await bot.refresh()
    await bot.stop()
    clock.set(datetime(2026, 11, 24, 7, 30, tzinfo=UTC))  # half an hour past 08.00
    await bot.start()
    try:
        (digest,) = bot.texts("mora")
        assert digest.startswith("(late) 📰 News for Mora, Tuesday 24 November")
        assert "Nyhet 2" in digest
    finally:
        await bot.stop()
    feed.write_bytes(rss(items(3, 2, 1)))
    clock.set(datetime(2026, 11, 24, 20, tzinfo=UTC))
    await bot.start()
    await bot.refresh()
    await bot.stop()
    clock.set(datetime(2026, 11, 25, 10, tzinfo=UTC))  # three hours past: beyond the grace
    await bot.start()
    try:
        assert "nyhetssammandraget" in bot.texts("styrelse")[-1]
        assert len(bot.texts("mora")) == 1  # not posted now...
        await bot.advance_to(datetime(2026, 11, 26, 7, 1, tzinfo=UTC))
        assert "Nyhet 3" in bot.texts("mora")[-1]  # ...but in the next digest
    finally:
        await bot.stop()


async def test_a_new_feed_can_post_its_latest_and_a_burst_is_capped(
    tmp_path: Path, db_target: Target
) -> None:
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss(items(3, 2, 1)))
    settings = make_settings(
        tmp_path,
        feed_toml(feed, ["mora"], mode="instant"),
        extra="initial_posts = 2\nmax_new = 3",
        database=db_target,
    )
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        assert [t.split("\n")[0] for t in bot.texts("mora")] == [
            "📰 [Nyhet 2](https://region.example/n/2)",
            "📰 [Nyhet 3](https://region.example/n/3)",
        ]
        # The feed renumbers everything: twenty "new" entries, three posted.
        feed.write_bytes(rss(items(*range(30, 10, -1), prefix="Omdöpt")))
        await bot.refresh()
        assert [t.split("\n")[0] for t in bot.texts("mora")[2:]] == [
            "📰 [Omdöpt 28](https://region.example/n/28)",
            "📰 [Omdöpt 29](https://region.example/n/29)",
            "📰 [Omdöpt 30](https://region.example/n/30)",
        ]
        await bot.refresh()
        assert len(bot.texts("mora")) == 5  # the rest are known now, never posted
    finally:
        await bot.stop()


async def test_a_feed_out_of_the_settings_is_forgotten(tmp_path: Path, db_target: Target) -> None:
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss(items(2, 1)))
    bot = await Bot(
        make_settings(tmp_path, feed_toml(feed, mode="instant"), database=db_target),
        FakeClock(START),
    ).start()
    assert len(bot.posts()) == 0
    await bot.stop()
    bot.settings = make_settings(tmp_path, database=db_target)
    await bot.start()
    try:
        assert await bot.plugin.store.feeds() == []
        count = await bot.running.db.fetchval("SELECT COUNT(*) FROM updates_entries")
        assert count == 0
    finally:
        await bot.stop()
    # Back again, it is a new feed: nothing old is posted.
    bot.settings = make_settings(tmp_path, feed_toml(feed, mode="instant"), database=db_target)
    await bot.start()
    try:
        assert bot.posts() == []
    finally:
        await bot.stop()


async def test_entries_without_guid_or_link_that_change_every_fetch_stay_bounded(
    tmp_path: Path,
    db_target: Target,
) -> None:
    feed = tmp_path / "news.rss"

    def counter(n: int) -> bytes:
        # No guid, no link: known by their words, which change every time.
        return rss([Item(f"Besökare just nu: {n * 10 + i}") for i in range(3)])

    feed.write_bytes(counter(0))
    settings = make_settings(
        tmp_path,
        feed_toml(feed, ["mora"], mode="instant"),
        extra="max_entries = 3\nmax_new = 3",
        database=db_target,
    )
    bot = await Bot(settings, FakeClock(START)).start()
    try:
        for n in range(1, 8):
            bot.clock.advance(timedelta(minutes=15))
            feed.write_bytes(counter(n))
            await bot.refresh()
        count = await bot.running.db.fetchval("SELECT COUNT(*) FROM updates_entries")
        assert count == 6  # twice what one fetch may read, never more
        assert len(bot.texts("mora")) == 7 * 3  # each fetch's are new: posted, capped
    finally:
        await bot.stop()
