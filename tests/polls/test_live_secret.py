"""A secret poll live: a vote written to the bot in an encrypted Matrix direct chat,
Discord buttons answered to the voter alone, a `vote` written in a shared Matrix room
refused and removed, the console; after the close neither the database file (nor its
write-ahead log) nor the bot's log holds who voted."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from tests.discord.botrun import World
from tests.discord.standin import Recorded
from tests.discord.test_polls import FOLLOWUP
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot
from tests.polls.live import (
    CONSOLE_ROOM,
    START,
    Ledger,
    fake_now,
    make_world,
    member,
    running,
    until,
)
from tests.polls.test_live_open import new_poll, settled


async def test_a_secret_poll_leaves_no_voter_behind(
    synapse: Synapse,
    users: MakeUser,
    world: World,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    env = await make_world(synapse, users, world, tmp_path)
    s = env.standin
    cecilia = await member(users, env, "cecilia", [env.falun], e2e=True)
    erik = await member(users, env, "erik", [env.falun])
    bertil, anna_d = world.bertil, world.anna
    clock = fake_now()
    async with running(env, clock) as live:
        poll = await new_poll(
            live, env, '!poll new "Budget 2027?" Ja Nej Avstår --secret --in all --for 2h'
        )
        # Matrix: no native poll (its votes are room events anyone reads), a post that
        # says how to vote in a direct message instead.
        await until(
            lambda: any(
                f"Hemlig omröstning {poll}" in str(e["content"].get("body"))
                for e in env.bot_events(env.falun)
            ),
            what="the Matrix post",
        )
        assert env.bot_events(env.falun, START) == []
        mora = await until(lambda: env.discord_poll(env.mora, poll), what="Mora's buttons")
        assert "poll" not in mora.data
        buttons = mora.data["components"][0]["components"]
        assert [b["type"] for b in buttons] == [2, 2, 2]

        votes = Ledger()
        # Cecilia writes to the bot in an encrypted direct chat.
        direct = await cecilia.create_room(invite=[env.bot.user_id], is_direct=True, encrypted=True)
        await cecilia.wait_joined(direct, env.bot.user_id)
        command = await cecilia.say(direct, f"!rösta {poll} 2")
        votes.vote("cecilia", "falun", ["2"])
        (answer,) = await cecilia.wait_for(from_bot(env.bot.user_id, direct))
        assert answer["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command
        assert "Kvittokod" in answer["content"]["body"]
        raw = synapse.request(
            "GET",
            f"/_matrix/client/v3/rooms/{direct}/event/{answer['event_id']}",
            token=cecilia.account.access_token,
        )
        assert raw["type"] == "m.room.encrypted"

        # Erik writes his vote where the whole room reads it: refused, and removed.
        open_vote = await erik.say(env.falun, f"!rösta {poll} 1")
        refusal = await until(
            lambda: [
                e
                for e in env.bot_events(env.falun)
                if e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                == open_vote
            ],
            what="the refusal",
        )
        assert "direktmeddelande" in refusal[0]["content"]["body"]

        def removed() -> bool:
            event = synapse.request(
                "GET",
                f"/_matrix/client/v3/rooms/{env.falun}/event/{open_vote}",
                token=env.anna.account.access_token,
            )
            return "body" not in event["content"]

        await until(removed, what="Erik's message removed")

        # Discord: buttons, each answered to the voter alone; Anna changes her mind.
        await s.click(mora, bertil, "vote:1")
        votes.vote("bertil", "mora", ["1"])
        await s.click(mora, anna_d, "vote:3")
        await s.click(mora, anna_d, "vote:2")
        votes.vote("anna-d", "mora", ["2"])

        def receipts() -> list[Recorded]:
            return [r for r in s.recorded(FOLLOWUP) if "Kvittokod" in r.json.get("content", "")]

        private = await until(lambda: len(receipts()) == 3 and receipts(), what="3 answers")
        assert all(r.json["flags"] & 64 for r in private)
        live.io.say(CONSOLE_ROOM, "gustav-7731", f"!rösta {poll} 3")
        votes.vote("gustav", "borlange", ["3"])
        await settled(live, poll, votes)

        deadline = clock.now() + timedelta(hours=2)
        await live.advance_to(deadline)
        await live.idle()
        await live.advance_to(deadline + timedelta(seconds=3))
        await until(lambda: len(env.results(poll)) == 5, 30, "the results in five rooms")
        await live.idle()
        expected = (votes.counts(3), votes.voters())
        assert env.results(poll) == dict.fromkeys(env.results(poll), expected)
        assert all(b["disabled"] for b in mora.data["components"][0]["components"])

    voters = [cecilia.user_id, erik.user_id, str(bertil.id), str(anna_d.id), "gustav-7731"]
    db = Path(env.tmp / "bot.db")
    for path in (db, db.with_name("bot.db-wal")):
        data = path.read_bytes() if path.exists() else b""
        for voter in voters:
            for form in (voter, json.dumps(voter)[1:-1]):
                assert form.encode() not in data, f"{voter} in {path.name}"
    ours = [r for r in caplog.records if r.name.startswith(("bot.", "plugins."))]
    assert ours, "the bot logged nothing at all"
    text = "\n".join(r.getMessage() for r in ours)
    for voter in voters:
        assert voter not in text, f"{voter} in the log"
