"""A person's rows in the bridge's map: the copies of their messages and reactions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core.refs import RoomRef
from bot.privacy import Copy, PersonalData, Subject


class BridgeData(PersonalData):
    async def export(self, who: Subject) -> dict[str, Any]:
        rows = await who.db.fetchall(
            "SELECT origin, room, key, kind, created_at FROM bridge_map"
            f" WHERE author IN ({who.marks(who.account_names)}) ORDER BY created_at, key",
            who.account_names,
        )
        if not rows:
            return {}
        return {
            "copies": [
                {
                    "of": str(origin),
                    "room": str(room),
                    "delivery_key": str(key).split("|", 1)[0],
                    "kind": str(kind),
                    "at": datetime.fromtimestamp(float(at), UTC).isoformat(),
                }
                for origin, room, key, kind, at in rows
            ]
        }

    async def erase(self, who: Subject) -> int:
        return await who.db.execute(
            f"DELETE FROM bridge_map WHERE author IN ({who.marks(who.account_names)})",
            who.account_names,
        )

    async def copies(self, who: Subject) -> list[Copy]:
        rows = await who.db.fetchall(
            "SELECT room, key FROM bridge_map WHERE kind = 'message'"
            f" AND author IN ({who.marks(who.account_names)}) ORDER BY created_at, key",
            who.account_names,
        )
        return [Copy(RoomRef.parse(str(room)), str(key)) for room, key in rows]
