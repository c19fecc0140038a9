"""The bot as a process, killed with SIGKILL in the middle of a burst of votes on Matrix
and Discord and started again: votes cast while it was down count (Matrix through the
sync catch-up, Discord through the voter lists read over REST), none counts twice."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.bridge.faults import BotProcess
from tests.discord.botrun import World
from tests.discord.standin.model import Message, User
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser
from tests.matrix.users import User as MatrixUser
from tests.polls.live import Ledger, PollWorld, make_world, member, respond, until

_CREATED = re.compile(r"Omröstning (\d+) är skapad")


async def matrix_burst(
    env: PollWorld, ledger: Ledger, voters: list[tuple[MatrixUser, str, str, str]], rounds: int
) -> None:
    """Each voter votes `rounds` times in turn (1, 2, 3, 1, ...), the last one counting."""

    async def one(user: MatrixUser, room: str, assoc: str, start: str, offset: int) -> None:
        for n in range(rounds):
            answer = str((n + offset) % 3 + 1)
            await respond(user, room, start, [answer], stable=n % 2 == 1)
            ledger.vote(user.user_id, assoc, [answer])

    await asyncio.gather(*(one(u, r, a, e, i) for i, (u, r, a, e) in enumerate(voters)))


async def discord_burst(
    env: PollWorld, ledger: Ledger, voters: list[tuple[User, Message, str]], answer: int
) -> None:
    for user, msg, assoc in voters:
        await env.standin.poll_vote(msg, user, answer)
        ledger.vote(f"discord:{user.id}", assoc, [str(answer)])


async def test_votes_survive_a_sigkill_mid_burst(
    synapse: Synapse, users: MakeUser, world: World, tmp_path: Path
) -> None:
    env = await make_world(synapse, users, world, tmp_path, console=False)
    s = env.standin
    falun_members = [await member(users, env, f"f{i}", [env.falun]) for i in range(3)]
    ludvika_members = [await member(users, env, f"l{i}", [env.ludvika]) for i in range(2)]
    discord_voters = [s.add_user(f"d{i}") for i in range(40)]
    bot = BotProcess(env.write_config(), tmp_path)
    bot.launch()
    try:
        await bot.ready()
        await env.anna.wait_joined(env.ludvika, env.bot.user_id)
        await env.anna.say(env.falun, '!poll new "Ny lokal?" Ja Nej Avstår --in all --for 1h')
        reply = await until(
            lambda: [
                m[1]
                for e in env.bot_events(env.falun)
                if (m := _CREATED.search(str(e["content"].get("body", ""))))
            ],
            what="the poll's id",
        )
        poll = int(reply[0])
        f_start = (await until(lambda: env.poll_start(env.falun, poll), what="Falun"))["event_id"]
        l_start = (await until(lambda: env.poll_start(env.ludvika, poll), what="Ludvika"))[
            "event_id"
        ]
        mora = await until(lambda: env.discord_poll(env.mora, poll), what="Mora's poll")
        rattvik = await until(lambda: env.discord_poll(env.rattvik, poll), what="Rättvik")
        matrix_voters = [(u, env.falun, "falun", f_start) for u in falun_members] + [
            (u, env.ludvika, "ludvika", l_start) for u in ludvika_members
        ]
        placed = [
            (user, mora if i % 2 == 0 else rattvik, "mora" if i % 2 == 0 else "rattvik")
            for i, user in enumerate(discord_voters)
        ]
        ledger = Ledger()

        # The burst; the kill lands in the middle of it.
        await asyncio.gather(
            matrix_burst(env, ledger, matrix_voters, 4),
            discord_burst(env, ledger, placed[:20], 1),
        )
        bot.kill()
        assert bot.process is not None
        bot.process.wait(10)
        # While the bot is down: more votes, and some change their minds.
        await matrix_burst(env, ledger, matrix_voters[:3], 3)
        await discord_burst(env, ledger, placed[20:], 2)
        await discord_burst(env, ledger, placed[:5], 3)  # single choice: 1 becomes 3
        bot.launch()
        await bot.ready()
        # And after the restart (Discord sends no events for a poll posted before it).
        await discord_burst(env, ledger, placed[5:8], 2)
        await env.anna.say(env.falun, f"!poll close {poll}")
        await until(lambda: len(env.results(poll)) == 4, 60, "the results in four rooms")
    finally:
        bot.stop()
    expected = (ledger.counts(3), ledger.voters())
    assert ledger.voters() == 45
    assert env.results(poll) == dict.fromkeys(env.results(poll), expected), bot.log()[-3000:]
    assert "Traceback" not in bot.log(2)
