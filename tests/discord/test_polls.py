"""Polls on Discord through the whole App and the stand-in: which form a poll takes,
votes by button and select menu answered to the voter alone in time, secret polls that
leave no choice in the adapter, and native polls' voters read over REST at start and
at the end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from bot.adapters.discord.polls import SELECT_ID, fits_native, poll_kind
from bot.core.events import ButtonPressed, MessageReceived, PollVoteReceived, PollVotesSnapshot
from bot.core.messages import OutgoingMessage, Poll, PollAnswer
from bot.core.refs import RoomRef
from bot.delivery import Target
from bot.plugin import Plugin, on
from bot.settings import RootSettings
from bot.storage.engines import open_database
from tests.discord.botrun import Probe, Running, World, running_bot, settings_for
from tests.discord.standin import StandIn
from tests.discord.standin import rest as standin_rest
from tests.discord.standin.model import Message
from tests.discord.test_outbound import _sent

CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"


def answers(n: int) -> tuple[PollAnswer, ...]:
    return tuple(PollAnswer(f"a{i}", f"Svar {i}") for i in range(1, n + 1))


class Voter(Plugin):
    """Answers each vote and click to the voter alone, through delivery, after `delay`."""

    name = "voter"
    delay: ClassVar[float] = 0.0

    @on(PollVoteReceived, ButtonPressed)
    async def answer(self, event: PollVoteReceived | ButtonPressed) -> None:
        await asyncio.sleep(Voter.delay)
        chosen = ",".join(event.answers) if isinstance(event, PollVoteReceived) else "-"
        reply = OutgoingMessage(text=f"Tack: {chosen}", reply_to=event.origin, ephemeral=True)
        await self.ctx.delivery.send(f"ack:{event.event_id}", event.room, reply)


def votes() -> list[PollVoteReceived]:
    return [e for e in Probe.events if isinstance(e, PollVoteReceived)]


def snapshots() -> list[PollVotesSnapshot]:
    return [e for e in Probe.events if isinstance(e, PollVotesSnapshot)]


async def post_poll(run: Running, s: StandIn, room: RoomRef, key: str, poll: Poll) -> Message:
    await run.app.delivery.send(key, room, OutgoingMessage(text=poll.question, poll=poll))
    assert await _sent(run, s, key) == "sent"
    ref = await run.app.delivery.message_ref(key)
    assert ref is not None
    return s.messages[int(ref.id)]


def followups(s: StandIn) -> list[str]:
    return [
        r.json["content"]
        for r in s.recorded(FOLLOWUP)
        if r.path.startswith(f"/api/v10/webhooks/{s.bot.id}/") and r.status == 200
    ]


def test_which_form_a_poll_takes() -> None:
    assert poll_kind(Poll("Q", answers(4)), True) == "native"
    assert poll_kind(Poll("Q", answers(4), max_selections=4), True) == "native"
    assert poll_kind(Poll("Q", answers(10)), True) == "native"
    assert poll_kind(Poll("Q", answers(4), secret=True), True) == "buttons"
    assert poll_kind(Poll("Q", answers(6), secret=True), True) == "select"
    assert poll_kind(Poll("Q", answers(11)), True) == "select"
    assert poll_kind(Poll("Q", answers(4)), False) == "buttons"
    # What Discord's native polls cannot say.
    assert not fits_native(Poll("Q", answers(4), max_selections=2))
    assert not fits_native(Poll("Q", answers(3), hours=769))
    assert fits_native(Poll("Q", answers(3), hours=768))
    assert not fits_native(Poll("Q", (PollAnswer("a", "x" * 56), PollAnswer("b", "y"))))
    assert not fits_native(Poll("q" * 301, answers(2)))


async def test_secret_clicks_are_toggles_answered_to_the_voter_alone(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    room = RoomRef("discord", str(world.channels[0].id))
    settings = settings_for(world, tmp_path)
    Probe.events.clear()
    poll = Poll("Budget?", answers(3), max_selections=2, secret=True)
    async with running_bot(settings, plugins=[Voter]) as run:
        msg = await post_poll(run, s, room, "poll:secret", poll)
        assert "poll" not in msg.data
        row = msg.data["components"][0]["components"]
        assert [c["custom_id"] for c in row] == ["vote:a1", "vote:a2", "vote:a3"]
        for answer in ("a1", "a2", "a1"):
            await s.click(msg, world.bertil, f"vote:{answer}")
        await s.wait_for(lambda: len(followups(s)) == 3, what="three answers")
        assert [(v.answers, v.toggle) for v in votes()] == [
            (("a1",), True),
            (("a2",), True),
            (("a1",), True),
        ]
        assert all(v.origin is not None and v.origin.id.startswith("i") for v in votes())
        # Acknowledged at once without a post, answered by a private followup.
        acks = [r.json["type"] for r in s.recorded(CALLBACK)]
        assert acks == [6, 6, 6]
        private = [r.json["flags"] & 64 for r in s.recorded(FOLLOWUP) if r.json.get("content", "")]
        assert followups(s) == ["Tack: a1", "Tack: a2", "Tack: a1"] and all(private)
        assert [m for m in s.channel_messages(msg.channel_id) if "Tack" in m.data["content"]] == []
        assert await choice_keys(settings) == []  # not one voter's choice kept
        await run.app.delivery.close_poll(
            "close:secret", Target(key="poll:secret"), room, OutgoingMessage("")
        )
        assert await _sent(run, s, "close:secret") == "sent"
    assert all(c["disabled"] for c in msg.data["components"][0]["components"])


async def choice_keys(settings: RootSettings) -> list[str]:
    db = await open_database(settings.bot.database)
    try:
        rows = await db.fetchall(
            "SELECT key FROM adapter_state WHERE platform = 'discord' AND key LIKE 'choice:%'"
        )
    finally:
        await db.close()
    return [str(r[0]) for r in rows]


async def test_past_five_answers_a_select_menu(world: World, tmp_path: Path) -> None:
    s = world.standin
    room = RoomRef("discord", str(world.channels[0].id))
    Probe.events.clear()
    poll = Poll("Var ses vi?", answers(7), max_selections=2)
    async with running_bot(settings_for(world, tmp_path), plugins=[Voter]) as run:
        msg = await post_poll(run, s, room, "poll:menu", poll)
        [menu] = msg.data["components"][0]["components"]
        assert (menu["type"], menu["custom_id"]) == (3, SELECT_ID)
        assert (menu["min_values"], menu["max_values"]) == (0, 2)
        assert menu["placeholder"] == "Välj ditt svar"
        assert [o["value"] for o in menu["options"]] == [f"a{i}" for i in range(1, 8)]
        assert menu["options"][6]["label"] == "7. Svar 7"
        await s.select(msg, world.anna, SELECT_ID, ["a7", "a2"])
        await s.select(msg, world.anna, SELECT_ID, [])  # taken back
        await s.wait_for(lambda: len(followups(s)) == 2, what="two answers")
        assert [(v.answers, v.toggle) for v in votes()] == [(("a2", "a7"), False), ((), False)]
        await run.app.delivery.close_poll(
            "close:menu", Target(key="poll:menu"), room, OutgoingMessage("Stängd")
        )
        assert await _sent(run, s, "close:menu") == "sent"
    assert msg.data["components"][0]["components"][0]["disabled"] is True
    with pytest.raises(AssertionError):
        await s.select(msg, world.anna, SELECT_ID, ["a1"])  # no client picks in a closed menu


async def test_a_slow_answer_still_reaches_the_voter(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ack goes out before the core sees the click: an answer later than the
    three-second window (shortened here) arrives as a followup."""
    s = world.standin
    room = RoomRef("discord", str(world.channels[0].id))
    monkeypatch.setattr(standin_rest, "INTERACTION_WINDOW", 0.3)
    monkeypatch.setattr(Voter, "delay", 0.6)
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path), plugins=[Voter]) as run:
        msg = await post_poll(run, s, room, "poll:slow", Poll("Q", answers(2), secret=True))
        inter = await s.click(msg, world.bertil, "vote:a2")
        await s.wait_for(lambda: followups(s) == ["Tack: a2"], what="the late answer")
        assert s.interactions[inter.id].acknowledged == 6
        answered_at = s.interactions[inter.id].answered_at
        assert answered_at is not None and answered_at - s.interactions[inter.id].created_at < 0.3
        # A followup after the token's life is dropped; the bot's own token is not doubted.
        s.followup_window = 0.0
        await s.click(msg, world.bertil, "vote:a1")
        await s.wait_for(lambda: len(votes()) == 2, what="the second click")
        await s.wait_for(
            lambda: [r for r in s.recorded(FOLLOWUP) if r.status == 401], what="a refused answer"
        )
        assert not run.adapter.brake.unauthorized
        assert await run.app.delivery.wait_idle(5)
        assert followups(s) == ["Tack: a2"]


async def test_native_voters_are_read_again_at_start_and_at_the_end(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    settings = settings_for(world, tmp_path)
    members = [s.add_user(f"medlem{i}") for i in range(120)]
    poll = Poll("Buss eller tåg?", answers(3), max_selections=3)
    Probe.events.clear()
    async with running_bot(settings) as run:
        msg = await post_poll(run, s, room, "poll:native", poll)
        assert msg.data["poll"]["allow_multiselect"] is True
        await s.poll_vote(msg, world.anna, 1)
        await s.wait_for(lambda: len(votes()) == 1, what="a live vote")
        assert votes()[0].answers == ("a1",)
    # While the bot is away: 120 votes for answer 2, Anna adds answer 3.
    for member in members:
        await s.poll_vote(msg, member, 2)
    await s.poll_vote(msg, world.anna, 3)
    async with running_bot(settings) as run:
        await s.wait_for(snapshots, what="the voters read at start")
        first = snapshots()[0]
        assert not first.final and first.poll.id == str(msg.id)
        listed = {sender.user.id: chosen for sender, chosen in first.votes}
        assert listed[str(world.anna.id)] == ("a1", "a3")
        assert sum(1 for chosen in listed.values() if chosen == ("a2",)) == 120
        pages = [
            r
            for r in s.recorded("GET /channels/{channel_id}/polls/{message_id}/answers/{answer_id}")
        ]
        assert any("after" in r.query for r in pages) and all(
            r.query["limit"] == "100" for r in pages
        )
        # This session never saw the poll posted: Discord sends no events for it.
        await s.poll_vote(msg, world.bertil, 1)
        await s.poll_vote(msg, members[0], 2, add=False)
        # A message after them in the same channel: had an event come, it came first.
        await s.user_message(falun, world.bertil, "efter rösterna")
        await s.wait_for(
            lambda: [e for e in Probe.events if isinstance(e, MessageReceived)], what="the marker"
        )
        assert len(votes()) == 1
        await run.app.delivery.close_poll(
            "close:native", Target(key="poll:native"), room, OutgoingMessage("Slut")
        )
        assert await _sent(run, s, "close:native") == "sent"
        await s.wait_for(lambda: len(snapshots()) == 2, what="the final voters")
        last = snapshots()[1]
        assert last.final
        final = {sender.user.id: chosen for sender, chosen in last.votes}
        assert final[str(world.bertil.id)] == ("a1",)
        assert str(members[0].id) not in final and len(final) == 121
        assert msg.data["poll"]["results"]["is_finalized"] is True
        # Closing again changes nothing and reads nothing more.
        await run.app.delivery.close_poll(
            "close:again", Target(key="poll:native"), room, OutgoingMessage("")
        )
        assert await _sent(run, s, "close:again") == "sent"
        assert await run.adapter.polls.open_native() == {}
    assert await choice_keys(settings) == []


async def test_native_polls_posted_at_once_are_all_remembered(world: World, tmp_path: Path) -> None:
    """Each room is its own delivery lane: polls going out together must not lose each
    other's entry in the index of open native polls (read again at every start)."""
    s = world.standin
    rooms = [RoomRef("discord", str(c.id)) for c in world.channels]
    async with running_bot(settings_for(world, tmp_path)) as run:
        for n, room in enumerate(rooms):
            message = OutgoingMessage(text="Q", poll=Poll("Q", answers(2)))
            await run.app.delivery.send(f"poll:at-once:{n}", room, message)
        for n in range(len(rooms)):
            assert await _sent(run, s, f"poll:at-once:{n}") == "sent"
        opened = await run.adapter.polls.open_native()
    assert sorted(opened.values()) == sorted(c.id for c in world.channels)
