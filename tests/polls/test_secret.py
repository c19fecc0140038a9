"""Secret ballots: receipts, revotes, the close that destroys who voted, the database file
scanned byte by byte afterwards, and logs that never name a voter."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.clock import FakeClock
from bot.core.refs import RoomRef, UserRef
from plugins.polls.storage import voter_hmac
from tests.engines import Target
from tests.polls.conftest import START
from tests.polls.support import Bot, make_settings, poll_id_of

ULRIKA, BERTIL, CECILIA, DMITRI = (
    "voter-ulrika-7331",
    "voter-bertil-5521",
    "voter-cecilia-9902",
    "voter-dmitri-4410",
)
VOTERS = (ULRIKA, BERTIL, CECILIA, DMITRI)
CODE = re.compile(r"Kvittokod: ([A-Z0-9]{4}-[A-Z0-9]{4})")


def receipt(text: str) -> str:
    found = CODE.search(text)
    assert found, text
    return found[1]


@pytest.fixture
async def strict(tmp_path: Path, db_target: Target) -> AsyncIterator[Bot]:
    """A bot where, as on Matrix, a written vote in a shared room is read by the room."""
    settings = make_settings(tmp_path, "secret_votes_in_rooms = []", database=db_target)
    running = await Bot(settings, FakeClock(START)).start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_secret_poll_leaves_no_voter_behind(
    bot: Bot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As `setup_logging` has it: aiosqlite would log every statement's parameters.
    caplog.set_level(logging.WARNING, logger="aiosqlite")
    bot.members[UserRef("console", ULRIKA)] = [RoomRef("console", "falun")]
    await bot.say(
        "styrelse",
        "anna",
        '!omröstning ny "Ny ordförande?" "Alva" "Bengt" --hemlig --i falun,mora --längd 1d',
    )
    poll = poll_id_of(bot.last("styrelse"))
    assert "Rösta genom att skriva: rösta 1 <nummer>." in bot.last("falun")

    # Ulrika writes to the bot directly: counted for Falun, where she is a member.
    await bot.say("dm", ULRIKA, f"!rösta {poll} 1")
    first = bot.last("dm")
    assert "hemliga röst i omröstning 1 är registrerad för Falun: 1. Alva." in first
    old_code = receipt(first)
    await bot.advance(timedelta(minutes=3))
    await bot.say("dm", ULRIKA, f"!rösta {poll} 2")
    new_code = receipt(bot.last("dm"))
    assert new_code != old_code
    # Dmitri is in none of the poll's rooms.
    await bot.say("dm", DMITRI, f"!rösta {poll} 1")
    assert "Jag hittar dig inte i något av rummen" in bot.last("dm")
    # Bertil votes in his room (the console shows the command to no one else), then
    # clicks buttons: the same answer again takes it back, another one is a new ballot.
    await bot.say("falun", BERTIL, f"!rösta {poll} 1")
    bertil_first = receipt(bot.last("falun"))
    await bot.native_vote(poll, "falun", BERTIL, ["1"], toggle=True, origin=True)
    assert bot.last("falun") == "Din röst i omröstning 1 är borttagen."
    await bot.native_vote(poll, "falun2", BERTIL, ["2"], toggle=True, origin=True)
    bertil_code = receipt(bot.last("falun2"))
    assert bot.messages("falun2")[-1].ephemeral
    # Cecilia votes with a button in Mora.
    await bot.native_vote(poll, "mora", CECILIA, ["1"], toggle=True, origin=True)
    cecilia_code = receipt(bot.last("mora"))

    await bot.say("mora", "erik", f"!omröstning resultat {poll}")
    assert "hemlig: resultatet visas först" in bot.last("mora")
    await bot.say("dm", ULRIKA, f"!omröstning kontrollera {poll} {new_code}")
    assert "inte stängd och räknad än" in bot.last("dm")

    # What the database holds while the poll runs, to look for after the close.
    db = bot.running.db
    key_hex = str(await db.fetchval("SELECT ballot_key FROM polls_polls WHERE id = ?", (poll,)))
    hmacs = [str(v) for (v,) in await db.fetchall("SELECT voter FROM polls_ballots")]
    assert len(hmacs) == 3
    key = bytes.fromhex(key_hex)
    assert sorted(hmacs) == sorted(voter_hmac(key, f"console:{v}") for v in VOTERS[:3])

    await bot.say("styrelse", "anna", f"!omröstning stäng {poll}")
    await bot.advance(timedelta(seconds=5))
    results = [t for t in bot.texts("mora") if t.startswith("📊 Resultat")][-1]
    assert "1. Alva: 1 (33 %)\n2. Bengt: 2 (67 %)\nAntal som röstat: 3." in results
    assert "Ingen uppdelning per förening" in results  # Falun 2 and Mora 1: both too small

    checks = [
        (old_code, "Ingen räknad röst i omröstning 1 har den koden."),
        (bertil_first, "Ingen räknad röst i omröstning 1 har den koden."),
        (new_code, "räknades i omröstning 1: 2. Bengt."),
        (new_code.lower().replace("-", ""), "räknades i omröstning 1: 2. Bengt."),
        (bertil_code, "räknades i omröstning 1: 2. Bengt."),
        (cecilia_code, "räknades i omröstning 1: 1. Alva."),
        ("NOPE-CODE", "Ingen räknad röst"),
    ]
    for code, expected in checks:
        await bot.say("dm", ULRIKA, f"!omröstning kontrollera {poll} {code}")
        assert expected in bot.last("dm"), code
    await bot.advance(timedelta(minutes=2))  # the answers to the checks are forgotten too

    files = [tmp_path / "bot.db", tmp_path / "bot.db-wal"]
    data = b"".join(p.read_bytes() for p in files if p.exists())
    needles = [key_hex, *hmacs, old_code, new_code, bertil_code, cecilia_code]
    needles += [v for voter in VOTERS for v in (voter, f"console:{voter}")]
    for needle in needles:
        assert needle.encode() not in data, needle
        assert needle.encode("utf-16-le") not in data, needle
    assert key not in data
    assert not [h for h in hmacs if bytes.fromhex(h) in data]
    outbox = await db.fetchall("SELECT key FROM outbox WHERE key LIKE 'poll:1:ack:%'")
    assert outbox == []
    for record in caplog.records:
        message = record.getMessage()
        assert not [v for v in VOTERS if v in message], message


async def test_a_secret_vote_written_where_the_room_reads_it_is_refused(strict: Bot) -> None:
    bot = strict
    await bot.say("falun", "anna", '!omröstning ny "Hemligt?" "Ja" "Nej" --hemlig')
    assert "rösta 1 <nummer>" in bot.last("falun2")
    await bot.say("falun", "bo", "!rösta 1 2")
    assert "Omröstning 1 är hemlig, så den röstar man inte på här" in bot.last("falun")
    assert bot.console is not None and len(bot.console.deleted) == 1
    # A native response in the room is an event everyone reads: not a ballot either.
    await bot.native_vote(1, "falun2", "cilla", ["1"])
    assert "svar här i rummet syns för alla och räknas inte" in bot.last("falun2")
    assert await bot.running.db.fetchval("SELECT COUNT(*) FROM polls_ballots") == 0
    bot.members[UserRef("console", "bo")] = [RoomRef("console", "falun2")]
    await bot.say("dm", "bo", "!rösta 1 2")
    assert "registrerad för Falun: 2. Nej" in bot.last("dm")


async def test_verify_is_for_secret_polls_after_the_close(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Öppet?" "Ja" "Nej"')
    await bot.say("falun", "bo", "!omröstning kontrollera 1 ABCD-EFGH")
    assert "inte hemlig; kvittokoder finns bara" in bot.last("falun")


async def test_linking_two_accounts_keeps_their_later_ballot(bot: Bot) -> None:
    await bot.say("falun", "anna", '!omröstning ny "Hemligt?" "Ja" "Nej" --hemlig')
    await bot.say("falun", "ulla", "!rösta 1 1")
    earlier = receipt(bot.last("falun"))
    matrix_room = RoomRef("matrix", "!falun:example.org")
    ulla_matrix = UserRef("matrix", "@ulla:example.org")
    await bot.native_vote(1, matrix_room, ulla_matrix, ["2"], toggle=True, origin=True)
    later = receipt(bot.matrix.texts()[-1])
    assert await bot.running.db.fetchval("SELECT COUNT(*) FROM polls_ballots") == 2
    code = await bot.running.people.start_link(UserRef("console", "ulla"), START, private=True)
    await bot.running.people.complete_link(ulla_matrix, code, START)
    assert await bot.running.db.fetchval("SELECT COUNT(*) FROM polls_ballots") == 1
    await bot.say("falun", "anna", "!omröstning stäng 1")
    await bot.advance(timedelta(seconds=5))
    assert "1. Ja: 0 (0 %)\n2. Nej: 1 (100 %)\nAntal som röstat: 1." in bot.last("falun2")
    await bot.say("falun", "ulla", f"!omröstning kontrollera 1 {earlier}")
    assert "Ingen räknad röst" in bot.last("falun")
    await bot.say("falun", "ulla", f"!omröstning kontrollera 1 {later}")
    assert "räknades i omröstning 1: 2. Nej." in bot.last("falun")
    await bot.say("falun", "anna", "!omröstning export 1")
    data = bot.messages("falun")[-1].attachments[0].data
    assert data is not None and data.decode().splitlines()[1:] == [
        "alla,1,1,Ja,0,0.0000",
        "alla,1,2,Nej,1,1.0000",
    ]
