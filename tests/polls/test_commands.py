"""The poll commands one by one, and every bad input: a clear reply in the user's
language, and nothing stored changes."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from bot.core.refs import RoomRef
from tests.polls.conftest import START
from tests.polls.support import Bot, poll_id_of

NEW = '!omröstning ny "Vilken dag?" "Måndag" "Tisdag" "Onsdag"'


async def stored(bot: Bot) -> tuple[int, int, list[str]]:
    """Polls, votes and the polls' scheduler rows: what a refusal must leave as it was."""
    db = bot.running.db
    polls = int(await db.fetchval("SELECT COUNT(*) FROM polls_polls"))
    votes = int(await db.fetchval("SELECT COUNT(*) FROM polls_votes"))
    jobs = [key for key, _ in await bot.running.scheduler.pending("polls:")]
    return polls, votes, jobs


async def test_poll_new_posts_into_every_room_of_the_association(bot: Bot) -> None:
    await bot.say("falun", "anna", NEW)
    reply = bot.last("falun")
    assert reply.startswith("Omröstning 1 är skapad och läggs ut i 3 rum (Falun).")
    assert "stänger lördag 28 november kl. 13.00" in reply  # the default 3d, local time
    for room in ("falun", "falun2"):
        post = [t for t in bot.texts(room) if t.startswith("📊 Omröstning 1")]
        assert len(post) == 1
        assert "rösta 1 <nummer>" in post[0]
        assert post[0].endswith("\n  1. Måndag\n  2. Tisdag\n  3. Onsdag")
    native = bot.messages("falun2")[0].poll
    assert native is not None
    assert [(a.id, a.text) for a in native.answers] == [
        ("1", "Måndag"),
        ("2", "Tisdag"),
        ("3", "Onsdag"),
    ]
    assert native.max_selections == 1 and not native.secret and native.hours == 72
    matrix = [s for s in bot.matrix.sent if s.action == "send"]
    assert [s.room for s in matrix] == [RoomRef("matrix", "!falun:example.org")]
    assert bot.texts("mora") == []
    assert (await stored(bot))[2] == ["polls:deadline:1"]


async def test_poll_new_with_every_flag(bot: Bot) -> None:
    await bot.say(
        "styrelse",
        "anna",
        '!poll new "Which?" "A" "B" "C" --multi 2 --secret --until "2026-12-01 18:00"'
        " --in mora,leksand",
    )
    reply = bot.last("styrelse")
    assert "Omröstning 1 är skapad och läggs ut i 2 rum (Mora, Leksand)." in reply
    assert "tisdag 1 december kl. 18.00" in reply
    mora = bot.last("mora")
    assert mora.startswith("🔒 Hemlig omröstning 1: Which?")
    assert "upp till 2 alternativ" in mora
    assert "kvittokod" in mora
    assert bot.last("leksand").startswith("🔒 Secret poll 1: Which?")  # Leksand reads English
    native = bot.messages("mora")[0].poll
    assert native is not None and native.secret and native.max_selections == 2
    await bot.say("styrelse", "anna", '!poll new "Alla?" "Ja" "Nej" --in all --for 2h')
    assert "läggs ut i 6 rum (Falun, Mora, Leksand, Rättvik)" in bot.last("styrelse")


async def test_bad_input_to_poll_new_is_refused_and_nothing_is_stored(bot: Bot) -> None:
    before = await stored(bot)
    many = " ".join(f'"Svar {n}"' for n in range(1, 22))
    cases = [
        (f'!omröstning ny "Fråga?" {many}', "högst 20 svarsalternativ (du gav 21)"),
        ('!omröstning ny "Fråga?" "Ja"', "minst 2 svarsalternativ"),
        ('!omröstning ny "Fråga?" "Ja" "Nej" " ja "', "Svarsalternativ 3 (”ja”) är samma"),
        ('!omröstning ny "   " "Ja" "Nej"', "får inte vara tomt"),  # the framework's check
        ('!omröstning ny "\x00\x01" "Ja" "Nej"', "Frågan får inte vara tom"),
        ('!omröstning ny "Fråga?" "Ja" "Nej" --flera 3', "--flera 3 går inte"),
        ('!omröstning ny "Fråga?" "Ja" "Nej" --flera 0', "--flera 0 går inte"),
        ('!omröstning ny "Fråga?" "Ja" "Nej" --till "2026-11-24 10:00"', "redan varit"),
        ('!omröstning ny "Fråga?" "Ja" "Nej" --längd 366d', "högst 365 dagar"),
        (
            '!omröstning ny "Fråga?" "Ja" "Nej" --längd 1d --till "2026-12-01 10:00"',
            "antingen --längd eller --till",
        ),
        ('!omröstning ny "Fråga?" "Ja" "Nej" --längd snart', "ingen tidslängd"),
        ('!omröstning ny "Fråga?" "Ja" "Nej" --i okänd', "Föreningen ”okänd” finns inte"),
    ]
    for command, expected in cases:
        await bot.say("falun", "anna", command)
        assert expected in bot.last("falun"), command
    await bot.say("styrelse", "anna", '!omröstning ny "Fråga?" "Ja" "Nej"')
    assert "hör inte till någon förening" in bot.last("styrelse")
    await bot.say("falun", "bo", NEW)
    assert bot.last("falun").startswith("Bara organisatörer får använda")
    await bot.say("leksand", "anna", '!poll new "Q?" "Yes" "Yes"')
    assert "is the same as answer 1" in bot.last("leksand")  # in the room's language
    assert await stored(bot) == before
    assert not [t for t in bot.texts() if t.startswith(("📊", "🔒"))]


async def test_poll_ids_that_are_no_poll(bot: Bot) -> None:
    await bot.say("falun", "bo", "!omröstning resultat 7")
    assert bot.last("falun").startswith("Det finns ingen omröstning med id 7.")
    await bot.say("falun", "bo", "!omröstning resultat sju")
    assert "”sju” är inget heltal" in bot.last("falun")
    await bot.say("falun", "bo", "!rösta 99999999999999999999999999 1")
    assert "ingen omröstning med id 99999999999999999999999999" in bot.last("falun")
    await bot.say("falun", "anna", "!omröstning stäng -3")
    assert "ingen omröstning med id -3" in bot.last("falun")
    await bot.say("falun", "bo", "!omröstning kontrollera 12345678901234567890 ABCD-EFGH")
    assert "ingen omröstning med id" in bot.last("falun")


async def test_votes_that_are_refused(bot: Bot) -> None:
    await bot.say("falun", "anna", NEW + " --flera 2")
    poll_id = poll_id_of(bot.last("falun"))
    refusals = [
        ("falun", f"!rösta {poll_id} 4", "Alternativ 4 finns inte i omröstning 1"),
        ("falun", f"!rösta {poll_id} 0", "Alternativ 0 finns inte"),
        ("falun", f"!rösta {poll_id} 1,2,3", "högst 2 alternativ"),
        ("mora", f"!rösta {poll_id} 1", "finns inte i det här rummet"),
        ("dm", f"!rösta {poll_id} 1", "Jag hittar dig inte i något av rummen"),
        ("falun", f"!rösta {poll_id} ett", "inga alternativnummer"),
    ]
    for room, command, expected in refusals:
        await bot.say(room, "bo", command)
        assert expected in bot.last(room), command
    assert (await stored(bot))[1] == 0
    await bot.say("falun", "bo", f"!rösta {poll_id} 1,3")
    assert "registrerad för Falun: 1. Måndag, 3. Onsdag" in bot.last("falun")
    assert (await stored(bot))[1] == 1


async def test_close_by_command_then_a_second_close_and_a_late_vote(bot: Bot) -> None:
    await bot.say("falun", "anna", NEW)
    await bot.say("falun", "bo", "!rösta 1 2")
    await bot.say("falun", "bo", "!omröstning stäng 1")
    assert "Bara den som skapade omröstning 1 eller en organisatör" in bot.last("falun")
    await bot.say("falun", "anna", "!omröstning stäng 1")
    assert bot.last("falun") == "Omröstning 1 är stängd. Resultatet postas strax i 3 rum."
    assert "Omröstning 1 (Vilken dag?) är stängd." in bot.texts("falun2")[-1]
    ended = [s for s in bot.matrix.sent if s.action == "close_poll"]
    assert len(ended) == 1 and ended[0].target is not None
    await bot.say("falun", "cilla", "!rösta 1 1")
    assert "Omröstning 1 är stängd; rösten räknades inte." in bot.last("falun")
    await bot.say("falun", "anna", "!omröstning stäng 1")
    assert bot.last("falun") == "Omröstning 1 är redan stängd."
    await bot.advance(timedelta(seconds=5))
    results = bot.last("falun2")
    assert results.startswith("📊 Resultat för omröstning 1: Vilken dag?")
    assert "2. Tisdag: 1 (100 %)" in results
    assert "Antal som röstat: 1." in results
    assert [k for k, _ in await bot.running.scheduler.pending("polls:")] == []
    await bot.say("falun", "anna", "!omröstning stäng 1")
    assert bot.last("falun") == "Omröstning 1 är redan stängd."


async def test_results_list_remind_and_export(bot: Bot) -> None:
    await bot.say("falun", "anna", NEW + " --i falun,mora")
    await bot.say("falun", "anna", '!omröstning ny "Kaffe?" "Ja" "Nej" --hemlig')
    for user, room, choice in (("bo", "falun", 1), ("cilla", "falun2", 1), ("dan", "mora", 3)):
        await bot.say(room, user, f"!rösta 1 {choice}")
    await bot.say("mora", "erik", "!omröstning resultat 1")
    results = bot.last("mora")
    assert results.startswith("📊 Hittills i omröstning 1: Vilken dag? (stänger")
    assert "1. Måndag: 2 (67 %)\n2. Tisdag: 0 (0 %)\n3. Onsdag: 1 (33 %)" in results
    assert "Ingen uppdelning per förening" in results
    await bot.say("falun", "bo", "!omröstning resultat 2")
    assert "hemlig: resultatet visas först när den är stängd" in bot.last("falun")
    await bot.say("mora", "erik", "!omröstning lista")
    listing = bot.last("mora")
    assert "1. Vilken dag? – stänger lördag 28 november kl. 13.00, 3 har röstat" in listing
    assert "Kaffe" not in listing  # posted in Falun's rooms only
    await bot.say("falun", "erik", "!omröstning lista")
    assert "2. 🔒 Kaffe? – stänger" in bot.last("falun")
    await bot.say("rattvik", "erik", "!omröstning lista")
    assert bot.last("rattvik") == "Inga öppna omröstningar här just nu."

    await bot.say("falun", "bo", "!omröstning påminn 1")
    assert bot.last("falun").startswith("Bara organisatörer")
    await bot.say("styrelse", "anna", "!omröstning påminn 1")
    assert bot.last("styrelse") == "Påminnelsen om omröstning 1 går ut i 4 rum."
    reminder = bot.last("mora")
    assert reminder.startswith("📣 Påminnelse: omröstning 1 (Vilken dag?) stänger")
    assert "Hittills har 3 röstat: Falun 2, Mora 1." in reminder
    for user in ("bo", "cilla", "dan"):
        assert user not in reminder

    await bot.say("styrelse", "anna", "!omröstning export 1")
    sent = bot.messages("styrelse")[-1]
    assert sent.ephemeral and sent.text.startswith("Resultatet av omröstning 1 som CSV")
    (attachment,) = sent.attachments
    assert attachment.filename == "omrostning-1.csv" and attachment.content_type == "text/csv"
    assert attachment.data is not None
    rows = list(csv.reader(io.StringIO(attachment.data.decode("utf-8"))))
    assert rows[0] == ["grupp", "röstande", "nummer", "alternativ", "antal", "andel"]
    assert rows[1:] == [
        ["alla", "3", "1", "Måndag", "2", "0.6667"],
        ["alla", "3", "2", "Tisdag", "0", "0.0000"],
        ["alla", "3", "3", "Onsdag", "1", "0.3333"],
    ]
    await bot.say("styrelse", "anna", "!omröstning export 2")
    assert "hemlig: resultatet visas först" in bot.last("styrelse")


async def test_export_defuses_spreadsheet_formulas(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Formel?" "=1+1" "@SUM(A1)" "vanlig"')
    await bot.say("falun", "bo", "!rösta 1 1")
    await bot.say("falun", "anna", "!omröstning export 1")
    data = bot.messages("falun")[-1].attachments[0].data
    assert data is not None
    answers = [row[3] for row in csv.reader(io.StringIO(data.decode()))][1:]
    assert answers == ["'=1+1", "'@SUM(A1)", "vanlig"]


async def test_a_poll_closes_at_its_deadline(bot: Bot) -> None:
    await bot.say("mora", "anna", '!omröstning ny "Snart?" "Ja" "Nej" --längd 90m')
    await bot.say("mora", "bo", "!rösta 1 1")
    await bot.advance_to(START + timedelta(minutes=89))
    assert not any("Resultat" in t for t in bot.texts("mora"))
    await bot.advance_to(START + timedelta(minutes=90, seconds=5))
    assert bot.texts("mora")[-2].startswith("Omröstning 1 (Snart?) är stängd")
    assert bot.last("mora").startswith("📊 Resultat för omröstning 1: Snart?")
    assert "(försenat)" not in bot.last("mora")


async def test_a_console_only_poll_is_counted_at_once_when_closed(bot: Bot) -> None:
    # No platform of its rooms reports votes late: no wait before the count, so a demo's
    # `poll close` shows the results before the input ends.
    await bot.say("mora", "anna", '!omröstning ny "Fika?" "Ja" "Nej"')
    await bot.say("mora", "bo", "!rösta 1 1")
    await bot.say("mora", "anna", "!omröstning stäng 1")
    results = [t for t in bot.texts("mora") if t.startswith("📊 Resultat för omröstning 1")]
    assert len(results) == 1 and "1. Ja: 1 (100 %)" in results[0]
    await bot.advance(timedelta(seconds=10))
    assert len([t for t in bot.texts("mora") if t.startswith("📊 Resultat")]) == 1
