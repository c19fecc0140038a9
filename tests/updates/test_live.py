"""Live edits: an entry changed at its source edits the copies already posted, on the
real Synapse (an `m.replace` of the event) and on the Discord stand-in (a PATCH of the
message), rather than posting again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.adapters.discord import DiscordAdapter
from bot.app import App
from bot.core.clock import FakeClock, SystemClock
from bot.scheduling import ManualWaker
from plugins.updates import UpdatesPlugin
from tests.discord.botrun import World, discord_factory
from tests.discord.botrun import config_text as discord_config
from tests.matrix.botrun import config_text, running_app
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot
from tests.support import settings_from
from tests.updates.support import Item, feed_toml, rss

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
OLD = Item("Gammal", "tag:r,2026:1", "https://region.example/1", "", START - timedelta(days=1))
NEW = Item("Motion om tåg", "tag:r,2026:2", "https://region.example/2", "<p>Första.</p>", START)
FIXED = Item("Motion om tåg och buss", NEW.guid, NEW.link, "<p>Rättad.</p>", START)
UPDATES = '\n[updates]\nrefresh = "1d"\nschedule = "0 8 1 1 *"\n'


def plugin_of(app: App) -> UpdatesPlugin:
    return next(p for p in app.plugins if isinstance(p, UpdatesPlugin))


async def first_fetched(app: App) -> None:
    """Until the fetch the bot makes when ready is done (the feed is known then)."""
    for _ in range(1000):
        if app.plugins and all(f.primed for f in await plugin_of(app).store.feeds()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the feeds were not fetched at start")


async def refresh(app: App) -> None:
    plugin = plugin_of(app)
    for feed in await plugin.store.feeds():
        await plugin.store.set_feed(feed.key, next_fetch=None)
    await plugin.refresh_due()


async def test_a_changed_entry_edits_its_copies_on_matrix(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("newsbot")
    alice = await users("alice")
    first = await alice.create_room(invite=[bot.user_id])
    second = await alice.create_room(invite=[bot.user_id])
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss([OLD]))
    text = config_text(synapse, bot, tmp_path, [first, second])
    text += UPDATES + feed_toml(feed, ["falun"], mode="instant")
    settings = settings_from(tmp_path, text, [UpdatesPlugin])
    app = App(settings, [UpdatesPlugin], clock=FakeClock(START), waker=ManualWaker())
    async with running_app(app):
        for room in (first, second):
            await alice.wait_joined(room, bot.user_id)
        await first_fetched(app)
        feed.write_bytes(rss([NEW, OLD]))
        await refresh(app)
        posted = {}
        for room in (first, second):
            (event,) = await alice.wait_for(from_bot(bot.user_id, room))
            assert event["content"]["body"].startswith("📰 Motion om tåg")
            assert (
                '<a href="https://region.example/2">Motion om tåg</a>'
                in (event["content"]["formatted_body"])
            )
            assert event["content"]["m.mentions"] == {}
            posted[room] = event["event_id"]
        feed.write_bytes(rss([FIXED, OLD]))
        await refresh(app)
        for room in (first, second):
            original, edit = await alice.wait_for(from_bot(bot.user_id, room), count=2)
            assert original["event_id"] == posted[room]
            relation = edit["content"]["m.relates_to"]
            assert relation == {"rel_type": "m.replace", "event_id": posted[room]}
            new = edit["content"]["m.new_content"]
            assert new["body"].startswith("📰 Motion om tåg och buss")
            assert "Rättad." in new["body"]
        await refresh(app)  # unchanged now: nothing more
        await asyncio.sleep(0.5)
        for room in (first, second):
            assert len(alice.found(from_bot(bot.user_id, room))) == 2


async def test_a_changed_entry_edits_its_copies_on_discord(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun, mora, _ = world.channels
    feed = tmp_path / "news.rss"
    feed.write_bytes(rss([OLD]))
    text = discord_config(world, tmp_path) + UPDATES + feed_toml(feed, ["*"], mode="instant")
    settings = settings_from(tmp_path, text, [UpdatesPlugin])
    built: list[DiscordAdapter] = []
    app = App(
        settings,
        [UpdatesPlugin],
        # The platform's clock is the real one, the scheduler's the test's.
        adapter_factories={"discord": discord_factory(settings, built, clock=SystemClock())},
        clock=FakeClock(START),
        waker=ManualWaker(),
        delivery_backoff=0.1,
    )
    task = asyncio.create_task(app.run())
    try:
        await s.wait_for(
            lambda: bool(built) and built[0]._ready.is_set(), 15, "the Discord adapter"
        )
        await first_fetched(app)

        def mine(channel_id: int) -> list[str]:
            return [
                str(m.data["content"])
                for m in s.channel_messages(channel_id)
                if m.author_id == s.bot.id
            ]

        feed.write_bytes(rss([NEW, OLD]))
        await refresh(app)
        await s.wait_for(lambda: mine(falun.id) and mine(mora.id), what="the posts")
        for channel in (falun, mora):
            (content,) = mine(channel.id)
            assert content.startswith("📰 [Motion om tåg](https://region.example/2)")
        feed.write_bytes(rss([FIXED, OLD]))
        await refresh(app)
        await s.wait_for(
            lambda: all("buss" in "".join(mine(c.id)) for c in (falun, mora)), what="the edits"
        )
        for channel in (falun, mora):
            (content,) = mine(channel.id)  # edited in place: still one message
            assert content.startswith("📰 [Motion om tåg och buss](https://region.example/2)")
            assert "Rättad." in content
        patches = [r for r in s.requests if r.method == "PATCH" and "/messages/" in r.path]
        assert len(patches) == 2
        assert all(r.json["allowed_mentions"]["parse"] == [] for r in patches)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 20)
