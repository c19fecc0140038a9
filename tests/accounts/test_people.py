"""`bot.people`: linking accounts into one person, the codes, their limits, the cache."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.refs import UserRef
from bot.people import ALPHABET, MAX_TRIES, PERSON_PREFIX, LinkRefused, People
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.engines import open_database
from bot.storage.people_schema import people_migrations
from tests.engines import Target

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANNA_M = UserRef("matrix", "@anna:example.org")
ANNA_D = UserRef("discord", "1001")
BERTIL_M = UserRef("matrix", "@bertil:example.org")
CECILIA_D = UserRef("discord", "1003")
ANNA_C = UserRef("console", "anna")

Renames = list[tuple[tuple[str, ...], str]]


@pytest.fixture
async def db(db_target: Target) -> AsyncIterator[Database]:
    database = await open_database(db_target)
    await core_migrations.upgrade(database)
    await people_migrations.upgrade(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def people(db: Database) -> People:
    return People(db)


async def refused(reason: str, people: People, user: UserRef, code: str, now: datetime) -> None:
    with pytest.raises(LinkRefused) as caught:
        await people.complete_link(user, code, now)
    assert caught.value.reason == reason


async def completes(people: People, user: UserRef, code: str, now: datetime = NOW) -> str:
    done = await people.complete_link(user, code, now)
    assert done.person is not None
    return done.person


async def link(people: People, asker: UserRef, other: UserRef) -> str:
    code = await people.start_link(asker, NOW, private=True)
    return await completes(people, other, code)


async def test_an_unlinked_account_is_its_own_person(people: People) -> None:
    assert await people.person_of(ANNA_M) == "matrix:@anna:example.org"
    assert await people.accounts_of("matrix:@anna:example.org") == [ANNA_M]
    assert await people.accounts_of("not an account") == []


async def test_a_private_code_links_two_platforms_into_one_random_person(
    people: People, db: Database
) -> None:
    code = await people.start_link(ANNA_D, NOW, private=True)
    assert re.fullmatch(f"[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}", code)
    # Stored as a hash only: the database never holds the code itself.
    rows = await db.fetchall("SELECT * FROM people_codes")
    assert rows and all(code.replace("-", "") not in str(row) for row in rows)
    # Typed as people type: lower case, spaces, no dash.
    typed = code.lower().replace("-", " ")
    done = await people.complete_link(ANNA_M, typed, NOW)
    assert done.other == ANNA_D and done.confirm_code is None
    person = await people.person_of(ANNA_M)
    assert person == done.person == await people.person_of(ANNA_D)
    assert person.startswith(PERSON_PREFIX)
    assert "anna" not in person and "1001" not in person
    assert await people.accounts_of(person) == [ANNA_D, ANNA_M]
    assert await db.fetchval("SELECT COUNT(*) FROM people_codes") == 0
    # Used once: the same code again is unknown.
    await refused("unknown", people, BERTIL_M, code, NOW)


async def test_a_code_shown_to_a_room_needs_its_askers_confirmation(people: People) -> None:
    code = await people.start_link(ANNA_M, NOW)  # not private: shown in a Matrix room
    # Cecilia read it in the room and types it on her Discord account.
    stolen = await people.complete_link(CECILIA_D, code, NOW)
    assert stolen.person is None and stolen.other == ANNA_M
    assert stolen.confirm_code is not None
    assert await people.person_of(CECILIA_D) == str(CECILIA_D)  # nothing linked
    # The second code is Cecilia's alone to see, and only Anna's account may type it.
    await refused("unknown", people, BERTIL_M, stolen.confirm_code, NOW)
    # Anna never sees it; her own try with the first code finds it used.
    await refused("unknown", people, ANNA_D, code, NOW)

    code = await people.start_link(ANNA_M, NOW)
    half = await people.complete_link(ANNA_D, code, NOW)
    assert half.confirm_code is not None and half.person is None
    done = await people.complete_link(ANNA_M, half.confirm_code, NOW)
    assert done.other == ANNA_D and done.person is not None
    assert await people.person_of(ANNA_D) == await people.person_of(ANNA_M) == done.person


async def test_same_platform_refused_and_the_code_still_works_elsewhere(people: People) -> None:
    code = await people.start_link(ANNA_M, NOW, private=True)
    await refused("same_platform", people, BERTIL_M, code, NOW)
    await refused("same_platform", people, ANNA_M, code, NOW)
    await completes(people, ANNA_D, code)
    assert await people.person_of(ANNA_D) == await people.person_of(ANNA_M)
    assert await people.person_of(BERTIL_M) == str(BERTIL_M)


async def test_codes_expire_after_ten_minutes(people: People) -> None:
    code = await people.start_link(ANNA_M, NOW, private=True)
    await refused("expired", people, ANNA_D, code, NOW + timedelta(minutes=10))
    # Forgotten after a while: then simply unknown.
    code = await people.start_link(ANNA_M, NOW, private=True)
    await refused("unknown", people, ANNA_D, code, NOW + timedelta(minutes=25))
    code = await people.start_link(ANNA_M, NOW, private=True)
    await completes(people, ANNA_D, code, NOW + timedelta(minutes=9, seconds=59))


async def test_a_new_request_replaces_the_pending_code(people: People) -> None:
    first = await people.start_link(ANNA_M, NOW, private=True)
    second = await people.start_link(ANNA_M, NOW + timedelta(minutes=1), private=True)
    assert first != second
    await refused("unknown", people, ANNA_D, first, NOW + timedelta(minutes=2))
    await completes(people, ANNA_D, second, NOW + timedelta(minutes=2))


async def test_wrong_codes_are_limited_per_account(people: People) -> None:
    code = await people.start_link(ANNA_M, NOW, private=True)
    for i in range(MAX_TRIES):
        await refused("unknown", people, CECILIA_D, f"AAAA-AAA{i + 2}", NOW)
    # The sixth try is refused even with the right code, and says how long to wait.
    with pytest.raises(LinkRefused) as caught:
        await people.complete_link(CECILIA_D, code, NOW + timedelta(minutes=3))
    assert caught.value.reason == "too_many_tries"
    assert caught.value.wait == timedelta(minutes=7)
    # Another account is not held back by Cecilia's tries, and the code is not burnt.
    await completes(people, ANNA_D, code, NOW + timedelta(minutes=4))
    # Ten minutes after her first wrong try, Cecilia may try again.
    later = NOW + timedelta(minutes=10, seconds=1)
    again = await people.start_link(BERTIL_M, later, private=True)
    await completes(people, CECILIA_D, again, later)
    assert await people.person_of(CECILIA_D) == await people.person_of(BERTIL_M)


async def test_same_platform_tries_count_too(people: People) -> None:
    # Else one platform's accounts could probe, unlimited, for the other's codes.
    for _ in range(MAX_TRIES):
        code = await people.start_link(ANNA_M, NOW, private=True)
        await refused("same_platform", people, BERTIL_M, code, NOW)
    code = await people.start_link(CECILIA_D, NOW, private=True)
    await refused("too_many_tries", people, BERTIL_M, code, NOW)


async def test_an_account_linked_to_someone_else_is_refused(people: People) -> None:
    await link(people, ANNA_M, ANNA_D)
    # Cecilia's Discord cannot join Anna: Anna's person has a Discord account already.
    code = await people.start_link(CECILIA_D, NOW, private=True)
    await refused("linked_elsewhere", people, ANNA_M, code, NOW)
    code = await people.start_link(ANNA_D, NOW, private=True)
    await refused("already_linked", people, ANNA_M, code, NOW)
    # Two people, each linked, are never merged.
    await link(people, BERTIL_M, CECILIA_D)
    code = await people.start_link(ANNA_M, NOW, private=True)
    await refused("linked_elsewhere", people, CECILIA_D, code, NOW)
    assert await people.person_of(CECILIA_D) != await people.person_of(ANNA_M)


async def test_a_person_gains_an_account_of_a_platform_it_lacks(people: People) -> None:
    renames: Renames = []

    async def renamed(olds: tuple[str, ...], new: str) -> None:
        renames.append((olds, new))

    people.on_rename(renamed)
    person = await link(people, ANNA_M, ANNA_D)
    assert renames == [(("matrix:@anna:example.org", "discord:1001"), person)]
    assert await link(people, ANNA_M, ANNA_C) == person
    assert renames[-1] == (("console:anna",), person)
    assert await people.accounts_of(person) == [ANNA_C, ANNA_D, ANNA_M]
    # One leaves: the other two are still one person, nothing to re-key.
    await people.unlink(ANNA_D)
    assert len(renames) == 2
    assert await people.person_of(ANNA_D) == str(ANNA_D)
    assert await people.person_of(ANNA_C) == await people.person_of(ANNA_M) == person


async def test_unlink_gives_the_last_account_its_own_name_back(people: People) -> None:
    renames: Renames = []

    async def renamed(olds: tuple[str, ...], new: str) -> None:
        renames.append((olds, new))

    stop = people.on_rename(renamed)
    person = await link(people, ANNA_M, ANNA_D)
    await people.unlink(ANNA_D)
    assert renames[-1] == ((person,), "matrix:@anna:example.org")
    assert await people.person_of(ANNA_M) == str(ANNA_M)
    assert await people.person_of(ANNA_D) == str(ANNA_D)
    assert await people.accounts_of(person) == []
    with pytest.raises(LinkRefused) as caught:
        await people.unlink(ANNA_M)
    assert caught.value.reason == "not_linked"
    stop()
    await link(people, ANNA_M, ANNA_D)
    assert len(renames) == 2  # removed listeners hear nothing


async def test_the_cache_follows_links_and_unlinks(people: People, db: Database) -> None:
    assert await people.person_of(ANNA_M) == str(ANNA_M)  # now cached
    person = await link(people, ANNA_M, ANNA_D)
    assert await people.person_of(ANNA_M) == person
    # Answered from memory: a change behind People's back is not seen...
    await db.execute("UPDATE people_links SET person = 'person:elsewhere'")
    assert await people.person_of(ANNA_M) == person
    await db.execute("UPDATE people_links SET person = ?", (person,))
    # ...while People's own changes are.
    await people.unlink(ANNA_M)
    assert await people.person_of(ANNA_M) == str(ANNA_M)
    assert await people.person_of(ANNA_D) == str(ANNA_D)


async def test_a_failing_listener_undoes_the_link(people: People) -> None:
    async def broken(olds: tuple[str, ...], new: str) -> None:
        raise RuntimeError("the consumer's table is gone")

    assert await people.person_of(ANNA_M) == str(ANNA_M)
    people.on_rename(broken)
    code = await people.start_link(ANNA_D, NOW, private=True)
    with pytest.raises(RuntimeError):
        await people.complete_link(ANNA_M, code, NOW)
    assert await people.person_of(ANNA_M) == str(ANNA_M)
    assert await people.person_of(ANNA_D) == str(ANNA_D)


async def test_forget_and_purge_leave_nothing_behind(people: People, db: Database) -> None:
    await link(people, ANNA_M, ANNA_D)
    await people.start_link(ANNA_M, NOW, private=True)
    await refused("unknown", people, ANNA_M, "ZZZZ-ZZZZ", NOW)
    await people.forget(ANNA_M)
    for table in ("people_links", "people_codes", "people_tries"):
        assert await db.fetchval(f"SELECT COUNT(*) FROM {table}") == 0, table
    await people.start_link(BERTIL_M, NOW, private=True)
    await refused("unknown", people, CECILIA_D, "ZZZZ-ZZZZ", NOW)
    await people.purge(NOW + timedelta(minutes=21))
    assert await db.fetchval("SELECT COUNT(*) FROM people_codes") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM people_tries") == 0
