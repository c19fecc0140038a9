"""Threads through the adapter: their messages belong to the parent channel's room, with
the thread named; a thread started while the bot runs is read after a restart even when
nothing in it was handled before and it has been archived since; and threads archived
long ago are not read at every new session."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import discord

from bot.adapters.discord.inbound import Inbound
from bot.core.clock import FakeClock
from bot.core.events import ReactionAdded
from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.state import AdapterState
from tests.discord.botrun import Probe, World, messages_received, running_bot, settings_for


async def test_thread_messages_belong_to_the_parent_room_and_answers_stay_in_the_thread(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path)) as run:
        root = await s.user_message(falun, world.bertil, "Vilken dag passar?")
        thread = await s.start_thread(root, world.bertil, "Dag")
        said = await s.user_message(thread, world.bertil, "Tisdag!")
        await s.wait_for(lambda: len(messages_received()) == 2, what="both messages")
        await s.reaction(said, world.anna, "👍")
        await s.wait_for(
            lambda: any(isinstance(e, ReactionAdded) for e in Probe.events), what="a reaction"
        )
        event = messages_received()[1]
        # The bot answers the message in the thread: the answer goes into the thread.
        answer = await run.adapter.send(
            room, OutgoingMessage("Noterat", reply_to=event.ref), "tok-thread-answer"
        )
        await run.adapter.inbound.drain()
    assert event.room == room
    assert event.ref == MessageRef(room, f"{thread.id}/{said.id}")
    assert event.thread == MessageRef(room, str(root.id))
    reaction = next(e for e in Probe.events if isinstance(e, ReactionAdded))
    assert reaction.room == room and reaction.target == event.ref
    posted = s.channel_messages(thread.id)[-1]
    assert answer == MessageRef(room, f"{thread.id}/{posted.id}")
    assert posted.data["content"] == "Noterat"
    assert posted.data["message_reference"]["message_id"] == str(said.id)
    # Nothing of it in the channel itself.
    assert [m.data["content"] for m in s.channel_messages(falun.id)] == ["Vilken dag passar?"]


async def test_a_thread_started_live_is_read_after_a_restart(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    settings = settings_for(world, tmp_path)
    Probe.events.clear()
    async with running_bot(settings) as run:
        root = await s.user_message(falun, world.bertil, "Idéer till valstugan?")
        await s.wait_for(lambda: len(messages_received()) == 1)
        # Started while the bot runs, and then a later message in the channel: only the
        # thread's start, seen live, tells the bot to read the thread after a restart.
        thread = await s.start_thread(root, world.anna, "Valstugan")
        # Later by the millisecond clock of snowflakes than the thread's start.
        await asyncio.sleep(0.01)
        await s.user_message(falun, world.bertil, "Och affischer")
        await s.wait_for(lambda: len(messages_received()) == 2)
        await run.adapter.inbound.drain()
    await s.user_message(thread, world.anna, "Kaffe och broschyrer")
    # Archived since: the gateway no longer lists it, and discord.py does not know it.
    thread.archived = True
    async with running_bot(settings) as run:
        await s.wait_for(lambda: len(messages_received()) == 3, what="the thread's message")
        await run.adapter.inbound.drain()
    late = messages_received()[2]
    room = RoomRef("discord", str(falun.id))
    assert late.text == "Kaffe och broschyrer"
    assert late.room == room
    assert late.thread == MessageRef(room, str(root.id))
    assert late.ref.id.startswith(f"{thread.id}/")


async def test_only_threads_that_may_have_news_are_read_at_a_new_session(tmp_path: Path) -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    db = await Database.open(tmp_path / "inbound.db")
    await core_migrations.upgrade(db)
    state = AdapterState(db, "discord")
    asked: list[int] = []

    async def fetch_after(channel: int, after: int, limit: int) -> list[discord.Message]:
        asked.append(channel)
        return []

    parent = 1000
    old, recent, active = 2001, 2002, 2003
    for thread, age in ((old, 30), (recent, 2), (active, 30)):
        last = discord.utils.time_snowflake(now - timedelta(days=age))
        await state.set(f"last:{thread}", str(last))
    await state.set("threads", json.dumps({str(t): parent for t in (old, recent, active)}))
    await state.set("channels", json.dumps([parent, old, recent, active]))
    inbound = Inbound(state, FakeClock(now), is_own=lambda _: False, fetch_after=fetch_after)
    await inbound.load([parent])
    inbound.new_session()
    # The gateway lists the threads open now.
    await inbound.adopt_threads([(active, parent, now - timedelta(days=40))])
    inbound.catch_up_all()
    await inbound.drain()
    await inbound.stop()
    await db.close()
    # A thread archived a month ago had nothing new; one used two days ago may have had.
    assert sorted(asked) == [recent, active]
