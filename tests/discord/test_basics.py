"""Ready, a message in and a reply out, own messages ignored, mentions as names."""

from __future__ import annotations

from pathlib import Path

from bot.core.events import MessageDeleted, MessageEdited, MessageReceived, ReactionAdded
from tests.discord.botrun import Probe, World, messages_received, running_bot, settings_for


async def test_ready_message_in_reply_out(world: World, tmp_path: Path) -> None:
    s = world.standin
    Probe.events.clear()
    falun = world.channels[0]
    async with running_bot(settings_for(world, tmp_path)) as run:
        identify = next(f for f in s.frames if f.direction == "in" and f.op == 2)
        intents = int(identify.d["intents"])
        # guilds | guild messages | guild reactions | message content | guild polls
        assert intents == (1 << 0) | (1 << 9) | (1 << 10) | (1 << 15) | (1 << 24)
        assert run.adapter.health()["connected"] == "yes"

        msg = await s.user_message(falun, world.bertil, f"ping hej <@{world.anna.id}>")
        replies = await s.wait_for(
            lambda: [r for r in s.recorded("POST /channels/{channel_id}/messages")],
            what="a reply",
        )
        body = replies[0].json
        assert body["content"] == "pong hej @anna"
        assert int(body["message_reference"]["message_id"]) == msg.id
        assert body["allowed_mentions"] == {"parse": [], "replied_user": False}
        assert len(body["nonce"]) == 24 and body["enforce_nonce"] is True
        assert replies[0].headers["Content-Type"] == "application/json"

        received = messages_received()
        assert [m.text for m in received] == ["ping hej @anna"]
        assert received[0].sender.display_name == "bertil"
        # The bot's own reply came back over the gateway and was not handled.
        await s.wait_for(lambda: len(s.channel_messages(falun.id)) == 2)
        await run.adapter.inbound.drain()
        assert len(messages_received()) == 1


async def test_inbound_replies_attachments_edits_reactions_deletions(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun = world.channels[0]
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path)) as run:
        first = await s.user_message(falun, world.anna, "första")
        files = [
            {
                "id": "1",
                "filename": "affisch.pdf",
                "size": 1234,
                "url": "https://cdn.example.org/affisch.pdf",
                "proxy_url": "https://cdn.example.org/affisch.pdf",
                "content_type": "application/pdf",
            }
        ]
        second = await s.user_message(
            falun, world.bertil, "svar", reply_to=first.id, attachments=files
        )
        await s.reaction(first, world.bertil, "👍")
        await s.user_edit(second, "svar (ändrat)")
        await s.gateway.dispatch(
            "MESSAGE_DELETE",
            {"id": str(first.id), "channel_id": str(falun.id), "guild_id": str(world.guild_id)},
        )
        await s.wait_for(lambda: len(Probe.events) == 5, what="five events")
        await run.adapter.inbound.drain()
    kinds = [type(e) for e in Probe.events]
    assert kinds == [MessageReceived, MessageReceived, ReactionAdded, MessageEdited, MessageDeleted]
    reply = Probe.events[1]
    assert isinstance(reply, MessageReceived)
    assert reply.reply_to is not None and reply.reply_to.id == str(first.id)
    assert reply.attachments[0].filename == "affisch.pdf"
    assert reply.attachments[0].url == "https://cdn.example.org/affisch.pdf"
    reaction = Probe.events[2]
    assert isinstance(reaction, ReactionAdded) and reaction.key == "👍"
    assert reaction.target.id == str(first.id) and reaction.sender.display_name == "bertil"
    edited = Probe.events[3]
    assert isinstance(edited, MessageEdited) and edited.text == "svar (ändrat)"
    deleted = Probe.events[4]
    assert isinstance(deleted, MessageDeleted) and deleted.ref.id == str(first.id)
