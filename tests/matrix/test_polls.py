"""Native polls: the bot starts one in Element's form, votes come back, the bot ends it."""

from __future__ import annotations

from pathlib import Path

from bot.core.events import PollVoteReceived
from bot.core.refs import MessageRef, RoomRef
from tests.matrix.botrun import Recorder, bot_settings, running_bot, wait_until
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot

START = "org.matrix.msc3381.poll.start"


async def test_native_poll_round_trip(synapse: Synapse, users: MakeUser, tmp_path: Path) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    bob = await users("bob")
    room = await alice.create_room(invite=[bot.user_id, bob.user_id])
    await bob.join(room)
    async with running_bot(bot_settings(synapse, bot, tmp_path, [room])):
        await alice.wait_joined(room, bot.user_id)
        command = await alice.say(room, '!fråga "Ska vi ses?"')
        (poll,) = await alice.wait_for(from_bot(bot.user_id, room, START))
        poll_id = poll["event_id"]
        reference = {"rel_type": "m.reference", "event_id": poll_id}
        await alice.send(
            room,
            {"m.relates_to": reference, "org.matrix.msc3381.poll.response": {"answers": ["yes"]}},
            "org.matrix.msc3381.poll.response",
        )
        await bob.send(room, {"m.relates_to": reference, "m.selections": ["no"]}, "m.poll.response")
        await wait_until(
            lambda: len([e for e in Recorder.events if isinstance(e, PollVoteReceived)]) == 2
        )
        await alice.say(room, f"!stäng {command}")
        (end,) = await alice.wait_for(from_bot(bot.user_id, room, "org.matrix.msc3381.poll.end"))
    start = poll["content"][START]
    assert start["question"]["org.matrix.msc1767.text"] == "Ska vi ses?"
    assert start["kind"] == "org.matrix.msc3381.poll.disclosed"
    assert start["max_selections"] == 1
    assert [(a["id"], a["org.matrix.msc1767.text"]) for a in start["answers"]] == [
        ("yes", "Ja"),
        ("no", "Nej"),
    ]
    assert "Ska vi ses?" in poll["content"]["org.matrix.msc1767.text"]
    votes = {
        e.sender.user.id: e.answers for e in Recorder.events if isinstance(e, PollVoteReceived)
    }
    assert votes == {alice.user_id: ("yes",), bob.user_id: ("no",)}
    assert all(
        e.poll == MessageRef(RoomRef("matrix", room), poll_id)
        for e in Recorder.events
        if isinstance(e, PollVoteReceived)
    )
    assert end["content"]["m.relates_to"] == {"rel_type": "m.reference", "event_id": poll_id}
    assert end["content"]["org.matrix.msc1767.text"] == "Resultat: Ja 1, Nej 0"
