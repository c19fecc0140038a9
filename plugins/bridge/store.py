"""The message map: source message -> its copies, by delivery key. No text is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.refs import MessageRef, RoomRef
from bot.lifetimes import Lifetime
from bot.storage.database import Database
from bot.storage.migrations import Migrations

migrations = Migrations("bridge")


@migrations.step(1)
async def _initial(db: Database) -> None:
    # origin: the source message ("<room>/<id>"); key: the delivery key of its copy in
    # room; kind: message or reaction (a reaction's copies are removed with it).
    await db.execute(
        "CREATE TABLE bridge_map ("
        " origin TEXT NOT NULL,"
        " room TEXT NOT NULL,"
        " key TEXT NOT NULL UNIQUE,"
        " kind TEXT NOT NULL,"
        " bridge TEXT NOT NULL,"
        " created_at REAL NOT NULL,"
        " PRIMARY KEY (origin, room))"
    )
    await db.execute("CREATE INDEX bridge_map_created ON bridge_map (created_at)")
    await db.execute("CREATE INDEX bridge_map_room ON bridge_map (room, created_at)")


@migrations.step(2)
async def _author(db: Database) -> None:
    # Whose message (or reaction) a copy is, so that a person's copies can be exported
    # and deleted when they ask. Rows from before carry none.
    await db.execute("ALTER TABLE bridge_map ADD COLUMN author TEXT")
    await db.execute("CREATE INDEX bridge_map_author ON bridge_map (author)")


# An upper bound: each bridge's `retention` (30 days by default) applies too.
migrations.keep(
    Lifetime(
        "bridge_map",
        "which copy in which room is of which message, and its author (no text)",
        timedelta(days=30),
        "created_at",
    )
)


@dataclass(frozen=True, slots=True)
class Copy:
    room: RoomRef
    key: str

    @property
    def delivery_key(self) -> str:
        """The copy's delivery key. A reaction's copy is remembered under two names (its
        own event, and who reacted how on what), each row with a `|<name>` suffix on the
        key, because keys are unique in the map."""
        return self.key.split("|", 1)[0]


class BridgeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        origin: str,
        room: RoomRef,
        key: str,
        kind: str,
        bridge: str,
        now: datetime,
        author: str | None = None,
    ) -> None:
        await self._db.execute(
            "INSERT INTO bridge_map (origin, room, key, kind, bridge, created_at, author)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (origin, str(room), key, kind, bridge, now.timestamp(), author),
        )

    async def copies(self, origin: str) -> list[Copy]:
        rows = await self._db.fetchall(
            "SELECT room, key FROM bridge_map WHERE origin = ? ORDER BY room", (origin,)
        )
        return [Copy(RoomRef.parse(r), str(k)) for r, k in rows]

    async def origin_of_key(self, key: str) -> MessageRef | None:
        value = await self._db.fetchval("SELECT origin FROM bridge_map WHERE key = ?", (key,))
        return MessageRef.parse(value) if value is not None else None

    async def last_relay(self, room: RoomRef) -> datetime | None:
        value = await self._db.fetchval(
            "SELECT MAX(created_at) FROM bridge_map WHERE room = ?", (str(room),)
        )
        return datetime.fromtimestamp(float(value), UTC) if value is not None else None

    async def forget(self, bridge: str, before: datetime) -> int:
        return await self._db.execute(
            "DELETE FROM bridge_map WHERE bridge = ? AND created_at < ?",
            (bridge, before.timestamp()),
        )
