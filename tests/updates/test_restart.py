"""SIGKILL between posting an entry to two rooms, and a restart: every room gets each
entry exactly once. The bot runs as a process against the Discord stand-in; it is
killed the moment the stand-in has stored its third post and before the answer reaches
it, so one post went out without the bot knowing, and others not at all."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.bridge.faults import BotProcess
from tests.discord.botrun import World
from tests.discord.standin import Recorded
from tests.updates.support import Item, feed_toml, rss

POST = "POST /channels/{channel_id}/messages"
NOW = datetime.now(UTC)


def config(world: World, tmp: Path, feed: Path) -> str:
    s = world.standin
    falun, mora, _ = world.channels
    return f"""
[bot]
language = "sv"
database = "{tmp / "bot.db"}"
plugins = ["plugins.updates"]

[discord]
token = "{s.token}"
guild_ids = [{world.guild_id}]
api_base_url = "{s.api_url}"
gateway_url = "{s.gateway_url}"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["discord:{falun.id}", "discord:{mora.id}"]

[updates]
refresh = "1m"
initial_posts = 5
""" + feed_toml(feed, ["falun"], mode="instant")


async def test_sigkill_between_two_rooms_and_restart_posts_each_entry_once(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun, mora, _ = world.channels
    feed = tmp_path / "news.rss"
    entries = [
        Item(
            f"Nyhet {n}",
            f"tag:r,2026:{n}",
            f"https://region.example/{n}",
            f"<p>Text {n}</p>",
            NOW - timedelta(hours=n),
        )
        for n in range(5, 0, -1)
    ]
    feed.write_bytes(rss(entries))
    path = tmp_path / "config.toml"
    path.write_text(config(world, tmp_path, feed), encoding="utf-8")
    proc = BotProcess(path, tmp_path)
    killed = asyncio.Event()
    stored = 0

    def on_post(rec: Recorded) -> None:
        nonlocal stored
        if rec.route == POST and rec.status == 200 and proc.runs == 1:
            stored += 1
            if stored == 3:
                proc.kill()  # before the answer reaches the bot
                killed.set()

    s.listeners.append(on_post)

    def copies(channel_id: int) -> list[str]:
        return [
            str(m.data["content"]).split("\n")[0]
            for m in s.channel_messages(channel_id)
            if m.author_id == s.bot.id
        ]

    proc.launch()
    try:
        await asyncio.wait_for(killed.wait(), 60)
        assert proc.process is not None
        await asyncio.to_thread(proc.process.wait, 10)
        at_kill = len(copies(falun.id)) + len(copies(mora.id))
        proc.launch()
        await proc.ready()
        await s.wait_for(
            lambda: len(copies(falun.id)) + len(copies(mora.id)) >= 10, 30, "every copy"
        )
        await asyncio.sleep(1.0)  # a doubled copy would have shown up by now
    finally:
        proc.stop()
    assert 3 <= at_kill < 10  # killed mid-way
    titles = [f"📰 [Nyhet {n}](https://region.example/{n})" for n in range(1, 6)]
    for channel in (falun, mora):
        got = copies(channel.id)
        assert Counter(got) == Counter(titles), (channel.name, got)
        assert got == titles  # and in order: oldest first
    # The run after the kill sent the third post again with the same nonce, and the
    # stand-in (as Discord does) answered with the message it had stored.
    sent = [r for r in s.recorded(POST) if r.status == 200]
    nonces = Counter(str(r.json.get("nonce")) for r in sent)
    assert len(nonces) == 10 and max(nonces.values()) >= 2
    assert "ready: adapters discord" in proc.log(2)
