"""A whole poll on the console (and a Matrix room beside it): votes by text and natively,
a revote, a vote taken back, a linked person, a restart between votes, the close at the
deadline, and results that equal an independent recount of the votes cast here."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from PIL import Image

from bot.core.refs import RoomRef, UserRef
from tests.polls.conftest import START
from tests.polls.support import Bot, poll_id_of

MATRIX_FALUN = RoomRef("matrix", "!falun:example.org")
ANSWERS = ("Ja", "Nej", "Avstår")
ROOM_OF = {"falun": "falun", "falun2": "falun", "mora": "mora", "rattvik": "rattvik"}


@dataclass
class Recount:
    """What the votes cast in the test add up to, counted here without the plugin."""

    votes: dict[str, tuple[str, tuple[str, ...]]]

    def cast(self, person: str, association: str, answers: tuple[str, ...]) -> None:
        if answers:
            self.votes[person] = (association, answers)
        else:
            self.votes.pop(person, None)

    def counts(self, association: str | None = None) -> Counter[str]:
        found: Counter[str] = Counter()
        for assoc, answers in self.votes.values():
            if association is None or assoc == association:
                found.update(answers)
        return found

    def voters(self, association: str | None = None) -> int:
        return sum(1 for a, _ in self.votes.values() if association in (None, a))


def answer_lines(counts: Counter[str], voters: int) -> list[str]:
    return [
        f"{n}. {label}: {counts[str(n)]} ({round(100 * counts[str(n)] / voters)} %)"
        for n, label in enumerate(ANSWERS, 1)
    ]


def group_line(name: str, counts: Counter[str], voters: int) -> str:
    per = " · ".join(f"{label} {counts[str(n)]}" for n, label in enumerate(ANSWERS, 1))
    return f"{name} ({voters} röstande): {per}"


async def test_a_poll_across_associations_from_start_to_results(bot: Bot) -> None:
    await bot.say(
        "styrelse",
        "anna",
        '!omröstning ny "Budget 2027?" "Ja" "Nej" "Avstår" --i falun,mora,rattvik --längd 2d',
    )
    poll = poll_id_of(bot.last("styrelse"))
    # Ulla has a console and a Matrix account, linked: one person.
    ulla_console, ulla_matrix = UserRef("console", "ulla"), UserRef("matrix", "@ulla:example.org")
    code = await bot.running.people.start_link(ulla_console, START, private=True)
    link = await bot.running.people.complete_link(ulla_matrix, code, START)
    assert link.person is not None
    recount = Recount({})

    async def text(room: str, user: str, choice: str) -> None:
        await bot.say(room, user, f"!rösta {poll} {choice}")
        assert f"Din röst i omröstning {poll} är registrerad" in bot.last(room)
        recount.cast(user, ROOM_OF[room], tuple(choice.split(",")))

    await text("falun", "bo", "1")
    await text("falun", "cilla", "1")
    await text("falun", "dan", "2")
    await text("falun", "ulla", "3")
    await text("falun2", "erik", "1")
    await text("mora", "fia", "2")
    await bot.advance(timedelta(hours=1))
    await bot.restart()  # the same database: nothing is lost
    await text("mora", "gun", "2")
    await text("mora", "hans", "1")
    await text("rattvik", "ida", "3")
    await text("rattvik", "jon", "1")
    await text("falun2", "bo", "2")  # a revote, from another room of Falun: the latest counts
    # Cilla takes her vote back on the poll itself (an empty selection).
    await bot.native_vote(poll, "falun", "cilla", [])
    recount.cast("cilla", "falun", ())
    # Ulla votes again on Matrix: the same person, so it replaces her console vote.
    await bot.advance(timedelta(minutes=1))
    await bot.native_vote(poll, MATRIX_FALUN, ulla_matrix, ["2"])
    recount.cast("ulla", "falun", ("2",))
    assert not [t for t in bot.matrix.texts() if "registrerad" in t]  # shown on the poll itself

    await bot.say("styrelse", "anna", f"!omröstning resultat {poll}")
    so_far = bot.last("styrelse")
    assert "\n".join(answer_lines(recount.counts(), recount.voters())) in so_far

    await bot.advance_to(START + timedelta(days=2, seconds=5))
    await bot.say("rattvik", "kim", f"!rösta {poll} 1")
    assert "är stängd; rösten räknades inte" in bot.last("rattvik")

    # Rättvik's 2 voters are folded into "others"; 2 would still show them, so the
    # smallest association shown (Mora, 3) is folded in too.
    assert recount.voters("rattvik") == 2 and recount.voters("mora") < recount.voters("falun")
    others = recount.counts("mora") + recount.counts("rattvik")
    expected = "\n".join(
        [
            f"📊 Resultat för omröstning {poll}: Budget 2027?",
            *answer_lines(recount.counts(), recount.voters()),
            f"Antal som röstat: {recount.voters()}.",
            "Per förening:",
            group_line("Falun", recount.counts("falun"), recount.voters("falun")),
            group_line(
                "Övriga föreningar", others, recount.voters("mora") + recount.voters("rattvik")
            ),
        ]
    )
    for room in ("falun", "falun2", "mora", "rattvik"):
        (posted,) = [t for t in bot.texts(room) if t.startswith("📊 Resultat")]
        assert posted == expected + "\n📎 omrostning-1.png"
        (message,) = [m for m in bot.messages(room) if m.text.startswith("📊 Resultat")]
        (chart,) = message.attachments
        assert chart.content_type == "image/png" and chart.data is not None
        assert chart.data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(chart.data)) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 100
    matrix_results = [s for s in bot.matrix.sent if s.text.startswith("📊 Resultat")]
    assert len(matrix_results) == 1 and matrix_results[0].message is not None
    assert matrix_results[0].message.attachments[0].filename == "omrostning-1.png"
    assert [s.action for s in bot.matrix.sent].count("close_poll") == 1
    # Only the folded tally is kept: no vote, no voter.
    db = bot.running.db
    for table in ("polls_votes", "polls_seen", "polls_ballots"):
        assert await db.fetchval(f"SELECT COUNT(*) FROM {table}") == 0
    assert await db.fetchval("SELECT creator FROM polls_polls") is None
    await bot.say("mora", "fia", f"!omröstning resultat {poll}")
    assert bot.last("mora") == expected


async def test_votes_of_two_accounts_become_one_when_they_are_linked(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Fika?" "Ja" "Nej"')
    await bot.say("falun", "ulla", "!rösta 1 1")
    await bot.advance(timedelta(minutes=5))
    post = await bot.post_of(1, MATRIX_FALUN)
    assert post.room == MATRIX_FALUN
    await bot.native_vote(1, MATRIX_FALUN, UserRef("matrix", "@ulla:example.org"), ["2"])
    await bot.say("falun", "anna", "!omröstning resultat 1")
    assert "Antal som röstat: 2." in bot.last("falun")
    code = await bot.running.people.start_link(UserRef("console", "ulla"), START, private=True)
    await bot.running.people.complete_link(UserRef("matrix", "@ulla:example.org"), code, START)
    await bot.say("falun", "anna", "!omröstning resultat 1")
    counted = bot.last("falun")
    assert "Antal som röstat: 1." in counted
    assert "1. Ja: 0 (0 %)\n2. Nej: 1 (100 %)" in counted  # her latest vote
