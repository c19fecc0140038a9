"""Posts through the whole delivery path: webhooks with attribution, splitting, 429s,
polls and buttons, edits, deletions, reactions, attachments."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.adapters.discord.errors import AuthBrake
from bot.adapters.discord.webhooks import RECORD_TTL, Webhooks
from bot.core.events import ButtonPressed, PollVoteReceived
from bot.core.messages import Attachment, Attribution, Button, OutgoingMessage, Poll, PollAnswer
from bot.core.refs import RoomRef
from bot.delivery import Target
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.engines import open_database
from bot.storage.state import AdapterState
from bot.storage.write_behind import WriteBehind
from tests.discord.botrun import Probe, Running, World, running_bot, settings_for
from tests.discord.standin import StandIn

POST = "POST /channels/{channel_id}/messages"
EXECUTE = "POST /webhooks/{webhook_id}/{webhook_token}"
CREATE_HOOK = "POST /channels/{channel_id}/webhooks"


async def _sent(run: Running, s: StandIn, key: str) -> str:
    async def status() -> str | None:
        return await run.app.delivery.status(key)

    deadline = time.monotonic() + 10
    while (value := await status()) == "pending":
        assert time.monotonic() < deadline, f"{key} still pending"
        await s.wait_for(lambda: True)
        await run.app.delivery.wait_idle(0.05)
    assert value is not None
    return value


async def test_attributed_posts_through_one_reused_webhook(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    settings = settings_for(world, tmp_path)
    text = f"Hej <@{world.anna.id}> och @everyone"
    who = Attribution("Anna på Discord-servern", "Falun", "https://example.org/a.png")
    async with running_bot(settings) as run:
        for n in range(2):
            await run.app.delivery.send(
                f"bridge:{n}", room, OutgoingMessage(text=text, attribution=who)
            )
            assert await _sent(run, s, f"bridge:{n}") == "sent"
        await run.adapter.inbound.drain()
    async with running_bot(settings) as run:
        await run.app.delivery.send("bridge:2", room, OutgoingMessage(text=text, attribution=who))
        assert await _sent(run, s, "bridge:2") == "sent"
        await run.adapter.inbound.drain()
    assert len(s.recorded(CREATE_HOOK)) == 1  # created once, reused after a restart
    executes = s.recorded(EXECUTE)
    assert len(executes) == 3 and all(e.query == {"wait": "true"} for e in executes)
    body = executes[0].json
    assert body["username"] == "Anna på D\u200biscord-servern (Falun)"
    assert body["avatar_url"] == "https://example.org/a.png"
    assert body["allowed_mentions"] == {"parse": []}
    posted = [m for m in s.channel_messages(falun.id) if m.webhook_id]
    assert len(posted) == 3 and all(m.data["mentions"] == [] for m in posted)
    # The bot's own webhook posts are not handed to the plugins.
    assert not [e for e in Probe.events if getattr(e, "text", None) == text]


async def test_webhook_post_stored_before_a_500_is_not_doubled(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    async with running_bot(settings_for(world, tmp_path)) as run:
        s.inject("POST /webhooks/", status=500, after_store=True)
        message = OutgoingMessage(text="en gång", attribution=Attribution("Bertil", "Mora"))
        await run.app.delivery.send("bridge:once", room, message)
        assert await _sent(run, s, "bridge:once") == "sent"
        assert [r.status for r in s.recorded(EXECUTE)] == [500]  # looked, did not resend
        assert len([m for m in s.channel_messages(falun.id) if m.webhook_id]) == 1
        assert run.adapter.webhooks.recovered == 1


async def test_webhook_post_stored_before_a_500_is_found_past_a_busy_page(
    world: World, tmp_path: Path
) -> None:
    # More than a page of others' messages since the attempt's marker: the retry reads
    # on until it finds the post, rather than taking it for lost and posting it twice.
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    async with running_bot(settings_for(world, tmp_path)) as run:
        for n in range(250):
            await s.user_message(falun, world.anna, f"medlem {n}", dispatch=False)
        s.inject("POST /webhooks/", status=500, after_store=True)
        message = OutgoingMessage(text="en gång", attribution=Attribution("Bertil", "Mora"))
        await run.app.delivery.send("bridge:busy", room, message)
        assert await _sent(run, s, "bridge:busy") == "sent"
        assert [r.status for r in s.recorded(EXECUTE)] == [500]
        assert len([m for m in s.channel_messages(falun.id) if m.webhook_id]) == 1
        assert run.adapter.webhooks.recovered == 1
        assert len(s.recorded("GET /channels/{channel_id}/messages")) >= 3  # paged on


async def test_webhook_post_answered_but_not_recorded_is_not_doubled_after_a_restart(
    world: World, tmp_path: Path
) -> None:
    # Killed after Discord answered and before the outbox recorded the id, the next
    # process sends the row again with the same token: the post's record answers for it.
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    message = OutgoingMessage(text="en gång", attribution=Attribution("Bertil", "Mora"))
    settings = settings_for(world, tmp_path)
    async with running_bot(settings) as run:
        first = await run.adapter.send(room, message, "a1b2c3")
    async with running_bot(settings) as run:
        again = await run.adapter.send(room, message, "a1b2c3")
        assert await run.adapter.webhooks.prune() == 0  # a fresh record stays
    assert again == first
    assert len(s.recorded(EXECUTE)) == 1
    assert len([m for m in s.channel_messages(falun.id) if m.webhook_id]) == 1


async def test_webhook_post_whose_records_behind_died_with_the_process_is_not_doubled(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The post's record, the channel's last post and the delivery's outcome are written
    # behind, together: a process killed after Discord answered and before they reached
    # the database (some milliseconds) leaves only the attempt's marker, written before
    # the send. The next process finds the post after the marker instead of posting again.
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    message = OutgoingMessage(text="bara en gång", attribution=Attribution("Bertil", "Mora"))
    settings = settings_for(world, tmp_path)
    with monkeypatch.context() as died:
        # Nothing queued behind reaches the database in this run, not even at its stop.
        died.setattr(WriteBehind, "add", lambda self, statements, done=None: None)
        async with running_bot(settings) as run:
            await run.app.delivery.send("bridge:kill", room, message)
            await s.wait_for(lambda: len(s.recorded(EXECUTE)) == 1, what="the post")
            await run.app.delivery.wait_idle(5)
    async with running_bot(settings) as run:
        assert await _sent(run, s, "bridge:kill") == "sent"
        assert run.adapter.webhooks.recovered == 1
    assert len(s.recorded(EXECUTE)) == 1
    assert [m.data["content"] for m in s.channel_messages(falun.id) if m.webhook_id] == [
        "bara en gång"
    ]


async def test_webhook_post_records_are_forgotten_after_their_time(tmp_path: Path) -> None:
    now = discord.utils.utcnow()
    old = discord.utils.time_snowflake(now - RECORD_TTL - timedelta(hours=1))
    fresh = discord.utils.time_snowflake(now - RECORD_TTL + timedelta(hours=1))
    db = await Database.open(tmp_path / "records.db")
    try:
        await core_migrations.upgrade(db)
        state = AdapterState(db, "discord")
        await state.set("whsend:old:0", f"sent:{old}")
        await state.set("whsend:old:1", f"try:{old}")
        await state.set("whsend:fresh:0", f"sent:{fresh}")
        await state.set("webhook:5", "5:t")
        assert await Webhooks(state, AuthBrake(), "Samverkan").prune() == 2
        assert await state.with_prefix("whsend:") == {"whsend:fresh:0": f"sent:{fresh}"}
        assert await state.get("webhook:5") == "5:t"
    finally:
        await db.close()


async def test_long_reply_split_and_429_honoured(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    async with running_bot(settings_for(world, tmp_path)):
        s.inject(POST, retry_after=0.3)
        started = time.monotonic()
        inter = await s.slash_command(falun, world.bertil, "long")
        await s.wait_for(lambda: inter.acknowledged, what="an answer")
        await s.wait_for(lambda: s.recorded(EXECUTE), what="the second part")
        callback = s.recorded("POST /interactions/{interaction_id}/{interaction_token}/callback")
        first = callback[0].json["data"]["content"]
        second = s.recorded(EXECUTE)[0].json["content"]
        assert len(first) <= 2000 and len(second) <= 2000
        assert len(first) + len(second) >= 2490
        assert first.endswith(".") and second.startswith("Ett")  # cut between sentences

        # A channel post meets the injected 429 and is retried after retry_after.
        await s.user_message(falun, world.bertil, "ping 429")
        await s.wait_for(lambda: [r for r in s.recorded(POST) if r.status == 200], what="a post")
        statuses = [r.status for r in s.recorded(POST)]
        assert statuses == [429, 200]
        assert time.monotonic() - started >= 0.3
        posted = [m for m in s.channel_messages(falun.id) if m.data["content"] == "pong 429"]
        assert len(posted) == 1


async def test_global_429_holds_every_route(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun, mora, _ = world.channels
    async with running_bot(settings_for(world, tmp_path)) as run:
        s.inject(POST, retry_after=0.3, global_=True)
        started = time.monotonic()
        await run.app.delivery.send("a", RoomRef("discord", str(falun.id)), OutgoingMessage("a"))
        await run.app.delivery.send("b", RoomRef("discord", str(mora.id)), OutgoingMessage("b"))
        assert await _sent(run, s, "a") == "sent" and await _sent(run, s, "b") == "sent"
        assert time.monotonic() - started >= 0.3
        assert [r.status for r in s.recorded(POST)].count(200) == 2


async def test_polls_native_and_buttons(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    Probe.events.clear()
    answers = (PollAnswer("a", "Ja"), PollAnswer("b", "Nej"))
    async with running_bot(settings_for(world, tmp_path)) as run:
        native = OutgoingMessage(text="Omröstning", poll=Poll("Bussar?", answers, hours=48))
        secret = OutgoingMessage(text="Hemlig", poll=Poll("Budget?", answers, secret=True))
        await run.app.delivery.send("poll:1", room, native)
        await run.app.delivery.send("poll:2", room, secret)
        assert await _sent(run, s, "poll:1") == "sent" and await _sent(run, s, "poll:2") == "sent"
        native_body, button_body = (r.json for r in s.recorded(POST))
        assert native_body["poll"]["duration"] == 48
        assert [a["poll_media"]["text"] for a in native_body["poll"]["answers"]] == ["Ja", "Nej"]
        assert "poll" not in button_body
        labels = [c["label"] for c in button_body["components"][0]["components"]]
        assert labels == ["1. Ja", "2. Nej"]

        native_msg, button_msg = (
            m for m in s.channel_messages(falun.id) if m.author_id == s.bot.id
        )
        await s.poll_vote(native_msg, world.bertil, 2)
        await s.click(button_msg, world.anna, "vote:a")

        def votes() -> list[PollVoteReceived]:
            return [e for e in Probe.events if isinstance(e, PollVoteReceived)]

        await s.wait_for(lambda: len(votes()) == 2, what="two votes")
        by_poll = {v.poll.id: v.answers for v in votes()}
        assert by_poll == {str(native_msg.id): ("b",), str(button_msg.id): ("a",)}

        # Closing: the native poll expires, the buttons are disabled, results are posted.
        for key in ("poll:1", "poll:2"):
            await run.app.delivery.close_poll(
                f"close:{key}", Target(key=key), room, OutgoingMessage("Resultat")
            )
            assert await _sent(run, s, f"close:{key}") == "sent"
        assert native_msg.data["poll"]["results"]["is_finalized"] is True
        assert all(c["disabled"] for c in button_msg.data["components"][0]["components"])
        results = [m for m in s.channel_messages(falun.id) if m.data["content"] == "Resultat"]
        assert len(results) == 2


async def test_a_multiple_choice_vote_by_buttons_outlives_a_restart(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    settings = settings_for(world, tmp_path)
    answers = (PollAnswer("a", "Buss"), PollAnswer("b", "Tåg"), PollAnswer("c", "Cykel"))
    # Two of three: no native poll can say so, and an open one keeps each choice here.
    poll = Poll("Hur reser vi?", answers, max_selections=2)
    Probe.events.clear()

    def votes() -> list[tuple[str, ...]]:
        return [e.answers for e in Probe.events if isinstance(e, PollVoteReceived)]

    async with running_bot(settings) as run:
        await run.app.delivery.send("poll:multi", room, OutgoingMessage("Resan", poll=poll))
        assert await _sent(run, s, "poll:multi") == "sent"
        [msg] = [m for m in s.channel_messages(falun.id) if m.author_id == s.bot.id]
        await s.click(msg, world.anna, "vote:a")
        await s.wait_for(lambda: len(votes()) == 1, what="the first click")
    async with running_bot(settings) as run:
        # After the restart the second click adds to the first rather than replacing it.
        await s.click(msg, world.anna, "vote:b")
        await s.wait_for(lambda: len(votes()) == 2, what="the second click")
        await s.click(msg, world.anna, "vote:c")  # a third is one too many
        await s.wait_for(lambda: len(votes()) == 3, what="the third click")
        await s.click(msg, world.anna, "vote:a")  # a click again takes it back
        await s.wait_for(lambda: len(votes()) == 4, what="four clicks")
        await run.app.delivery.close_poll(
            "close:multi", Target(key="poll:multi"), room, OutgoingMessage("")
        )
        assert await _sent(run, s, "close:multi") == "sent"
    assert votes() == [("a",), ("a", "b"), ("a", "b"), ("b",)]
    # Closed: the choices are not kept.
    db_state = [k for k in await _state_keys(settings) if k.startswith("choice:")]
    assert db_state == []


async def _state_keys(settings: Any) -> list[str]:
    db = await open_database(settings.bot.database)
    try:
        rows = await db.fetchall("SELECT key FROM adapter_state WHERE platform = 'discord'")
    finally:
        await db.close()
    return [str(r[0]) for r in rows]


async def test_buttons_edits_deletes_reactions_attachments(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path)) as run:
        files = (
            Attachment("karta.png", "image/png", data=b"\x89PNG" + b"0" * 100),
            Attachment("stor.pdf", url="https://example.org/stor.pdf", size=50_000_000),
        )
        message = OutgoingMessage(
            text="Se här", attachments=files, buttons=(Button("rsvp", "Jag kommer"),)
        )
        await run.app.delivery.send("post", room, message)
        assert await _sent(run, s, "post") == "sent"
        post = s.recorded(POST)[-1]
        assert post.files == ["karta.png"]
        assert post.json["content"] == "Se här\n📎 stor.pdf: https://example.org/stor.pdf"
        [msg] = [m for m in s.channel_messages(falun.id) if m.author_id == s.bot.id]
        await s.click(msg, world.bertil, "rsvp")
        pressed = await s.wait_for(
            lambda: [e for e in Probe.events if isinstance(e, ButtonPressed)]
        )
        assert pressed[0].custom_id == "rsvp" and pressed[0].message.id == str(msg.id)

        await run.app.delivery.edit("edit", Target(key="post"), room, OutgoingMessage("Ändrad"))
        await run.app.delivery.react("react", Target(key="post"), room, "👍")
        await run.app.delivery.delete("delete", Target(key="post"), room)
        for key in ("edit", "react", "delete"):
            assert await _sent(run, s, key) == "sent"
        assert msg.data["content"] == "Ändrad" and msg.deleted
        assert msg.data["reactions"][0]["emoji"]["name"] == "👍"
        # A deletion retried after it went through is done, not an error.
        await run.app.delivery.delete("delete-again", Target(key="post"), room)
        assert await _sent(run, s, "delete-again") == "sent"
