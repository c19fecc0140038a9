"""The polls' tables and their migrations (what each table holds: storage.py)."""

from __future__ import annotations

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
