"""The updates plugin's tables, in numbered migrations (see `bot.storage.migrations`)."""

from __future__ import annotations

from datetime import timedelta

from bot.lifetimes import Lifetime
from bot.storage.database import Database
from bot.storage.migrations import Migrations

migrations = Migrations("updates")


@migrations.step(1)
async def _initial(db: Database) -> None:
    await db.execute(
        "CREATE TABLE updates_feeds ("
        " num INTEGER PRIMARY KEY,"
        " key TEXT NOT NULL UNIQUE,"
        " origin TEXT NOT NULL,"
        " url TEXT NOT NULL,"
        " name TEXT,"
        " title TEXT,"
        " associations TEXT NOT NULL,"
        " rooms TEXT NOT NULL,"
        " mode TEXT NOT NULL,"
        " include TEXT NOT NULL,"
        " exclude TEXT NOT NULL,"
        " refresh REAL,"
        " paused TEXT,"
        " primed INTEGER NOT NULL DEFAULT 0,"
        " etag TEXT,"
        " last_modified TEXT,"
        " body_hash TEXT,"
        " last_parsed REAL,"
        " next_fetch REAL,"
        " last_success REAL,"
        " last_error TEXT,"
        " last_error_at REAL,"
        " failing_since REAL,"
        " failures INTEGER NOT NULL DEFAULT 0,"
        " reported INTEGER NOT NULL DEFAULT 0,"
        " added_by TEXT,"
        " added_at REAL)"
    )
    await db.execute(
        "CREATE TABLE updates_entries ("
        " feed TEXT NOT NULL,"
        " id TEXT NOT NULL,"
        " guid TEXT,"
        " link TEXT,"
        " digest TEXT NOT NULL,"
        " title TEXT NOT NULL,"
        " summary TEXT NOT NULL,"
        " published REAL,"
        " seen_at REAL NOT NULL,"
        " last_seen REAL NOT NULL,"
        " seq INTEGER NOT NULL,"
        " state TEXT NOT NULL,"
        " revision INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (feed, id))"
    )
    await db.execute("CREATE INDEX updates_entries_state ON updates_entries (state, seq)")
    # One row per post the plugin made: an entry's copy, a digest, an organiser's text.
    await db.execute(
        "CREATE TABLE updates_copies ("
        " key TEXT PRIMARY KEY,"
        " kind TEXT NOT NULL,"
        " room TEXT NOT NULL,"
        " ref TEXT NOT NULL,"
        " late INTEGER NOT NULL DEFAULT 0,"
        " more INTEGER NOT NULL DEFAULT 0,"
        " revision INTEGER NOT NULL DEFAULT 0,"
        " posted_at REAL NOT NULL)"
    )
    await db.execute("CREATE INDEX updates_copies_ref ON updates_copies (kind, ref)")
    await db.execute(
        "CREATE TABLE updates_digest_items ("
        " copy TEXT NOT NULL,"
        " feed TEXT NOT NULL,"
        " entry TEXT NOT NULL,"
        " pos INTEGER NOT NULL,"
        " PRIMARY KEY (copy, feed, entry))"
    )
    await db.execute("CREATE INDEX updates_digest_entry ON updates_digest_items (feed, entry)")
    await db.execute(
        "CREATE TABLE updates_posts ("
        " id INTEGER PRIMARY KEY,"
        " text TEXT NOT NULL,"
        " associations TEXT NOT NULL,"
        " rooms TEXT NOT NULL,"
        " due_at REAL NOT NULL,"
        " state TEXT NOT NULL,"
        " author TEXT NOT NULL,"
        " created_at REAL NOT NULL,"
        " posted_at REAL,"
        " revision INTEGER NOT NULL DEFAULT 0)"
    )


# Entries are remembered while their feed still carries them (so none is posted twice),
# then 90 days; posts and their copies 90 days (edits follow that long); an organiser's
# text half a year after it went out or was cancelled.
_COPY_AT = "(SELECT c.posted_at FROM updates_copies c WHERE c.key = copy)"
migrations.keep(
    Lifetime(
        "updates_digest_items",
        "which entries each digest post listed",
        timedelta(days=90),
        _COPY_AT,
    ),
    Lifetime(
        "updates_copies",
        "the posts made: room, kind, time (no text)",
        timedelta(days=90),
        "posted_at",
    ),
    Lifetime(
        "updates_entries",
        "feed entries seen: title, summary, link",
        timedelta(days=90),
        "last_seen",
    ),
    Lifetime(
        "updates_posts",
        "organisers' updates: text, rooms, author",
        timedelta(days=180),
        "COALESCE(posted_at, created_at)",
        "state IN ('posted', 'cancelled')",
    ),
    Lifetime("updates_feeds", "followed feeds: address, rooms, fetch state, who added", None),
)
