"""`event add/list/remove/rsvp` (`händelse ny/lista/ta-bort/svara`), and answers that
arrive as reactions and button presses on reminders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.clock import FakeClock
from bot.core.events import ButtonPressed, ReactionAdded, ReactionRemoved, Sender
from bot.core.refs import MessageRef, RoomRef, UserRef
from plugins.calendar.arming import RSVP_NO, RSVP_YES
from plugins.calendar.model import reminder_key
from tests.calendar.support import Bot, feed_toml, fixture_copy, make_settings
from tests.engines import Target

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
FALUN = RoomRef("console", "falun")


@pytest.fixture
async def bot(tmp_path: Path, db_target: Target) -> AsyncIterator[Bot]:
    path = fixture_copy(tmp_path, "single.ics")
    running = await Bot(
        make_settings(tmp_path, feed_toml(path, ["falun"]), database=db_target), FakeClock(START)
    ).start()
    try:
        yield running
    finally:
        await running.stop()


def last(bot: Bot, room: str = "falun") -> str:
    return bot.texts(room)[-1]


async def test_organisers_add_events_and_get_an_id(bot: Bot) -> None:
    await bot.say(
        "falun",
        "anna",
        '!händelse ny "Årsmöte" "2026-12-20 14:00" --plats "Folkets hus" --längd 3h',
    )
    reply = last(bot)
    assert reply.startswith("Händelse ")
    assert "Årsmöte, söndag 20 december kl. 14.00–17.00. Påminnelser går till Falun." in reply
    event_id = int(reply.split()[1])
    pending = await bot.pending()
    assert len([k for k in pending if ":manual:" in k]) == 3
    await bot.say("mora", "anna", "!event list --days 30")
    assert "Årsmöte" not in last(bot, "mora")  # added for Falun only
    await bot.say("falun", "bo", "!händelse lista --dagar 30")
    assert f"#{event_id} söndag 20 december kl. 14.00–17.00 – Årsmöte (Folkets hus)" in last(bot)
    # Its reminder reaches both Falun rooms at 14.00 the day before.
    await bot.advance_to(datetime(2026, 12, 19, 13, tzinfo=UTC))
    assert "Påminnelse: Årsmöte" in last(bot, "falun2")


async def test_event_add_for_other_associations_and_all(bot: Bot) -> None:
    await bot.say("styrelse", "anna", '!event add "Utbildning" "2026-12-12 10:00" --in mora')
    assert "Påminnelser går till Mora." in last(bot, "styrelse")
    await bot.say("styrelse", "anna", '!event add "Kongress" "2026-12-13 10:00" --in all')
    assert "Falun, Mora" in last(bot, "styrelse")


async def test_event_add_refuses_bad_input_with_a_clear_reply(bot: Bot) -> None:
    await bot.say("falun", "bo", '!händelse ny "Fest" "2026-12-20 18:00"')
    assert last(bot).startswith("Bara organisatörer får använda")
    await bot.say("falun", "anna", '!händelse ny "Fest" "2026-02-30 18:00"')
    assert "ÅÅÅÅ-MM-DD TT:MM" in last(bot)
    await bot.say("falun", "anna", '!händelse ny "Fest" "i morgon"')
    assert "är ingen tidpunkt" in last(bot)
    await bot.say("falun", "anna", '!händelse ny "Fest" "2026-11-20 18:00"')
    assert last(bot).startswith("Den tiden har redan varit")
    await bot.say("falun", "anna", '!händelse ny "Fest" "2027-03-28 02:30"')
    assert "är ingen tidpunkt" in last(bot)  # 02.30 is skipped by the DST change
    await bot.say("styrelse", "anna", '!händelse ny "Fest" "2026-12-20 18:00" --i okänd')
    assert "finns inte" in last(bot, "styrelse")
    assert [k for k in await bot.pending() if ":manual:" in k] == []


async def test_remove_drops_reminders_and_tells_rooms_already_reminded(bot: Bot) -> None:
    await bot.say("falun", "anna", '!event add "Möte" "2026-12-05 18:00"')
    event_id = int(last(bot).split()[1])
    await bot.advance_to(datetime(2026, 12, 4, 17, tzinfo=UTC))  # the 1d reminder is out
    await bot.say("falun", "bo", f"!event remove {event_id}")
    assert last(bot).startswith("Bara organisatörer")
    await bot.say("falun", "anna", f"!event remove {event_id}")
    assert any(t.startswith("❌ Inställt: Möte") for t in bot.texts("falun2"))
    assert last(bot) == f"Händelse {event_id} (Möte) är borttagen, med sina påminnelser."
    assert [k for k in await bot.pending() if ":manual:" in k] == []
    await bot.say("falun", "anna", f"!event remove {event_id}")
    assert "Det finns ingen kommande händelse" in last(bot)
    # Events from a feed are changed in the calendar, not here.
    await bot.say("falun", "anna", "!händelse lista")
    feed_id = int(last(bot).splitlines()[1].split()[0][1:])
    await bot.say("falun", "anna", f"!händelse ta-bort {feed_id}")
    assert "kommer från ett kalenderflöde" in last(bot)


async def test_answers_by_command_reaction_and_button_count_once_per_person(bot: Bot) -> None:
    await bot.advance_to(datetime(2026, 12, 1, 17, tzinfo=UTC))  # the 7d reminder
    await bot.say("falun", "bo", "!händelse lista")
    event_id = int(last(bot).splitlines()[1].split()[0][1:])
    await bot.say("falun", "bo", f"!händelse svara {event_id} ja")
    assert "Noterat: du kommer på Styrelsemöte" in last(bot)
    await bot.say("falun", "bo", f"!händelse svara {event_id} nej")  # changes the answer
    assert "Svar: 0 kommer, 1 kommer inte" in last(bot)
    await bot.say("falun", "bo", f"!händelse svara {event_id} kanske")
    assert "Välj bland" in last(bot)

    key = reminder_key("single-1@test.example", "20261208T170000Z", timedelta(days=7), FALUN)
    posted = await bot.running.delivery.message_ref(key)
    assert posted is not None
    eva = Sender(UserRef("console", "eva"), "Eva")
    olle = Sender(UserRef("console", "olle"), "Olle")
    at = bot.clock.now()
    await bot.inject(
        ReactionAdded(
            event_id="r1",
            room=FALUN,
            sender=eva,
            at=at,
            ref=MessageRef(FALUN, "x1"),
            target=posted,
            key="👍🏽",
        )
    )
    await bot.inject(
        ReactionAdded(
            event_id="r2",
            room=FALUN,
            sender=olle,
            at=at,
            ref=MessageRef(FALUN, "x2"),
            target=posted,
            key="🎉",
        )
    )
    await bot.inject(
        ButtonPressed(
            event_id="b1", room=FALUN, sender=olle, at=at, message=posted, custom_id=RSVP_YES
        )
    )
    await bot.inject(
        ButtonPressed(
            event_id="b2", room=FALUN, sender=olle, at=at, message=posted, custom_id=RSVP_YES
        )
    )
    # A reaction on some other message is nobody's answer.
    await bot.inject(
        ReactionAdded(
            event_id="r3",
            room=FALUN,
            sender=Sender(UserRef("console", "x"), "X"),
            at=at,
            ref=MessageRef(FALUN, "x3"),
            target=MessageRef(FALUN, "unknown"),
            key="👍",
        )
    )
    await bot.say("falun", "bo", "!händelse lista")
    assert "Svar: 2 kommer, 1 kommer inte" in last(bot)

    await bot.inject(
        ReactionRemoved(event_id="r4", room=FALUN, sender=eva, at=at, target=posted, key="👍🏽")
    )
    await bot.inject(
        ButtonPressed(
            event_id="b3", room=FALUN, sender=olle, at=at, message=posted, custom_id=RSVP_NO
        )
    )
    await bot.say("falun", "bo", "!händelse lista")
    assert "Svar: 0 kommer, 2 kommer inte" in last(bot)

    # Who answered: organisers only.
    await bot.say("falun", "bo", "!händelse lista --vilka")
    assert last(bot) == "Bara organisatörer får se vilka som har svarat."
    await bot.say("falun", "anna", "!händelse lista --vilka")
    assert "    kommer inte: console:bo, console:olle" in last(bot)

    # The next reminder shows the counts so far.
    await bot.advance_to(datetime(2026, 12, 7, 17, tzinfo=UTC))
    assert "Svar: 0 kommer, 2 kommer inte" in bot.texts("falun")[-1]


async def test_answers_are_forgotten_after_the_retention(bot: Bot) -> None:
    await bot.say("falun", "bo", "!händelse lista")
    event_id = int(last(bot).splitlines()[1].split()[0][1:])
    await bot.say("falun", "bo", f"!händelse svara {event_id} ja")
    store = bot.plugin.store
    assert await store.counts("single-1@test.example", "20261208T170000Z") == {"yes": 1}
    await bot.advance_to(datetime(2026, 12, 8, 20, tzinfo=UTC))  # over, within retention
    await bot.refresh()
    assert await store.counts("single-1@test.example", "20261208T170000Z") == {"yes": 1}
    await bot.advance_to(datetime(2026, 12, 16, 20, tzinfo=UTC))
    await bot.refresh()
    assert await store.counts("single-1@test.example", "20261208T170000Z") == {}
    assert await store.get(event_id) is None
