"""Threads in the stand-in, seen by the unmodified discord.py client (and plain aiohttp
for the rejections): a thread is the starter message's id, a `discord.Thread` under its
text channel, reached by its parent's webhooks only with `thread=`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord.gateway import DiscordWebSocket

from tests.discord.botrun import World
from tests.discord.standin import StandIn

START_THREAD = "POST /channels/{channel_id}/messages/{message_id}/threads"
EXECUTE = "POST /webhooks/{webhook_id}/{webhook_token}"
EDIT_HOOK_MESSAGE = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"


class Client(discord.Client):
    """A plain discord.py client that keeps what it is handed."""

    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.message_content = True
        intents.guild_reactions = True
        super().__init__(intents=intents, guild_ready_timeout=0.05, chunk_guilds_at_startup=False)
        self.received: list[discord.Message] = []
        self.created: list[discord.Thread] = []
        self.reactions: list[discord.RawReactionActionEvent] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py sleeps 5 s before each re-identify: not in tests

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.created.append(thread)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.reactions.append(payload)


@contextlib.asynccontextmanager
async def connected(s: StandIn) -> AsyncIterator[Client]:
    # The `standin` fixture puts both process-wide URLs back afterwards.
    discord.http.Route.BASE = s.api_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(s.gateway_url)
    client = Client()
    await client.login(s.token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 10)
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, 10)


def _auth(s: StandIn) -> dict[str, str]:
    return {"Authorization": f"Bot {s.token}"}


async def test_thread_started_over_rest_is_a_discord_thread(world: World) -> None:
    s, falun, bertil = world.standin, world.channels[0], world.bertil
    async with connected(s) as client:
        parent = client.get_channel(falun.id)
        assert isinstance(parent, discord.TextChannel)
        starter = await parent.send("Möte på torsdag")
        thread = await starter.create_thread(name="Planering", auto_archive_duration=60)

        # The thread is the starter's id, under the text channel, as on Discord.
        assert isinstance(thread, discord.Thread)
        assert (thread.id, thread.parent_id, thread.name) == (starter.id, falun.id, "Planering")
        assert thread.auto_archive_duration == 60 and thread.owner_id == s.bot.id
        await s.wait_for(lambda: client.created, what="THREAD_CREATE")
        live = client.created[0]
        assert live.id == starter.id and client.get_channel(starter.id) is live
        assert [t.id for t in s.threads(falun.id)] == [starter.id]
        stored = s.messages[starter.id].data
        assert stored["flags"] & 32 and stored["thread"]["id"] == str(starter.id)
        fetched = await client.fetch_channel(starter.id)
        assert isinstance(fetched, discord.Thread) and fetched.parent_id == falun.id

        # A member's message and reply in it: the channel is the Thread.
        first = await s.user_message(s.channel(thread.id), bertil, "Jag tar med fika")
        await s.user_message(s.channel(thread.id), world.anna, "Bra!", reply_to=first.id)
        got = await s.wait_for(lambda: len(client.received) >= 3 and client.received)
        inside = [m for m in got if m.id != starter.id]
        assert all(isinstance(m.channel, discord.Thread) for m in inside)
        assert all(m.channel.id == thread.id for m in inside)
        assert inside[1].reference is not None and inside[1].reference.message_id == first.id
        assert isinstance(inside[0].channel, discord.Thread)
        assert inside[0].channel.parent_id == falun.id

        # The bot answers in the thread, edits, reacts, deletes: all on the thread's id.
        sent = await live.send("Tack")
        assert s.messages[sent.id].channel_id == thread.id
        assert (s.channel(thread.id).message_count, s.channel(thread.id).last_message_id) == (
            3,
            sent.id,
        )
        assert s.messages[starter.id].data["thread"]["message_count"] == 3
        later = [m.content async for m in live.history(after=discord.Object(first.id))]
        assert later == ["Bra!", "Tack"]  # oldest first with after=, as discord.py orders
        await sent.edit(content="Tack så mycket")
        await sent.add_reaction("👍")
        assert s.messages[sent.id].data["content"] == "Tack så mycket"
        assert s.messages[sent.id].data["reactions"][0]["emoji"]["name"] == "👍"
        await s.reaction(first, world.anna, "🎉")
        reacted = await s.wait_for(lambda: client.reactions, what="reaction")
        assert reacted[0].channel_id == thread.id and reacted[0].message_id == first.id
        await sent.delete()
        assert s.messages[sent.id].deleted and s.channel(thread.id).message_count == 2
        # The parent's history holds the starter, not what was said in the thread.
        assert [m.id for m in s.channel_messages(falun.id)] == [starter.id]


async def test_thread_the_client_missed_comes_as_a_partial_messageable(world: World) -> None:
    s, falun = world.standin, world.channels[0]
    async with connected(s) as client:
        starter = await s.user_message(falun, world.bertil, "Fråga om valet")
        thread = await s.start_thread(starter, world.bertil, "Valet", dispatch=False)
        await s.user_message(thread, world.anna, "Svar")
        got = await s.wait_for(lambda: len(client.received) >= 2 and client.received)
        # No THREAD_CREATE seen: discord.py cannot tell it is a thread, nor its parent.
        assert isinstance(got[1].channel, discord.PartialMessageable)
        assert got[1].channel.id == thread.id and got[1].guild is not None
        fetched = await client.fetch_channel(thread.id)
        assert isinstance(fetched, discord.Thread) and fetched.parent_id == falun.id
        assert fetched.owner_id == world.bertil.id


async def test_webhook_posts_in_a_thread_and_its_edits_need_the_thread(world: World) -> None:
    s, falun, mora = world.standin, *world.channels[:2]
    async with connected(s) as client:
        parent = client.get_channel(falun.id)
        assert isinstance(parent, discord.TextChannel)
        hook = await parent.create_webhook(name="Samverkan")
        starter = await s.user_message(falun, world.bertil, "Tråd här")
        thread = await s.start_thread(starter, world.bertil, "Bryggan")
        await s.wait_for(lambda: client.created, what="THREAD_CREATE")

        posted = await hook.send(
            "från Matrix", username="Anna", thread=discord.Object(thread.id), wait=True
        )
        assert posted.channel.id == thread.id
        assert s.messages[posted.id].channel_id == thread.id and thread.message_count == 1
        assert s.recorded(EXECUTE)[-1].query["thread_id"] == str(thread.id)
        arrived = await s.wait_for(
            lambda: [m for m in client.received if m.id == posted.id], what="MESSAGE_CREATE"
        )
        assert isinstance(arrived[0].channel, discord.Thread) and arrived[0].webhook_id == hook.id

        # Without thread_id Discord does not find a webhook message in a thread.
        with pytest.raises(discord.NotFound) as missing:
            await hook.edit_message(posted.id, content="rättat")
        assert missing.value.code == 10008
        with pytest.raises(discord.NotFound):
            await hook.fetch_message(posted.id)
        edited = await hook.edit_message(
            posted.id, content="rättat", thread=discord.Object(thread.id)
        )
        assert edited.content == "rättat" == s.messages[posted.id].data["content"]
        await posted.edit(content="igen")  # a WebhookMessage remembers its thread
        assert s.messages[posted.id].data["content"] == "igen"
        assert [r.status for r in s.recorded(EDIT_HOOK_MESSAGE)] == [404, 200, 200]
        fetched = await hook.fetch_message(posted.id, thread=discord.Object(thread.id))
        assert fetched.content == "igen"

        # Only threads of the webhook's own channel.
        elsewhere = await s.user_message(mora, world.bertil, "I Mora")
        mora_thread = await s.start_thread(elsewhere, world.bertil, "Mora-tråd")
        for wrong in (mora_thread.id, falun.id, falun.id + 10**6):
            with pytest.raises(discord.HTTPException) as rejected:
                await hook.send("fel", thread=discord.Object(wrong), wait=True)
            assert (rejected.value.status, rejected.value.code) == (400, 10003)
        assert not [m for m in s.channel_messages(mora_thread.id) if m.webhook_id]

        # A webhook belongs to the text channel: a thread has none of its own.
        for call in (
            client.http.create_webhook(thread.id, name="Samverkan"),
            client.http.channel_webhooks(thread.id),
        ):
            with pytest.raises(discord.HTTPException) as no_hooks:
                await call
            assert (no_hooks.value.status, no_hooks.value.code) == (400, 50024)
        assert [h.channel_id for h in s.webhooks.values()] == [falun.id]

        await hook.delete_message(posted.id, thread=discord.Object(thread.id))
        assert s.messages[posted.id].deleted and thread.message_count == 0


async def test_start_thread_rejections_like_discord(world: World) -> None:
    s, falun = world.standin, world.channels[0]
    starter = await s.user_message(falun, world.bertil, "Startar en tråd")
    other = await s.user_message(falun, world.bertil, "En till")

    async def start(channel_id: int, message_id: int, body: Any) -> tuple[int, Any]:
        url = f"{s.api_url}/channels/{channel_id}/messages/{message_id}/threads"
        async with http.post(url, json=body, headers=_auth(s)) as r:
            return r.status, await r.json(content_type=None)

    async with aiohttp.ClientSession() as http:
        for body in (
            {},
            {"name": ""},
            {"name": "x" * 101},
            {"name": "ok", "auto_archive_duration": 5},
        ):
            status, data = await start(falun.id, starter.id, body)
            assert (status, data["code"]) == (400, 50035), body
            assert data["message"].startswith("Invalid Form Body")
        status, data = await start(12345, starter.id, {"name": "x"})
        assert (status, data["code"]) == (404, 10003)
        status, data = await start(falun.id, 12345, {"name": "x"})
        assert (status, data["code"]) == (404, 10008)

        status, thread = await start(falun.id, starter.id, {"name": "x" * 100})
        assert status == 201 and thread["id"] == str(starter.id) and thread["type"] == 11
        assert thread["parent_id"] == str(falun.id)
        assert thread["thread_metadata"]["archived"] is False
        status, data = await start(falun.id, starter.id, {"name": "igen"})
        assert (status, data["code"]) == (400, 160004)
        assert data["message"] == "A thread has already been created for this message"

        inner = await s.user_message(s.channel(starter.id), world.anna, "I tråden")
        status, data = await start(starter.id, inner.id, {"name": "djupare"})
        assert (status, data["code"]) == (400, 50024)
        # A message of the parent is not found under the thread's id, nor the reverse.
        status, data = await start(falun.id, inner.id, {"name": "fel"})
        assert (status, data["code"]) == (404, 10008)

    assert [r.status for r in s.recorded(START_THREAD)] == [400] * 4 + [
        404,
        404,
        201,
        400,
        400,
        404,
    ]
    assert [t.id for t in s.threads(falun.id)] == [starter.id]
    assert "thread" not in other.data and not other.data["flags"] & 32
    created = [f for f in s.frames if f.t == "THREAD_CREATE"]
    assert created == []  # no client was connected: nothing is kept for one


async def test_threads_survive_resume_and_reconnect(world: World) -> None:
    s, falun = world.standin, world.channels[0]
    async with connected(s) as client:
        starter = await s.user_message(falun, world.bertil, "Innan")
        await s.wait_for(lambda: client.received, what="the first message")
        await s.gateway.drop_connections()
        await s.wait_for(
            lambda: all(x.connection is None for x in s.gateway.live_sessions()),
            what="the connection to close",
        )
        # Created while the client is away: RESUME replays THREAD_CREATE.
        thread = await s.start_thread(starter, world.anna, "Medan du var borta")
        await s.wait_for(lambda: s.gateway.resumes == 1, 10, "a RESUME")
        await s.wait_for(lambda: client.get_channel(thread.id) is not None, what="the thread")
        replayed = [f for f in s.frames if f.direction == "out" and f.t == "THREAD_CREATE"]
        assert replayed and replayed[-1].connection == max(s.gateway.connections)
        assert replayed[-1].d["newly_created"] is True and replayed[-1].d["guild_id"] == str(
            world.guild_id
        )

        # A new session (no resume): GUILD_CREATE lists the active thread.
        await s.gateway.invalidate_sessions()
        await s.wait_for(lambda: s.gateway.identifies == 2, 10, "a new IDENTIFY")
        guild_id = world.guild_id

        def known() -> discord.Thread | None:
            guild = client.get_guild(guild_id)
            return guild.get_thread(thread.id) if guild is not None else None

        again = await s.wait_for(known, 10, "the thread from GUILD_CREATE")
        assert again.parent_id == falun.id and again.name == "Medan du var borta"
        creates = [f for f in s.frames if f.direction == "out" and f.t == "GUILD_CREATE"]
        assert len(creates) == 2
        assert [t["id"] for t in creates[-1].d["threads"]] == [str(thread.id)]
        assert str(thread.id) not in [c["id"] for c in creates[-1].d["channels"]]
