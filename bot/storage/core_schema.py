"""The framework's own tables: outbox, schedule, inbound position and repeats."""

from __future__ import annotations

from datetime import timedelta

from bot.lifetimes import Lifetime
from bot.storage.database import Database
from bot.storage.migrations import Migrations

core_migrations = Migrations("core")


@core_migrations.step(1)
async def _initial(db: Database) -> None:
    # The outbox: every automated post, keyed. `payload` holds the message until it is
    # sent and is cleared then, so message text is kept no longer than needed.
    await db.execute(
        "CREATE TABLE outbox ("
        " id INTEGER PRIMARY KEY,"
        " key TEXT NOT NULL UNIQUE,"
        " lane TEXT NOT NULL,"
        " action TEXT NOT NULL,"
        " room TEXT NOT NULL,"
        " target TEXT,"
        " payload TEXT,"
        " status TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " next_attempt REAL NOT NULL,"
        " last_error TEXT,"
        " message_id TEXT,"
        " created_at REAL NOT NULL,"
        " done_at REAL)"
    )
    await db.execute("CREATE INDEX outbox_pending ON outbox (status, lane, id)")
    await db.execute("CREATE INDEX outbox_message ON outbox (room, message_id)")
    # Wake-ups: the truth about what is due; APScheduler only wakes the bot for them.
    await db.execute(
        "CREATE TABLE schedule ("
        " key TEXT PRIMARY KEY,"
        " owner TEXT NOT NULL,"
        " handler TEXT NOT NULL,"
        " due_at REAL NOT NULL,"
        " payload TEXT NOT NULL,"
        " cron TEXT,"
        " status TEXT NOT NULL,"
        " done_at REAL)"
    )
    await db.execute("CREATE INDEX schedule_due ON schedule (status, due_at)")
    # Inbound events already handled, by platform event id, to drop repeats.
    await db.execute(
        "CREATE TABLE inbound_seen ("
        " platform TEXT NOT NULL,"
        " event_id TEXT NOT NULL,"
        " seen_at REAL NOT NULL,"
        " PRIMARY KEY (platform, event_id))"
    )
    # Small per-adapter state: the Matrix sync token, the last Discord id per channel.
    await db.execute(
        "CREATE TABLE adapter_state ("
        " platform TEXT NOT NULL,"
        " key TEXT NOT NULL,"
        " value TEXT NOT NULL,"
        " PRIMARY KEY (platform, key))"
    )


@core_migrations.step(2)
async def _schedule_grace(db: Database) -> None:
    # A job may carry its own grace: housekeeping is worth running however late.
    await db.execute("ALTER TABLE schedule ADD COLUMN grace REAL")


@core_migrations.step(3)
async def _outbox_claims(db: Database) -> None:
    # Which delivery instance may send a pending row, and until when (a lease): two
    # processes on one database never send one row twice. Rows from before have no
    # claim and are claimed by the first instance that reads them.
    await db.execute("ALTER TABLE outbox ADD COLUMN claimed_by TEXT")
    await db.execute("ALTER TABLE outbox ADD COLUMN claimed_until REAL")


@core_migrations.step(4)
async def _gateway_logins(db: Database) -> None:
    # One row per gateway login (a Discord IDENTIFY), so that every instance on the
    # database and every restart counts against the platform's daily limit.
    await db.execute(
        "CREATE TABLE gateway_logins ("
        " id INTEGER PRIMARY KEY,"
        " platform TEXT NOT NULL,"
        " at REAL NOT NULL)"
    )
    await db.execute("CREATE INDEX gateway_logins_at ON gateway_logins (platform, at)")


# Finished deliveries stay 60 days so that a key never posts twice while it can still
# come up (housekeeping forgets them too); inbound ids guard against repeats only.
core_migrations.keep(
    Lifetime(
        "outbox",
        "automated posts: key, room, platform id; text only until sent",
        timedelta(days=60),
        age="COALESCE(done_at, created_at)",
        where="status <> 'pending'",
    ),
    Lifetime(
        "schedule",
        "wake-ups: what is due when (no text)",
        timedelta(days=30),
        age="done_at",
        where="status <> 'pending' AND cron IS NULL",
    ),
    Lifetime("inbound_seen", "ids of inbound events already handled", timedelta(days=7), "seen_at"),
    # Counted over a rolling day: older logins count for nothing.
    Lifetime(
        "gateway_logins", "when the bot logged in to a gateway (no text)", timedelta(days=1), "at"
    ),
    Lifetime("adapter_state", "each platform's sync position", None),
    Lifetime("schema_version", "the schema version of each namespace", None),
)
