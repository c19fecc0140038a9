"""Export, erase, purge, audit chain and logs, through a real App with every plugin."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.audit import AuditLog
from bot.core.refs import RoomRef, UserRef
from bot.data_map import all_lifetimes
from bot.lifetimes import existing_tables, purge, undeclared
from tests.engines import Target
from tests.privacy.support import Bot, make_settings, number_in

BOB = UserRef("console", "bob")
CARL = UserRef("console", "carl")
MATRIX_BOB = UserRef("matrix", "@bob:example.org")
MATRIX_ROOM = RoomRef("matrix", "!falun:example.org")
BOB_TEXT = "Bobs hemliga mötesanteckning om budgeten"
CARL_TEXT = "Carls meddelande om affischeringen"


async def _scenario(bot: Bot) -> None:
    """Every feature once: a poll, an event, bridged messages, an update, a link."""
    await bot.say("falun", "anna", '!poll new "Ny ordförande?" "Kim" "Robin" --in falun,mora')
    await bot.say("falun", "anna", '!poll new "Hemlig fråga?" "Ja" "Nej" --secret --in falun')
    await bot.say("falun", "anna", '!event add "Styrelsemöte" "2025-03-10 18:00" --in falun')
    event = number_in(bot.last("falun"), "Händelse")
    await bot.say("falun", "anna", '!update post "Valet närmar sig" --in falun')
    await bot.say("falun", "bob", BOB_TEXT)
    await bot.say(MATRIX_ROOM, MATRIX_BOB, "ett meddelande från Matrix")
    await bot.say("mora", "carl", CARL_TEXT)
    await bot.say("falun", "bob", "!vote 1 2")
    await bot.say("falun", "bob", "!vote 2 1")
    await bot.say("mora", "carl", "!vote 1 1")
    await bot.say("falun", "bob", f"!event rsvp {event} yes")
    await bot.say("mora", "carl", f"!event rsvp {event} no")
    # Bob's Matrix account linked to his console one: his data through both.
    code = await bot.running.people.start_link(BOB, bot.clock.now(), private=True)
    await bot.running.people.complete_link(MATRIX_BOB, code, bot.clock.now())


async def _export(bot: Bot, user: UserRef) -> dict[str, Any]:
    assert bot.app is not None
    return await bot.app.privacy.export(user, bot.clock.now())


def _strings(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture
async def bot(tmp_path: Path, db_target: Target) -> Any:
    settings, classes = make_settings(tmp_path, database=db_target)
    running = await Bot(settings, classes).start()
    yield running
    await running.stop()


async def test_export_holds_that_person_and_nobody_else(bot: Bot) -> None:
    await _scenario(bot)
    data = await _export(bot, MATRIX_BOB)  # asked from his other account
    assert set(data["accounts"]) == {str(BOB), str(MATRIX_BOB)}
    assert len(data["account_links"]) == 2
    assert [v["poll"] for v in data["polls"]["votes"]] == [1]
    assert data["polls"]["votes"][0]["chosen"] == ["2"]
    # The secret poll still runs, so his ballot is his: the poll is named, never his choice.
    assert data["polls"]["secret_ballots"] == [{"poll": 2, "question": "Hemlig fråga?"}]
    assert [r["answer"] for r in data["calendar"]["rsvps"]] == ["yes"]
    origins = sorted({c["of"].split("/")[0] for c in data["bridge"]["copies"]})
    assert origins == ["console:falun", "matrix:!falun:example.org"]  # one from each account
    assert len(data["bridge"]["copies"]) == 4  # two messages, two copies each
    text = _strings(data)
    assert "carl" not in text and "anna" not in text
    assert BOB_TEXT not in text  # no message text is kept at all
    carl = await _export(bot, CARL)
    assert "bob" not in _strings(carl)
    assert [r["answer"] for r in carl["calendar"]["rsvps"]] == ["no"]
    anna = await _export(bot, UserRef("console", "anna"))
    actions = [a["action"] for a in anna["organiser_actions"]]
    assert set(actions) == {"poll.created", "event.added", "update.posted"}
    assert anna["updates"]["posts"][0]["text"] == "Valet närmar sig"


async def test_my_data_sends_a_file_and_a_swedish_summary(bot: Bot) -> None:
    await _scenario(bot)
    await bot.say("falun", "bob", "!mina-data")
    assert bot.console is not None
    room, message = bot.console.messages[-1]
    assert room == RoomRef("console", "falun") and message.ephemeral
    (attachment,) = message.attachments
    assert attachment.filename == "mina-data.json" and attachment.data is not None
    sent = json.loads(attachment.data)
    assert sent["calendar"] == (await _export(bot, BOB))["calendar"]
    assert "1 svar på händelser" in message.text and "1 röster" in message.text
    assert "1 hemliga röster" in message.text


async def test_my_data_refused_in_a_shared_matrix_room(bot: Bot) -> None:
    await bot.say(MATRIX_ROOM, MATRIX_BOB, "!my-data")
    sent = [s for s in bot.matrix.sent if s.action == "send"]
    assert sent and "direktmeddelande" in sent[-1].text
    assert not any(s.message and s.message.attachments for s in sent)


async def test_forget_me_erases_everything_and_twice_changes_nothing(bot: Bot) -> None:
    await _scenario(bot)
    carl_before = await _export(bot, CARL)
    await bot.say("falun", "bob", "!glöm-mig")
    code = number_in(bot.last("falun"), "glöm-mig")
    await bot.say("falun", "bob", "!glöm-mig 000000" if code != 0 else "!glöm-mig 111111")
    assert "stämmer inte" in bot.last("falun")
    await bot.say("falun", "bob", f"!glöm-mig {code:06d} --kopior")
    assert "bryggade kopior" in bot.last("falun")
    # The copies of both his messages (one from each account) are deleted: two rooms
    # each, three on the console, one on Matrix.
    assert bot.console is not None
    assert sorted(r.room.id for r in bot.console.deleted) == ["falun", "mora", "mora"]
    assert len([s for s in bot.matrix.sent if s.action == "delete"]) == 1
    after = await _export(bot, BOB)
    assert set(after) == {"exported_at", "accounts"}
    assert after["accounts"] == [str(BOB)]  # the link is gone too
    assert await _export(bot, MATRIX_BOB) == {
        "exported_at": after["exported_at"],
        "accounts": [str(MATRIX_BOB)],
    }
    assert await _export(bot, CARL) == carl_before
    db = bot.running.db
    # His secret ballot went as a withdrawn vote would, receipt and all.
    assert await db.fetchval("SELECT COUNT(*) FROM polls_ballots") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM polls_receipts") == 0
    dump_before = [
        tuple(r)
        for t in sorted(await existing_tables(db))
        for r in await db.fetchall(f"SELECT * FROM {t}")
    ]
    assert bot.app is not None
    again = await bot.app.privacy.erase(BOB, bot.clock.now(), deleter=bot.running.delivery)
    assert again.total == 0
    await bot.settle()
    dump_after = [
        tuple(r)
        for t in sorted(await existing_tables(db))
        for r in await db.fetchall(f"SELECT * FROM {t}")
    ]
    assert dump_after == dump_before
    assert (await AuditLog(db).verify())[1] is None


async def test_a_closed_secret_ballot_is_tied_to_nobody(bot: Bot) -> None:
    await _scenario(bot)
    await bot.say("falun", "anna", "!poll close 2")
    await bot.advance(timedelta(seconds=10))  # the close counts after a short grace
    db = bot.running.db
    assert await db.fetchval("SELECT COUNT(*) FROM polls_receipts WHERE poll_id = 2") == 1
    data = await _export(bot, BOB)
    assert "secret_ballots" not in data["polls"]
    assert bot.app is not None
    await bot.app.privacy.erase(BOB, bot.clock.now())
    # Once closed, nothing ties the receipt to him: it stays in the tally.
    assert await db.fetchval("SELECT COUNT(*) FROM polls_receipts WHERE poll_id = 2") == 1


async def test_every_table_has_a_lifetime(bot: Bot) -> None:
    tables = await existing_tables(bot.running.db)
    lifetimes = all_lifetimes([c.migrations for c in bot.classes])
    assert "audit_log" in tables and "bridge_map" in tables
    assert undeclared(tables, lifetimes) == []


async def test_a_table_without_a_lifetime_is_named(bot: Bot) -> None:
    await bot.running.db.execute("CREATE TABLE newcomer (x INTEGER)")
    tables = await existing_tables(bot.running.db)
    lifetimes = all_lifetimes([c.migrations for c in bot.classes])
    assert undeclared(tables, lifetimes) == ["newcomer"]


async def test_purge_removes_rows_past_their_lifetime(bot: Bot) -> None:
    await _scenario(bot)
    db = bot.running.db
    lifetimes = all_lifetimes([c.migrations for c in bot.classes])
    bridged = int(await db.fetchval("SELECT COUNT(*) FROM bridge_map"))
    assert bridged > 0
    # 29 days on, the bridge map (30 days) is still whole.
    early = await purge(db, lifetimes, bot.clock.now() + timedelta(days=29))
    assert "bridge_map" not in early
    assert await db.fetchval("SELECT COUNT(*) FROM bridge_map") == bridged
    # A message bridged later stays when the earlier ones go.
    bot.clock.set(bot.clock.now() + timedelta(days=20))
    await bot.say("mora", "carl", "senare")
    removed = await purge(db, lifetimes, bot.clock.now() + timedelta(days=11))
    assert removed["bridge_map"] == bridged
    assert await db.fetchval("SELECT COUNT(*) FROM bridge_map") == 2
    # An override shortens a lifetime.
    short = await purge(
        db, lifetimes, bot.clock.now() + timedelta(days=2), {"bridge_map": timedelta(days=1)}
    )
    assert short["bridge_map"] == 2
    # The audit log lives two years: a day past that, its entries go.
    audit = await purge(db, lifetimes, bot.clock.now() + timedelta(days=731))
    assert audit["audit_log"] == 4  # two polls, an event, an update


async def test_a_changed_audit_entry_breaks_verify(bot: Bot) -> None:
    await _scenario(bot)
    audit = AuditLog(bot.running.db)
    checked, broken = await audit.verify()
    assert checked == 4 and broken is None
    await audit.pseudonymise(["console:anna"])
    assert (await audit.verify())[1] is None  # pseudonymised, still verifiable
    await bot.running.db.execute("UPDATE audit_log SET detail = '{\"poll\":9}' WHERE seq = 2")
    _, broken = await audit.verify()
    assert broken is not None and broken.seq == 2


async def test_a_removed_audit_entry_breaks_verify(bot: Bot) -> None:
    await _scenario(bot)
    await bot.running.db.execute("DELETE FROM audit_log WHERE seq = 2")
    _, broken = await AuditLog(bot.running.db).verify()
    assert broken is not None and broken.seq == 3


async def test_audit_command_lists_newest_first(bot: Bot) -> None:
    await _scenario(bot)
    await bot.say("falun", "anna", "!granskning --dagar 7")
    lines = bot.last("falun").splitlines()
    assert "update queued" not in lines[1] and "uppdatering köad" in lines[1]
    assert "omröstning skapad" in lines[-1]
    await bot.say("falun", "bob", "!granskning")
    assert "organisatör" in bot.last("falun").lower()


async def test_logs_at_info_carry_no_message_text_nor_vote(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await _scenario(bot)
    await bot.say("falun", "bob", "!my-data")
    await bot.say("falun", "bob", "!forget-me")
    code = number_in(bot.last("falun"), "glöm-mig")
    await bot.say("falun", "bob", f"!forget-me {code:06d} --copies")
    await bot.advance(timedelta(days=4))  # polls close, reminders, housekeeping
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert logged  # the run did log
    for secret in (BOB_TEXT, CARL_TEXT, "Kim", "Robin", "Valet närmar sig", "Styrelsemöte"):
        assert secret not in logged
