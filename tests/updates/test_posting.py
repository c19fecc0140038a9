"""Posting from a local feed file: nothing old on the first fetch, new entries in every
room of the feed's associations (instant) or in one digest per room, edits of what
changed, filters, and the caps that keep a burst from flooding the rooms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.clock import FakeClock
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


async def test_instant_posts_only_what_is_new_in_every_room(tmp_path: Path) -> None:
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss(items(3, 2, 1)))
    settings = make_settings(tmp_path, feed_toml(feed, ["falun"], mode="instant"))
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
