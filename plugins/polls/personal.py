"""A person's rows in the polls: their votes in open polls (the native posts' view of
them too), the polls they created, and the secret ballots they cast in polls still
running.

A secret ballot is keyed by an HMAC of the person under the poll's own key, which exists
only while the poll runs: until the close the bot can tell that this person voted (that
is what lets them change their vote), so that much is theirs. The export names the
poll, never what the ballot chose; the erasure deletes the ballot and its receipt, as a
withdrawn vote. After the close the key is gone and the receipts are tied to nobody:
there is nothing left to find."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.privacy import PersonalData, Subject
from plugins.polls.storage import split, voter_hmac


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
        secret = await self._secret_ballots(who)
        if secret:
            found["secret_ballots"] = [
                {"poll": pid, "question": question} for pid, question, _voter, _receipt in secret
            ]
        return found

    async def _secret_ballots(self, who: Subject) -> list[tuple[int, str, str, str]]:
        """(poll, question, voter hash, receipt) of each ballot the person holds in a
        secret poll that still has its key."""
        running = await who.db.fetchall(
            "SELECT id, question, ballot_key FROM polls_polls"
            " WHERE secret = 1 AND ballot_key IS NOT NULL ORDER BY id"
        )
        found: list[tuple[int, str, str, str]] = []
        for pid, question, raw_key in running:
            key = bytes.fromhex(str(raw_key))
            voters = [voter_hmac(key, name) for name in who.names]
            rows = await who.db.fetchall(
                "SELECT voter, receipt FROM polls_ballots"
                f" WHERE poll_id = ? AND voter IN ({who.marks(voters)})",
                (pid, *voters),
            )
            found.extend((int(pid), str(question), str(v), str(r)) for v, r in rows)
        return found

    async def erase(self, who: Subject) -> int:
        names = who.names
        count = 0
        for pid, _question, voter, receipt in await self._secret_ballots(who):
            # As a withdrawn vote: the receipt goes with the ballot, so the tally at the
            # close no longer counts it.
            count += await who.db.execute(
                "DELETE FROM polls_receipts WHERE poll_id = ? AND receipt = ?", (pid, receipt)
            )
            count += await who.db.execute(
                "DELETE FROM polls_ballots WHERE poll_id = ? AND voter = ?", (pid, voter)
            )
        count += await who.db.execute(
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
