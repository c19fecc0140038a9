"""The polls' tables and their migrations (what each table holds: storage.py)."""

from __future__ import annotations

from datetime import timedelta

from bot.lifetimes import Lifetime
from bot.storage.database import Database
from bot.storage.migrations import Migrations

migrations = Migrations("polls")


@migrations.step(1)
async def _initial(db: Database) -> None:
    await db.execute(
        "CREATE TABLE polls_polls ("
        " id INTEGER PRIMARY KEY,"
        " question TEXT NOT NULL,"
        " answers TEXT NOT NULL,"
        " max_selections INTEGER NOT NULL,"
        " secret INTEGER NOT NULL,"
        " creator TEXT,"
        " created_at REAL NOT NULL,"
        " closes_at REAL NOT NULL,"
        " closed_at REAL,"
        " state TEXT NOT NULL,"
        " associations TEXT NOT NULL,"
        " rooms TEXT NOT NULL,"
        " ballot_key TEXT,"
        " tally TEXT)"
    )
    await db.execute("CREATE INDEX polls_polls_state ON polls_polls (state)")
    await db.execute(
        "CREATE TABLE polls_votes ("
        " poll_id INTEGER NOT NULL REFERENCES polls_polls (id),"
        " person TEXT NOT NULL,"
        " association TEXT NOT NULL,"
        " answers TEXT NOT NULL,"
        " source TEXT NOT NULL,"
        " cast_at REAL NOT NULL,"
        " PRIMARY KEY (poll_id, person))"
    )
    await db.execute(
        "CREATE TABLE polls_seen ("
        " poll_id INTEGER NOT NULL REFERENCES polls_polls (id),"
        " room TEXT NOT NULL,"
        " person TEXT NOT NULL,"
        " answers TEXT NOT NULL,"
        " PRIMARY KEY (poll_id, room, person))"
    )
    await db.execute(
        "CREATE TABLE polls_ballots ("
        " poll_id INTEGER NOT NULL REFERENCES polls_polls (id),"
        " voter TEXT NOT NULL,"
        " association TEXT NOT NULL,"
        " answers TEXT NOT NULL,"
        " receipt TEXT NOT NULL,"
        " seq INTEGER NOT NULL,"
        " PRIMARY KEY (poll_id, voter))"
    )
    await db.execute("CREATE INDEX polls_ballots_seq ON polls_ballots (poll_id, seq)")
    await db.execute(
        "CREATE TABLE polls_receipts ("
        " poll_id INTEGER NOT NULL REFERENCES polls_polls (id),"
        " receipt TEXT NOT NULL,"
        " answers TEXT NOT NULL,"
        " PRIMARY KEY (poll_id, receipt))"
    )


_CLOSED_AT = "(SELECT p.closed_at FROM polls_polls p WHERE p.id = poll_id)"
_CLOSED = "poll_id IN (SELECT id FROM polls_polls WHERE state = 'closed')"

# A person's vote lives only while its poll runs (the close deletes it; the purge takes
# any left over); a closed poll keeps its question and folded tally, and a secret one
# its anonymous receipts, for a year. Rows that point at a poll go first.
migrations.keep(
    Lifetime("polls_votes", "an open poll's vote per person", timedelta(0), _CLOSED_AT, _CLOSED),
    Lifetime(
        "polls_seen", "per native post, each person's last vote", timedelta(0), _CLOSED_AT, _CLOSED
    ),
    Lifetime(
        "polls_ballots",
        "a secret poll's ballots under a keyed hash",
        timedelta(0),
        _CLOSED_AT,
        _CLOSED,
    ),
    Lifetime(
        "polls_receipts",
        "a secret poll's receipts and choices, tied to nobody",
        timedelta(days=365),
        _CLOSED_AT,
        _CLOSED,
        setting="polls_polls",
    ),
    Lifetime(
        "polls_polls",
        "polls: question, answers, rooms, creator; after the close the tally",
        timedelta(days=365),
        "closed_at",
        "state = 'closed'",
    ),
)
