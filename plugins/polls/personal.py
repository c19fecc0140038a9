"""A person's rows in the polls: their votes in open polls (the native posts' view of
them too), and the polls they created. Secret ballots are keyed by a hash under the
poll's own key and tied to nobody: they are neither exported nor looked for."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.privacy import PersonalData, Subject
from plugins.polls.storage import split


class PollsData(PersonalData):
    async def export(self, who: Subject) -> dict[str, Any]:
        names = who.names
        votes = await who.db.fetchall(
            "SELECT v.poll_id, p.question, p.answers, v.answers, v.association, v.cast_at"
            " FROM polls_votes v JOIN polls_polls p ON p.id = v.poll_id"
            f" WHERE v.person IN ({who.marks(names)}) ORDER BY v.poll_id",
            names,
        )
        seen = await who.db.fetchall(
            f"SELECT poll_id, room, answers FROM polls_seen WHERE person IN ({who.marks(names)})"
            " ORDER BY poll_id, room",
            names,
        )
        created = await who.db.fetchall(
            "SELECT id, question, state, created_at FROM polls_polls"
            f" WHERE creator IN ({who.marks(names)}) ORDER BY id",
            names,
        )
        found: dict[str, Any] = {}
        if votes:
            found["votes"] = [
                {
                    "poll": int(pid),
                    "question": str(question),
                    "options": [str(a) for a in json.loads(options)],
                    "chosen": list(split(chosen)),
                    "association": str(assoc),
                    "at": datetime.fromtimestamp(float(at), UTC).isoformat(),
                }
                for pid, question, options, chosen, assoc, at in votes
            ]
        if seen:
            found["native_votes_seen"] = [
                {"poll": int(pid), "room": str(room), "answers": str(answers)}
                for pid, room, answers in seen
            ]
        if created:
            found["created"] = [
                {
                    "poll": int(pid),
                    "question": str(q),
                    "state": str(state),
                    "at": datetime.fromtimestamp(float(at), UTC).isoformat(),
                }
                for pid, q, state, at in created
            ]
        return found

    async def erase(self, who: Subject) -> int:
        names = who.names
        count = await who.db.execute(
            f"DELETE FROM polls_votes WHERE person IN ({who.marks(names)})", names
        )
        count += await who.db.execute(
            f"DELETE FROM polls_seen WHERE person IN ({who.marks(names)})", names
        )
        # The poll stays (others voted in it); only who created it is forgotten.
        count += await who.db.execute(
            f"UPDATE polls_polls SET creator = NULL WHERE creator IN ({who.marks(names)})",
            names,
        )
        return count
