"""Commands through the whole App against real Synapse users."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.core.events import MessageReceived
from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from plugins.help import HelpPlugin
from tests.matrix.botrun import (
    Recorder,
    bot_settings,
    config_text,
    matrix_adapter,
    running_bot,
    wait_until,
)
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot
from tests.support import settings_from


async def test_help_is_answered_as_a_notice_reply(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    room = await alice.create_room(invite=[bot.user_id])
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await alice.wait_joined(room, bot.user_id)
        command = await alice.say(room, "!hjälp")
        (reply,) = await alice.wait_for(from_bot(bot.user_id, room))
    content = reply["content"]
    assert content["msgtype"] == "m.notice"
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": command}}
    assert content["m.mentions"] == {}
    assert "!hjälp" in content["body"]
    assert content["format"] == "org.matrix.custom.html"
    assert "&lt;question&gt;" in content["formatted_body"]


async def test_organiser_commands_follow_power_levels(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    owner = await users("owner")
    member = await users("member")
    moderator = await users("moderator")
    room = await owner.create_room(
        invite=[bot.user_id, member.user_id, moderator.user_id],
        power={moderator.user_id: 50},
    )
    await member.join(room)
    await moderator.join(room)
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await owner.wait_joined(room, bot.user_id)
        refused = await member.say(room, "!skyddad")
        granted = await moderator.say(room, "!guarded")
        created = await owner.say(room, "!skyddad")
        replies = await owner.wait_for(from_bot(bot.user_id, room), count=3)
    by_origin = {r["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]: r for r in replies}
    assert by_origin[granted]["content"]["body"] == "granted"
    assert by_origin[created]["content"]["body"] == "granted"  # the creator, room version 12
    refusal = by_origin[refused]["content"]
    assert refusal["body"] != "granted"
    assert "!guarded" in refusal["body"] or "!skyddad" in refusal["body"]
    assert refusal["msgtype"] == "m.notice"


async def test_reply_in_a_thread_stays_in_the_thread(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    room = await alice.create_room(invite=[bot.user_id])
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await alice.wait_joined(room, bot.user_id)
        root = await alice.say(room, "a thread")
        relates = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
        relates["m.in_reply_to"] = {"event_id": root}
        command = await alice.say(room, "!help", **{"m.relates_to": relates})
        (reply,) = await alice.wait_for(from_bot(bot.user_id, room))
    rel = reply["content"]["m.relates_to"]
    assert rel["rel_type"] == "m.thread" and rel["event_id"] == root
    assert rel["m.in_reply_to"] == {"event_id": command}


async def test_invite_is_accepted_and_history_is_not_replayed(
    synapse: Synapse, users: MakeUser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    room = await alice.create_room()  # the bot is not invited yet
    other = await alice.create_room()  # not configured: its invite is declined by silence
    old_command = await alice.say(room, "!help")
    await alice.say(room, "old news")
    caplog.set_level(logging.ERROR, logger="bot.adapters.matrix")
    ref = RoomRef("matrix", room)
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])) as app:
        assert any(room in r.getMessage() for r in caplog.records)  # cannot join: logged
        problem = await app.check_room(ref)
        assert problem is not None and "bjud in" in problem  # the bot's language (sv)
        await alice.client.room_invite(other, bot.user_id)
        await alice.client.room_invite(room, bot.user_id)
        await alice.wait_joined(room, bot.user_id)
        await wait_until(lambda: matrix_adapter(app).health()["rooms"] == "1")
        assert await app.check_room(ref) is None
        await alice.say(room, "fresh news")
        command = await alice.say(room, "!help")
        (reply,) = await alice.wait_for(from_bot(bot.user_id, room))
        await asyncio.sleep(0.3)
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command
    assert old_command != command
    texts = [e.text for e in Recorder.events if isinstance(e, MessageReceived)]
    assert texts == ["fresh news"]
    assert not alice.sees_joined(other, bot.user_id)
    assert bot.user_id in alice.client.rooms[other].invited_users


async def test_access_token_login(synapse: Synapse, users: MakeUser, tmp_path: Path) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    room = await alice.create_room(invite=[bot.user_id])
    text = config_text(synapse, bot, tmp_path, [room]).replace(
        f'password = "{bot.password}"', f'access_token = "{bot.access_token}"'
    )
    settings = settings_from(tmp_path, text, [HelpPlugin, Recorder])
    async with running_bot(settings) as app:
        assert matrix_adapter(app).health()["device"] == bot.device_id
        # Without a password there is no user-interactive auth for cross-signing.
        assert matrix_adapter(app).health()["cross_signing"] == "needs password"
        await alice.wait_joined(room, bot.user_id)
        command = await alice.say(room, "!help")
        (reply,) = await alice.wait_for(from_bot(bot.user_id, room))
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command


async def test_a_room_configured_by_alias(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    name = f"falun-{alice.account.localpart}"
    room = await alice.create_room(invite=[bot.user_id], alias=name)
    alias = f"#{name}:localhost"
    async with running_bot(bot_settings(synapse, bot, tmp_path, [alias])) as app:
        await alice.wait_joined(room, bot.user_id)
        said = await alice.say(room, "hej")
        command = await alice.say(room, "!help")
        (reply,) = await alice.wait_for(from_bot(bot.user_id, room))
        # Posting to the alias reaches the room too.
        await app.delivery.send("alias:1", RoomRef("matrix", alias), OutgoingMessage(text="ok"))
        await alice.wait_for(from_bot(bot.user_id, room), count=2)
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command
    (message,) = [e for e in Recorder.events if isinstance(e, MessageReceived)]
    # Events name the room as the configuration does, so associations find it.
    assert message.room == RoomRef("matrix", alias) and message.event_id == said
