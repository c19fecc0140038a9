"""One open poll in two Matrix rooms, two Discord channels and a console room, against
the real Synapse and the Discord stand-in: votes in every form members cast them,
revotes and votes taken back, a linked person counted once, the close at an injected
deadline, and results that equal the test's own recount in every room, with the chart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.core.refs import UserRef
from plugins.polls.model import PollRecord
from tests.discord.botrun import World
from tests.discord.standin.model import Message
from tests.discord.test_polls import followups
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser
from tests.polls.live import (
    CONSOLE_ROOM,
    END,
    Ledger,
    Live,
    PollWorld,
    fake_now,
    make_world,
    member,
    respond,
    running,
    until,
)

PNG = b"\x89PNG\r\n\x1a\n"


async def settled(live: Live, poll_id: int, ledger: Ledger) -> None:
    """Until the plugin holds exactly the votes of the ledger (every cast handled)."""
    store = live.polls().store

    async def same() -> bool:
        poll = await store.get(poll_id)
        assert poll is not None
        held = sorted(await store.ballots(poll))
        return held == sorted(ledger.last().values())

    await until(same, 30, f"the votes of poll {poll_id}")


async def posted(env: PollWorld, poll_id: int) -> tuple[str, str, Message, Message]:
    """Poll `poll_id`'s posts: the Matrix start events and the Discord messages."""
    falun = await until(lambda: env.poll_start(env.falun, poll_id), what="Falun's poll")
    ludvika = await until(lambda: env.poll_start(env.ludvika, poll_id), what="Ludvika's poll")
    mora = await until(lambda: env.discord_poll(env.mora, poll_id), what="Mora's poll")
    rattvik = await until(lambda: env.discord_poll(env.rattvik, poll_id), what="Rättvik's poll")
    await until(
        lambda: any(f"Omröstning {poll_id}:" in line for line in env.output.lines()),
        what="the console's poll",
    )
    return falun["event_id"], ludvika["event_id"], mora, rattvik


async def new_poll(live: Live, env: PollWorld, command: str) -> int:
    before = len(env.created_ids())
    live.io.say(CONSOLE_ROOM, "anna", command)
    await until(lambda: len(env.created_ids()) > before, what="the poll's id")
    return env.created_ids()[before]


async def test_one_open_poll_everywhere_counted_once(
    synapse: Synapse, users: MakeUser, world: World, tmp_path: Path
) -> None:
    env = await make_world(synapse, users, world, tmp_path)
    s = env.standin
    cecilia = await member(users, env, "cecilia", [env.falun])
    erik = await member(users, env, "erik", [env.falun])
    david = await member(users, env, "david", [env.ludvika])
    bertil, anna_d = world.bertil, world.anna
    frida = s.add_user("frida")
    cecilia_d = s.add_user("cecilia-d")  # Cecilia's Discord account
    clock = fake_now()
    async with running(env, clock) as live:
        people = live.app.people
        code = await people.start_link(
            UserRef("matrix", cecilia.user_id), clock.now(), private=True
        )
        await people.complete_link(UserRef("discord", str(cecilia_d.id)), code, clock.now())
        assert await people.person_of(UserRef("discord", str(cecilia_d.id))) == (
            await people.person_of(UserRef("matrix", cecilia.user_id))
        )

        first = await new_poll(
            live, env, '!poll new "Bussresa till Falun?" Ja Nej Avstår --in all --for 2h'
        )
        menu = await new_poll(
            live,
            env,
            '!omröstning ny "Var ses vi?" Falun Mora Ludvika Rättvik Borlänge Leksand '
            "--flera 2 --i alla --längd 2h",
        )
        f_falun, f_ludvika, f_mora, f_rattvik = await posted(env, first)
        m_falun, _, m_mora, m_rattvik = await posted(env, menu)
        # Discord: the first natively, the second (six answers, two of them) as a menu.
        assert f_mora.data["poll"]["allow_multiselect"] is False
        assert [a["poll_media"]["text"] for a in f_mora.data["poll"]["answers"]] == [
            "Ja",
            "Nej",
            "Avstår",
        ]
        [select] = m_mora.data["components"][0]["components"]
        assert (select["type"], select["max_values"]) == (3, 2)

        votes = Ledger()
        # Matrix, Element's form and the stable one; a revote, a vote taken back.
        await respond(cecilia, env.falun, f_falun, ["1"])
        votes.vote("cecilia", "falun", ["1"])
        await respond(env.anna, env.falun, f_falun, ["2"], stable=True)
        await respond(env.anna, env.falun, f_falun, ["3"])
        votes.vote("anna", "falun", ["3"])
        await respond(erik, env.falun, f_falun, ["1"])
        await respond(erik, env.falun, f_falun, [])
        await respond(david, env.ludvika, f_ludvika, ["2"], stable=True)
        votes.vote("david", "ludvika", ["2"])
        await settled(live, first, votes)
        # Discord's native votes: Bertil changes his mind, Anna takes hers back.
        await s.poll_vote(f_mora, bertil, 1)
        await s.poll_vote(f_mora, bertil, 2)
        votes.vote("bertil", "mora", ["2"])
        await s.poll_vote(f_mora, anna_d, 3)
        await s.poll_vote(f_mora, anna_d, 3, add=False)
        await s.poll_vote(f_rattvik, frida, 1)
        votes.vote("frida", "rattvik", ["1"])
        # Cecilia again, from her Discord account: her latest vote counts, once.
        await s.poll_vote(f_mora, cecilia_d, 2)
        votes.vote("cecilia", "mora", ["2"])
        # The console, by text.
        live.io.say(CONSOLE_ROOM, "gustav", f"!rösta {first} 2")
        votes.vote("gustav", "borlange", ["2"])
        live.io.say(CONSOLE_ROOM, "hanna", f"!vote {first} 1")
        live.io.say(CONSOLE_ROOM, "hanna", f"!vote {first} 3")
        votes.vote("hanna", "borlange", ["3"])
        await settled(live, first, votes)

        picks = Ledger()
        await respond(cecilia, env.falun, m_falun, ["1", "4"])
        picks.vote("cecilia", "falun", ["1", "4"])
        await s.select(m_mora, bertil, "vote-select", ["6", "2"])
        await s.select(m_mora, bertil, "vote-select", ["6"])
        picks.vote("bertil", "mora", ["6"])
        await s.select(m_rattvik, frida, "vote-select", ["5"])
        await s.select(m_rattvik, frida, "vote-select", [])
        live.io.say(CONSOLE_ROOM, "hanna", f"!rösta {menu} 3,5")
        picks.vote("hanna", "borlange", ["3", "5"])
        await settled(live, menu, picks)
        # Each pick was answered to the picker alone.
        answers = await until(lambda: len(followups(s)) >= 4 and followups(s), what="answers")
        assert len(answers) == 4

        # The deadline, on the injected clock; then the votes on their way settle.
        deadline = clock.now() + timedelta(hours=2)
        await live.advance_to(deadline)
        await live.idle()
        await live.advance_to(deadline + timedelta(seconds=3))
        await until(lambda: len(env.results(first)) == 5, 30, "the results in five rooms")
        await until(lambda: len(env.results(menu)) == 5, 30, "the menu's results in five rooms")
        closed = await live.polls().store.get(first)
        assert isinstance(closed, PollRecord) and closed.state == "closed"

        def charts(room: str) -> int:
            events = env.bot_events(room)
            return sum(e["content"].get("msgtype") == "m.image" for e in events)

        # Each chart follows its results: under load it may reach the clients later.
        await until(lambda: charts(env.falun) >= 2 and charts(env.ludvika) >= 2, 30, "charts")

    for poll_id, ledger, answers_n in ((first, votes, 3), (menu, picks, 6)):
        expected = (ledger.counts(answers_n), ledger.voters())
        assert env.results(poll_id) == dict.fromkeys(env.results(poll_id), expected)
    assert env.results(first)[f"discord:{env.mora.id}"] == ({"1": 1, "2": 4, "3": 2}, 7)

    # What Discord itself holds agrees with the recount of its native votes.
    mora_votes = s.polls[f_mora.id]
    assert s.polls[f_mora.id].finalized and s.polls[f_rattvik.id].finalized
    assert {a: len(v) for a, v in mora_votes.votes.items() if v} == {2: 2}
    assert m_mora.data["components"][0]["components"][0]["disabled"] is True

    # Matrix: the end comes from the account that started the poll, so Element draws
    # its results; the chart follows the results in every room.
    for room, start in ((env.falun, f_falun), (env.ludvika, f_ludvika)):
        ends = env.bot_events(room, END)
        assert any(e["content"]["m.relates_to"]["event_id"] == start for e in ends)
        images = [e for e in env.bot_events(room) if e["content"].get("msgtype") == "m.image"]
        assert len(images) == 2  # one per poll
        assert images[0]["content"]["info"]["mimetype"] == "image/png"
        data = synapse.download(images[0]["content"]["url"], env.anna.account.access_token)
        assert data.startswith(PNG)
    for channel in (env.mora, env.rattvik):
        results = [
            m
            for m in s.channel_messages(channel.id)
            if "Resultat för omröstning" in str(m.data["content"])
        ]
        assert len(results) == 2
        assert all(
            [a["filename"] for a in m.data["attachments"]]
            and m.data["attachments"][0]["filename"].endswith(".png")
            for m in results
        )
