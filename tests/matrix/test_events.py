"""Inbound events as core events, and outgoing media, through the whole App."""

from __future__ import annotations

from pathlib import Path

from bot.core.events import (
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ReactionAdded,
    ReactionRemoved,
)
from bot.core.messages import Attachment, OutgoingMessage
from bot.core.refs import MessageRef, RoomRef
from bot.delivery import Target
from tests.matrix.botrun import Recorder, bot_settings, running_bot, wait_until
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


async def test_inbound_events_become_core_events(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    room = await alice.create_room(invite=[bot.user_id])
    ref = RoomRef("matrix", room)
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await alice.wait_joined(room, bot.user_id)
        first = await alice.say(
            room,
            "hello *you*",
            format="org.matrix.custom.html",
            formatted_body="hello <em>you</em>",
        )
        edit = await alice.send(
            room,
            {
                "msgtype": "m.text",
                "body": "* hello again",
                "m.new_content": {"msgtype": "m.text", "body": "hello again"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first},
            },
        )
        reaction = await alice.send(
            room,
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
            "m.reaction",
        )
        await alice.client.room_redact(room, reaction)
        reply = await alice.say(
            room,
            f"> <{alice.user_id}> hello\n\nan answer",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": first}}},
        )
        notice = await alice.send(room, {"msgtype": "m.notice", "body": "a notice"})
        emote = await alice.send(room, {"msgtype": "m.emote", "body": "waves"})
        mxc = await alice.upload(PNG, "image/png", "pic.png")
        image = await alice.send(
            room,
            {
                "msgtype": "m.image",
                "body": "pic.png",
                "url": mxc,
                "info": {"mimetype": "image/png", "size": len(PNG)},
            },
        )
        await alice.client.room_redact(room, first)
        await wait_until(lambda: any(isinstance(e, MessageDeleted) for e in Recorder.events))
    by_id = {e.event_id: e for e in Recorder.events}
    got = by_id[first]
    assert isinstance(got, MessageReceived)
    assert got.text == "hello *you*" and got.html == "hello <em>you</em>"
    assert got.sender.user.id == alice.user_id and got.room == ref
    edited = by_id[edit]
    assert isinstance(edited, MessageEdited)
    assert edited.ref == MessageRef(ref, first) and edited.text == "hello again"
    added = by_id[reaction]
    assert isinstance(added, ReactionAdded) and added.key == "👍"
    assert added.target == MessageRef(ref, first)
    removed = [e for e in Recorder.events if isinstance(e, ReactionRemoved)]
    assert [(r.target.id, r.key) for r in removed] == [(first, "👍")]
    answered = by_id[reply]
    assert isinstance(answered, MessageReceived)
    assert answered.reply_to == MessageRef(ref, first) and answered.text == "an answer"
    noticed, emoted = by_id[notice], by_id[emote]
    assert isinstance(noticed, MessageReceived) and noticed.is_notice
    assert isinstance(emoted, MessageReceived) and emoted.text == "waves"
    picture = by_id[image]
    assert isinstance(picture, MessageReceived)
    (attachment,) = picture.attachments
    assert attachment.data == PNG and attachment.content_type == "image/png"
    assert attachment.url == mxc and attachment.filename == "pic.png"
    deleted = [e for e in Recorder.events if isinstance(e, MessageDeleted)]
    assert [d.ref for d in deleted] == [MessageRef(ref, first)]
    # Each event exactly once.
    ids = [e.event_id for e in Recorder.events]
    assert len(ids) == len(set(ids))


async def test_outgoing_media_edits_reactions_and_redactions(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    room = await alice.create_room(invite=[bot.user_id])
    ref = RoomRef("matrix", room)
    long_text = "\n\n".join(f"Stycke {i}: " + "ord " * 400 for i in range(12))
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])) as app:
        await alice.wait_joined(room, bot.user_id)
        data = "hej då <b>".encode() * 100
        message = OutgoingMessage(
            text="En **fil** <script>",
            attachments=(Attachment("notes.txt", "text/plain", data=data),),
            notice=False,
        )
        await app.delivery.send("media:1", ref, message)
        await app.delivery.send("long:1", ref, OutgoingMessage(text=long_text))
        posted = await alice.wait_for(from_bot(bot.user_id, room), count=2)
        text, file = posted[0]["content"], posted[1]["content"]
        target = Target(key="media:1")
        await app.delivery.edit("edit:1", target, ref, OutgoingMessage(text="En ändrad fil"))
        await app.delivery.react("react:1", target, ref, "✅")
        await app.delivery.delete("delete:1", target, ref)
        await alice.wait_for(from_bot(bot.user_id, room, "m.room.redaction"))
        reactions = await alice.wait_for(from_bot(bot.user_id, room, "m.reaction"))
        long_parts = [
            p["content"]["body"]
            for p in alice.found(from_bot(bot.user_id, room))
            if p["content"].get("body", "").startswith("Stycke")
            or "Stycke" in p["content"].get("body", "")[:20]
        ]
    assert text["msgtype"] == "m.text" and text["body"] == "En fil <script>"
    assert text["formatted_body"] == "En <strong>fil</strong> &lt;script&gt;"
    assert text["m.mentions"] == {}
    assert file["msgtype"] == "m.file" and file["body"] == "notes.txt"
    assert synapse.download(file["url"], alice.account.access_token) == data
    edits = [
        s["content"]
        for s in alice.found(from_bot(bot.user_id, room))
        if s["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
    ]
    assert [e["m.new_content"]["body"] for e in edits] == ["En ändrad fil"]
    media_id = edits[0]["m.relates_to"]["event_id"]
    assert reactions[0]["content"]["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": media_id,
        "key": "✅",
    }
    # The long text came in several parts below the event size limit, nothing lost.
    assert len(long_parts) > 1
    assert " ".join(" ".join(long_parts).split()) == " ".join(long_text.split())
