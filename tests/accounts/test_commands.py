"""`link` (`koppla`) through the App: a code on one platform, typed on the other, and a
linked person's RSVP counted once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.adapters.discord.commands import build_commands
from tests.accounts.support import (
    ANNA_D,
    ANNA_M,
    CECILIA_D,
    FALUN_D,
    FALUN_M,
    MORA_M,
    Bot,
    code_in,
    start_bot,
)
from tests.engines import Target


@pytest.fixture
async def bot(tmp_path: Path, db_target: Target) -> AsyncIterator[Bot]:
    running = await start_bot(tmp_path, database=db_target)
    try:
        yield running
    finally:
        await running.app.stop()


async def test_linked_accounts_answer_once_and_the_latest_answer_counts(bot: Bot) -> None:
    added = await bot.say(ANNA_M, FALUN_M, '!händelse ny "Styrelsemöte" "2026-03-10 18:00"')
    assert "Händelse 1 är tillagd" in added.text
    await bot.say(ANNA_M, FALUN_M, "!händelse svara 1 ja")
    await bot.slash(ANNA_D, FALUN_D, ("event", "rsvp"), id=1, answer="nej")
    assert await bot.rsvp_counts() == {"yes": 1, "no": 1}  # two accounts, two answers

    # Discord shows the code to Anna alone; she types it on Matrix.
    shown = await bot.slash(ANNA_D, FALUN_D, ("link",))
    assert shown.message is not None and shown.message.ephemeral
    code = code_in(shown.text)
    assert f"!koppla {code} på Matrix" in shown.text and "10 minuter" in shown.text
    done = await bot.say(ANNA_M, FALUN_M, f"!koppla {code}")
    assert done.text.startswith("Klart: dina konton är nu kopplade")
    assert "!koppla-bort" in done.text
    # One person now; her later answer (no, on Discord) is the one kept.
    assert await bot.rsvp_counts() == {"no": 1}
    await bot.say(ANNA_M, FALUN_M, "!händelse svara 1 ja")
    assert await bot.rsvp_counts() == {"yes": 1}
    listed = await bot.say(ANNA_M, FALUN_M, "!händelse lista --vilka")
    assert "kommer: discord:1001 / matrix:@anna:example.org" in listed.text

    removed = await bot.say(ANNA_M, FALUN_M, "!koppla ta-bort")
    assert removed.text.startswith("Kopplingen är borttagen")
    # The answer stays with the account that remains; the one that left answers anew.
    assert await bot.rsvp_counts() == {"yes": 1}
    await bot.say(ANNA_M, FALUN_M, "!händelse svara 1 ja")
    assert await bot.rsvp_counts() == {"yes": 2}


async def test_a_code_shown_in_a_matrix_room_is_confirmed_by_its_asker(bot: Bot) -> None:
    shown = await bot.say(ANNA_M, FALUN_M, "!koppla")
    code = code_in(shown.text)
    assert f"/koppla kod:{code} på Discord" in shown.text
    assert "!koppla KOD" in shown.text  # where the second code goes
    half = await bot.slash(ANNA_D, FALUN_D, ("link",), code=code)
    assert half.message is not None and half.message.ephemeral
    second = code_in(half.text)
    assert second != code and f"!koppla {second} på Matrix" in half.text
    assert await bot.app.people.person_of(ANNA_D) == str(ANNA_D)  # not yet
    # Cecilia, who may have read the first code too, cannot finish in Anna's place.
    stolen = await bot.slash(CECILIA_D, FALUN_D, ("link",), code=second)
    assert "finns inte eller är redan använd" in stolen.text
    done = await bot.say(ANNA_M, FALUN_M, f"!koppla {second}")
    assert done.text.startswith("Klart")
    assert await bot.app.people.person_of(ANNA_D) == await bot.app.people.person_of(ANNA_M)
    gone = await bot.slash(ANNA_D, FALUN_D, ("unlink",))
    assert gone.text.startswith("Kopplingen är borttagen") and gone.message is not None
    assert gone.message.ephemeral
    assert await bot.app.people.person_of(ANNA_M) == str(ANNA_M)


async def test_mistakes_get_a_clear_answer_in_the_users_language(bot: Bot) -> None:
    wrong = await bot.say(ANNA_M, FALUN_M, "!koppla ABCD-EFGH")
    assert "Den koden finns inte eller är redan använd. Be om en ny med !koppla." in wrong.text
    english = await bot.say(ANNA_M, MORA_M, "!link remove")
    assert english.text == "This account is not linked to any other account."
    not_linked = await bot.slash(ANNA_D, FALUN_D, ("unlink",))
    assert not_linked.text == "Det här kontot är inte kopplat till något annat konto."
    own = code_in((await bot.say(ANNA_M, FALUN_M, "!koppla")).text)
    same = await bot.say(ANNA_M, MORA_M, f"!link {own}")
    assert "same platform" in same.text
    for _ in range(3):
        await bot.say(ANNA_M, FALUN_M, "!koppla ZZZZ-ZZZZ")
    # Five wrong tries in all: the sixth waits, whatever the code, until ten minutes
    # after the first (each step of the bot's clock is 30 s: the first was 4 min ago).
    held = await bot.say(ANNA_M, FALUN_M, "!koppla 2222-2222")
    assert held.text == "För många felaktiga koder. Försök igen om 6 minuter."


async def test_link_and_unlink_are_slash_commands_that_discord_accepts(bot: Bot) -> None:
    payload = build_commands(bot.app.dispatcher.registry.specs(), bot.app.translator.t)
    by_name = {c["name"]: c for c in payload}
    link = by_name["link"]
    assert link["name_localizations"] == {"sv-SE": "koppla"}
    (option,) = link["options"]
    assert (option["name"], option["type"], option["required"]) == ("code", 3, False)
    assert option["name_localizations"] == {"sv-SE": "kod"}
    assert by_name["unlink"]["name_localizations"] == {"sv-SE": "koppla-bort"}
    assert by_name["unlink"]["options"] == []
