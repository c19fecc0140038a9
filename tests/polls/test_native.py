"""Native votes and what platforms report: button toggles, a post's full voter list read
after downtime, votes on their way at the close, and closes that survive restarts and a
bot that was down past the deadline."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta

import pytest

from bot.core.events import ButtonPressed, PollVoteReceived, PollVotesSnapshot, Sender
from bot.core.refs import MessageRef, UserRef
from plugins.polls.closing import Closer
from tests.polls.conftest import START
from tests.polls.support import Bot

BOT = Sender(UserRef("console", "samverkan"), "Samverkan")
_ids = itertools.count(1)


async def snapshot(
    bot: Bot, poll: int, room: str, votes: Sequence[tuple[str, Sequence[str]]], *, final: bool
) -> None:
    post = await bot.post_of(poll, room)
    await bot.inject(
        PollVotesSnapshot(
            event_id=f"s{next(_ids)}",
            room=post.room,
            sender=BOT,
            at=bot.clock.now(),
            poll=post,
            votes=tuple((Sender(UserRef("console", u), u), tuple(a)) for u, a in votes),
            final=final,
        )
    )


async def counts(bot: Bot, poll: int) -> str:
    await bot.say("styrelse", "anna", f"!omröstning resultat {poll}")
    return bot.last("styrelse")


async def test_button_toggles_in_a_multiple_choice_poll(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Vilka?" "A" "B" "C" --flera 2')
    await bot.native_vote(1, "falun", "bo", ["1"], toggle=True, origin=True)
    await bot.native_vote(1, "falun", "bo", ["2"], toggle=True, origin=True)
    assert "registrerad för Falun: 1. A, 2. B." in bot.last("falun")
    post = await bot.post_of(1, "falun")
    # A button the adapter could not place: the same toggle, from its custom id.
    await bot.inject(
        ButtonPressed(
            event_id="b1",
            room=post.room,
            sender=Sender(UserRef("console", "bo"), "bo"),
            at=bot.clock.now(),
            message=post,
            custom_id="vote:3",
            origin=MessageRef(post.room, "ib1"),
        )
    )
    assert bot.last("falun") == "I omröstning 1 kan du välja högst 2 alternativ."
    await bot.native_vote(1, "falun", "bo", ["1"], toggle=True, origin=True)
    assert "registrerad för Falun: 2. B." in bot.last("falun")
    await bot.native_vote(1, "falun", "bo", ["9"], origin=True)
    assert "Alternativ 9 finns inte i omröstning 1" in bot.last("falun")
    assert "1. A: 0 (0 %)\n2. B: 1 (100 %)\n3. C: 0 (0 %)" in await counts(bot, 1)


async def test_a_voter_list_after_downtime_brings_the_post_up_to_date(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Vad?" "Ett" "Två"')
    for user, answer in (("bo", "1"), ("cilla", "2"), ("fia", "1")):
        await bot.native_vote(1, "falun2", user, [answer])
    await bot.advance(timedelta(minutes=1))
    await bot.say("falun", "dan", "!rösta 1 1")
    await bot.say("falun", "fia", "!rösta 1 2")  # later than her vote on the post
    await bot.restart()
    await bot.advance(timedelta(minutes=1))
    # While we were away: Bo changed to 2, Erik voted 1, Cilla took hers back, Dan
    # voted 2 there; Fia's vote there is what it was, so her later text vote stands.
    listed = [("bo", ["2"]), ("erik", ["1"]), ("dan", ["2"]), ("fia", ["1"])]
    await snapshot(bot, 1, "falun2", listed, final=False)
    assert "1. Ett: 1 (25 %)\n2. Två: 3 (75 %)\nAntal som röstat: 4." in await counts(bot, 1)
    # The same list again changes nothing.
    await snapshot(bot, 1, "falun2", listed, final=False)
    assert "Antal som röstat: 4." in await counts(bot, 1)

    # Closed: the final list read after the expiry still counts, until the count.
    await bot.say("falun", "anna", "!omröstning stäng 1")
    await snapshot(bot, 1, "falun2", [*listed, ("gun", ["1"])], final=True)
    late = PollVoteReceived(
        event_id="late",
        room=(await bot.post_of(1, "falun")).room,
        sender=Sender(UserRef("console", "hans"), "hans"),
        at=bot.clock.now() + timedelta(seconds=1),
        poll=await bot.post_of(1, "falun"),
        answers=("1",),
    )
    await bot.inject(late)  # cast after the end: not counted
    await bot.advance(timedelta(seconds=5))
    results = [t for t in bot.texts("falun") if t.startswith("📊 Resultat")][-1]
    assert "1. Ett: 2 (40 %)\n2. Två: 3 (60 %)\nAntal som röstat: 5." in results
    await snapshot(bot, 1, "falun2", [("ivar", ["1"])], final=True)  # after the count
    assert "Antal som röstat: 5." in await counts(bot, 1)


async def test_an_older_vote_delivered_late_does_not_replace_a_newer_one(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Vad?" "Ett" "Två"')
    await bot.advance(timedelta(minutes=10))
    await bot.say("falun", "bo", "!rösta 1 2")
    post = await bot.post_of(1, "falun2")
    older = PollVoteReceived(
        event_id="old",
        room=post.room,
        sender=Sender(UserRef("console", "bo"), "bo"),
        at=bot.clock.now() - timedelta(minutes=5),
        poll=post,
        answers=("1",),
    )
    await bot.inject(older)
    assert "1. Ett: 0 (0 %)\n2. Två: 1 (100 %)" in await counts(bot, 1)


async def test_a_bot_down_past_the_deadline_closes_the_poll_when_back(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Nu?" "Ja" "Nej" --längd 1h')
    await bot.say("falun", "bo", "!rösta 1 1")
    await bot.stop()
    bot.clock.set(START + timedelta(days=1))  # far beyond the bot's late grace of 1h
    await bot.start()
    post = await bot.post_of(1, "falun")
    # A vote cast before the deadline, caught up after the restart: it counts. (Falun
    # has a Matrix room, where votes can come late; a console-only poll is counted at
    # once.)
    await bot.inject(
        PollVoteReceived(
            event_id="caught-up",
            room=post.room,
            sender=Sender(UserRef("console", "cilla"), "cilla"),
            at=START + timedelta(minutes=30),
            poll=post,
            answers=("2",),
        )
    )
    await bot.advance(timedelta(seconds=5))
    results = bot.last("falun")
    assert results.startswith("📊 Resultat för omröstning 1: Nu? (försenat)")
    assert "Antal som röstat: 2." in results
    assert not [t for t in bot.texts("styrelse") if "missades" in t]


async def test_a_restart_between_the_end_and_the_count_posts_the_results_once(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Nu?" "Ja" "Nej"')
    await bot.say("falun", "bo", "!rösta 1 2")
    await bot.say("falun", "anna", "!omröstning stäng 1")
    await bot.restart()
    await bot.advance(timedelta(seconds=5))
    assert len([t for t in bot.texts("falun2") if t.startswith("📊 Resultat")]) == 1
    await bot.restart()  # a fresh console: anything posted again would show here
    await bot.advance(timedelta(minutes=1))
    assert bot.texts("falun2") == []
    starts = await bot.running.db.fetchval(
        "SELECT COUNT(*) FROM outbox WHERE key LIKE 'poll:1:start:%'"
    )
    assert starts == 3


async def test_a_count_that_failed_is_done_at_the_next_start(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Nu?" "Ja" "Nej"')
    await bot.say("falun", "bo", "!rösta 1 1")

    async def broken(self: Closer, poll_id: int, *, late: bool = False) -> bool:
        raise RuntimeError("simulated failure")

    with monkeypatch.context() as patch:
        patch.setattr(Closer, "count", broken)
        await bot.say("falun", "anna", "!omröstning stäng 1")
        await bot.advance(timedelta(seconds=5))
    assert not [t for t in bot.texts("falun2") if t.startswith("📊 Resultat")]
    await bot.restart()
    results = [t for t in bot.texts("falun2") if t.startswith("📊 Resultat")]
    assert len(results) == 1 and "(försenat)" in results[0]
