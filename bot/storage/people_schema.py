"""The tables of `bot.people`: links between accounts, pending link codes, wrong tries.

Their own migrations namespace ("people"), run by the app right after the core's.
"""

from __future__ import annotations

from datetime import timedelta

from bot.lifetimes import Lifetime
from bot.storage.database import Database
from bot.storage.migrations import Migrations

people_migrations = Migrations("people")


@people_migrations.step(1)
async def _initial(db: Database) -> None:
    # One row per linked account. The person id is random, never derived from an
    # account id, so that it says nothing about the accounts behind it.
    await db.execute(
        "CREATE TABLE people_links ("
        " account TEXT PRIMARY KEY,"
        " person TEXT NOT NULL,"
        " linked_at REAL NOT NULL)"
    )
    await db.execute("CREATE INDEX people_links_person ON people_links (person)")
    # At most one pending code per account, stored as a hash only. `confirm`: the code
    # was shown where others may have read it, so redeeming it yields a second code for
    # its asker to type. `partner`: a confirmation code, which only that account may use.
    await db.execute(
        "CREATE TABLE people_codes ("
        " account TEXT PRIMARY KEY,"
        " code_hash TEXT NOT NULL UNIQUE,"
        " expires_at REAL NOT NULL,"
        " confirm INTEGER NOT NULL,"
        " partner TEXT)"
    )
    # Wrong codes typed, per account, kept only as long as the limit looks back.
    await db.execute("CREATE TABLE people_tries (account TEXT NOT NULL, tried_at REAL NOT NULL)")
    await db.execute("CREATE INDEX people_tries_account ON people_tries (account, tried_at)")


# A link lasts until its person undoes it or is erased; codes until they expire; wrong
# tries as long as the limit looks back (a day is more than enough).
people_migrations.keep(
    Lifetime("people_links", "which accounts are one person (a random id)", None),
    Lifetime("people_codes", "pending link codes, hashed", timedelta(0), "expires_at"),
    Lifetime("people_tries", "wrong link codes typed, per account", timedelta(days=1), "tried_at"),
)
