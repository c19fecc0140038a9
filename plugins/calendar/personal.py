"""A person's rows in the calendar: their answers (RSVPs), under any of their names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.privacy import PersonalData, Subject


class CalendarData(PersonalData):
    async def export(self, who: Subject) -> dict[str, Any]:
        rows = await who.db.fetchall(
            "SELECT r.uid, r.occ, r.answer, r.answered_at,"
            " (SELECT o.title FROM calendar_occurrences o WHERE o.uid = r.uid AND o.occ = r.occ"
            " LIMIT 1) FROM calendar_rsvp r"
            f" WHERE r.user_ref IN ({who.marks(who.names)}) ORDER BY r.uid, r.occ",
            who.names,
        )
        if not rows:
            return {}
        return {
            "rsvps": [
                {
                    "event": str(uid),
                    "occurrence": str(occ),
                    "title": str(title) if title is not None else None,
                    "answer": str(answer),
                    "at": datetime.fromtimestamp(float(at), UTC).isoformat() if at else None,
                }
                for uid, occ, answer, at, title in rows
            ]
        }

    async def erase(self, who: Subject) -> int:
        return await who.db.execute(
            f"DELETE FROM calendar_rsvp WHERE user_ref IN ({who.marks(who.names)})", who.names
        )
