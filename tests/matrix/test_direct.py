"""Direct chats with the bot, membership of configured rooms, and removing a member's
message, against the real Synapse."""

from __future__ import annotations

import json
from pathlib import Path

from bot.core.events import MessageReceived
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.delivery import FAILED, SENT, Target
from tests.matrix.botrun import Recorder, bot_settings, matrix_adapter, running_bot, wait_until
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot


def messages_in(room: str) -> list[MessageReceived]:
    return [e for e in Recorder.events if isinstance(e, MessageReceived) and e.room.id == room]


async def test_a_member_opens_an_encrypted_direct_chat_a_stranger_does_not(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    anna = await users("anna", tmp_path / "anna-store")
    stranger = await users("stranger")
    room = await anna.create_room(invite=[bot.user_id])
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await anna.wait_joined(room, bot.user_id)
        spam = await stranger.create_room(invite=[bot.user_id], is_direct=True)
        direct = await anna.create_room(invite=[bot.user_id], is_direct=True, encrypted=True)
        await anna.wait_joined(direct, bot.user_id)
        command = await anna.say(direct, "!hjälp")
        (reply,) = await anna.wait_for(from_bot(bot.user_id, direct))
        words = await anna.say(direct, "bara ord")
        await wait_until(lambda: messages_in(direct))
        await stranger.caught_up(spam)
    # The command was run in the direct room and its answer went back there, encrypted
    # as the room is; other words reach the plugins as a message in that room.
    assert [e.ref.id for e in messages_in(direct)] == [words]
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command
    raw = synapse.request(
        "GET",
        f"/_matrix/client/v3/rooms/{direct}/event/{reply['event_id']}",
        token=anna.account.access_token,
    )
    assert raw["type"] == "m.room.encrypted" and "body" not in json.dumps(raw["content"])
    # The stranger shares no configured room: the bot stays invited only.
    assert not stranger.sees_joined(spam, bot.user_id)
    assert bot.user_id in stranger.client.rooms[spam].invited_users


async def test_what_is_written_before_the_bot_joins_a_direct_chat_counts(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    anna = await users("anna")
    room = await anna.create_room(invite=[bot.user_id])
    settings = bot_settings(synapse, bot, tmp_path, [room])
    async with running_bot(settings):
        await anna.wait_joined(room, bot.user_id)
    # The bot is away: Anna opens a chat with it and writes at once.
    direct = await anna.create_room(invite=[bot.user_id], is_direct=True)
    early = await anna.say(direct, "rösta 1 2")
    async with running_bot(settings):
        await anna.wait_joined(direct, bot.user_id)
        await wait_until(lambda: messages_in(direct))
        later = await anna.say(direct, "och mer")
        await wait_until(lambda: len(messages_in(direct)) == 2)
    assert [e.ref.id for e in messages_in(direct)] == [early, later]


async def test_rooms_of_a_member(synapse: Synapse, users: MakeUser, tmp_path: Path) -> None:
    bot = synapse.register("bot")
    anna = await users("anna")
    bertil = await users("bertil")
    falun = await anna.create_room(invite=[bot.user_id, bertil.user_id])
    mora = await anna.create_room(invite=[bot.user_id, bertil.user_id])
    other = await anna.create_room(invite=[bertil.user_id])  # not configured
    await bertil.join(falun)
    await bertil.join(other)
    async with running_bot(bot_settings(synapse, bot, tmp_path, [falun, mora])) as app:
        await anna.wait_joined(mora, bot.user_id)
        adapter = matrix_adapter(app)
        assert await adapter.rooms_of_member(UserRef("matrix", bertil.user_id)) == [
            RoomRef("matrix", falun)
        ]
        both = await adapter.rooms_of_member(UserRef("matrix", anna.user_id))
        assert sorted(r.id for r in both) == sorted([falun, mora])
        assert await app.member_rooms(UserRef("matrix", "@nobody:localhost")) == []
        assert await adapter.rooms_of_member(UserRef("discord", "1")) == []


async def test_removing_a_members_message_where_the_bot_may_and_where_it_may_not(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    anna = await users("anna")
    bertil = await users("bertil")
    moderated = await anna.create_room(
        invite=[bot.user_id, bertil.user_id], power={bot.user_id: 50}
    )
    plain = await anna.create_room(invite=[bot.user_id, bertil.user_id])
    for room in (moderated, plain):
        await bertil.join(room)
    async with running_bot(bot_settings(synapse, bot, tmp_path, [moderated, plain])) as app:
        await anna.wait_joined(plain, bot.user_id)
        targets = {}
        for room in (moderated, plain):
            targets[room] = await bertil.say(room, "rösta 3 1")
            await app.delivery.delete(
                f"remove:{room}",
                Target(ref=MessageRef(RoomRef("matrix", room), targets[room])),
                RoomRef("matrix", room),
            )
        assert await app.delivery.wait_idle(15)
        assert await app.delivery.status(f"remove:{moderated}") == SENT
        assert await app.delivery.status(f"remove:{plain}") == FAILED
        error = await app.db.fetchval(
            "SELECT last_error FROM outbox WHERE key = ?", (f"remove:{plain}",)
        )
    assert "may not remove others' messages" in str(error)
    assert "power level 50, the bot has 0" in str(error)
    for room, removed in ((moderated, True), (plain, False)):
        event = synapse.request(
            "GET",
            f"/_matrix/client/v3/rooms/{room}/event/{targets[room]}",
            token=anna.account.access_token,
        )
        assert ("body" not in event["content"]) is removed
