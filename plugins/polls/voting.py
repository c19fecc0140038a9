"""Casting votes: who votes (a person, not an account), under which association, and how
an open vote or a secret ballot is kept.

A person's latest vote counts, once per poll, whichever room or platform it comes from.
It counts under the association of the room it was cast in; from a direct message (a
room that is no association's), under the association whose poll room the voter is in.
An open vote is kept by person. A secret ballot is kept by HMAC-SHA256 of the person
under the poll's own random key, so that a revote replaces it, and carries the hash of
a fresh receipt code; the code itself goes only to the voter. The vote and the answer
to the voter are written in one transaction: a crash loses both or neither.

Nothing here logs who voted, nor what anyone chose.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from bot.core.errors import UserError
from bot.core.events import PollVotesSnapshot
from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.plugin import PluginContext
from plugins.polls.formatting import Formatter
from plugins.polls.model import CLOSING, OPEN, PollRecord, parse_start_key
from plugins.polls.storage import Store, voter_hmac

log = logging.getLogger(__name__)

# No 0/O, 1/I/L: a code read aloud or copied by hand survives.
RECEIPT_ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
RECEIPT_LENGTH: Final = 8
TEXT_SOURCE: Final = "text"


def new_receipt() -> str:
    code = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(RECEIPT_LENGTH))
    return f"{code[:4]}-{code[4:]}"


def normal_receipt(text: str) -> str:
    """A code as typed (any case, with or without the dash) in its printed form."""
    bare = "".join(ch for ch in text.upper() if ch.isalnum())
    return f"{bare[:4]}-{bare[4:]}" if len(bare) == RECEIPT_LENGTH else bare


def receipt_hash(poll_id: int, code: str) -> str:
    return hashlib.sha256(f"{poll_id}:{normal_receipt(code)}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    """Where and how the voter is answered: `key` names the answer in delivery (under
    the poll's ack prefix), `confirm` whether a counted vote is confirmed at all (a
    native Matrix vote is not: the poll on screen shows it)."""

    key: str
    room: RoomRef
    reply_to: MessageRef | None
    ephemeral: bool
    language: str
    confirm: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    counted: bool
    key: str | None  # the catalog key of the answer; None: nothing to say
    params: dict[str, object] = field(default_factory=dict)


class Voting:
    def __init__(self, ctx: PluginContext, store: Store, fmt: Formatter) -> None:
        self.ctx = ctx
        self.store = store
        self.fmt = fmt
        self._locks: dict[int, asyncio.Lock] = {}

    def lock(self, poll_id: int) -> asyncio.Lock:
        """One writer per poll: a toggle reads before it writes, and the count at the
        close must see every vote that got in."""
        return self._locks.setdefault(poll_id, asyncio.Lock())

    async def poll_of_post(self, ref: MessageRef) -> tuple[PollRecord, RoomRef] | None:
        """The poll a platform message of ours starts, and its room."""
        key = await self.ctx.delivery.key_for(ref)
        found = parse_start_key(key) if key else None
        if found is None:
            return None
        poll = await self.store.get(found[0])
        return (poll, found[1]) if poll is not None else None

    async def association_for(self, poll: PollRecord, room: RoomRef, user: UserRef) -> str:
        assoc = self.ctx.associations.of_room(room)
        if assoc is not None:
            if room not in poll.rooms:
                raise UserError("polls.vote.not_here", id=poll.id)
            return assoc.id
        # A direct message: the voter's association is that of a poll room they are in.
        theirs = set(await self.ctx.member_rooms(user))
        for posted in poll.rooms:
            found = self.ctx.associations.of_room(posted)
            if posted in theirs and found is not None:
                return found.id
        raise UserError("polls.vote.no_room", id=poll.id)

    @staticmethod
    def _check_open(poll: PollRecord, at: datetime) -> None:
        if not poll.accepts_votes() or at >= poll.cutoff:
            raise UserError("polls.vote.closed", id=poll.id)

    @staticmethod
    def checked(poll: PollRecord, answers: Sequence[str]) -> tuple[str, ...]:
        unique = tuple(dict.fromkeys(answers))
        for answer in unique:
            if answer not in poll.answer_ids:
                raise UserError(
                    "polls.vote.unknown_answer", id=poll.id, answer=answer, count=len(poll.answers)
                )
        if len(unique) > poll.max_selections:
            raise UserError("polls.vote.too_many", id=poll.id, max=poll.max_selections)
        return unique

    @staticmethod
    def toggled(poll: PollRecord, current: Sequence[str], clicked: Sequence[str]) -> list[str]:
        chosen = list(current)
        for answer in clicked:
            if answer in chosen:
                chosen.remove(answer)
            elif poll.max_selections <= 1:
                chosen = [answer]
            else:
                chosen.append(answer)
        return chosen

    async def cast(
        self,
        poll_id: int,
        *,
        user: UserRef,
        room: RoomRef,
        answers: Sequence[str],
        at: datetime,
        source: str,
        reply: Reply,
        toggle: bool = False,
    ) -> Outcome:
        """Count a vote (empty `answers`: take it back) and answer the voter; a refusal
        raises UserError, and nothing is stored then."""
        poll = await self.store.get(poll_id)
        if poll is None:
            raise UserError("polls.not_found", id=poll_id)
        self._check_open(poll, at)
        # Looked up before the lock: asking a platform which rooms a voter is in must
        # not hold up the poll's other votes.
        association = await self.association_for(poll, room, user)
        person = await self.ctx.people.person_of(user)
        if not toggle:
            answers = self.checked(poll, answers)
        async with self.lock(poll_id):
            fresh = await self.store.get(poll_id)
            assert fresh is not None
            self._check_open(fresh, at)
            async with self.store.db.transaction():
                if poll.secret:
                    outcome = await self._secret(poll, person, association, answers, toggle)
                else:
                    outcome = await self._open(
                        poll, person, association, answers, toggle, at, source, room
                    )
                await self.answer(reply, outcome)
            return outcome

    async def _open(
        self,
        poll: PollRecord,
        person: str,
        association: str,
        answers: Sequence[str],
        toggle: bool,
        at: datetime,
        source: str,
        room: RoomRef,
    ) -> Outcome:
        current = await self.store.vote_of(poll.id, person)
        if current is not None and current[2] > at.timestamp():
            # An older vote delivered late (a catch-up after downtime): the later counts.
            return Outcome(False, None)
        if toggle:
            answers = self.checked(poll, self.toggled(poll, current[0] if current else (), answers))
        if source != TEXT_SOURCE:
            await self.store.set_seen(poll.id, room, person, answers)
        if not answers:
            removed = await self.store.delete_vote(poll.id, person)
            key = "polls.vote.withdrawn" if removed else "polls.vote.nothing"
            return Outcome(removed, key, {"id": poll.id})
        await self.store.put_vote(poll.id, person, association, answers, source, at)
        return Outcome(True, "polls.vote.recorded", self._params(poll, answers, association))

    async def _secret(
        self,
        poll: PollRecord,
        person: str,
        association: str,
        answers: Sequence[str],
        toggle: bool,
    ) -> Outcome:
        key = await self.store.ballot_key(poll.id)
        if key is None:
            raise UserError("polls.vote.closed", id=poll.id)
        voter = voter_hmac(key, person)
        current = await self.store.ballot(poll.id, voter)
        if toggle:
            answers = self.checked(poll, self.toggled(poll, current[0] if current else (), answers))
        if not answers:
            if current is None:
                return Outcome(False, "polls.vote.nothing", {"id": poll.id})
            await self.store.delete_ballot(poll.id, voter, current[1])
            return Outcome(True, "polls.vote.withdrawn", {"id": poll.id})
        code = new_receipt()
        await self.store.put_ballot(
            poll.id,
            voter,
            association,
            answers,
            receipt_hash(poll.id, code),
            current[1] if current else None,
        )
        params = self._params(poll, answers, association)
        params["code"] = code
        return Outcome(True, "polls.vote.recorded_secret", params)

    def _params(
        self, poll: PollRecord, answers: Sequence[str], association: str
    ) -> dict[str, object]:
        return {
            "id": poll.id,
            "choice": self.fmt.choice(poll, answers),
            "association": association,
        }

    async def answer(self, reply: Reply, outcome: Outcome) -> None:
        if outcome.key is None or (outcome.counted and not reply.confirm):
            return
        params = dict(outcome.params)
        if "association" in params:
            params["association"] = self.fmt.association(str(params["association"]), reply.language)
        params.setdefault("id", "")
        text = self.fmt.t(outcome.key, reply.language, **params)
        await self.tell(reply, text)

    async def tell(self, reply: Reply, text: str) -> None:
        message = OutgoingMessage(text=text, reply_to=reply.reply_to, ephemeral=reply.ephemeral)
        await self.ctx.delivery.send(reply.key, reply.room, message)

    async def renamed(self, olds: Sequence[str], new: str) -> None:
        """Accounts were linked or unlinked (`People.on_rename`, inside its transaction):
        their votes in running polls become one, the latest."""
        for poll in await self.store.in_states(OPEN, CLOSING):
            if poll.secret:
                merged = await self.store.rename_ballots(poll.id, olds, new)
            else:
                merged = await self.store.rename_votes(poll.id, olds, new)
            if merged:
                log.info("poll %d: votes of linked accounts joined", poll.id)

    # -- a native post's full list of voters --------------------------------------------

    async def reconcile(self, event: PollVotesSnapshot) -> int:
        """Apply what changed on one native post since it last reported: a voter whose
        choice there differs from what the post last told us changed it there (while we
        were away); one gone from the list took it back there. Returns the changes."""
        found = await self.poll_of_post(event.poll)
        if found is None:
            return 0
        poll, room = found
        assoc = self.ctx.associations.of_room(room)
        if poll.secret or assoc is None:
            log.warning("a voter list arrived for poll %d, which has no native post", poll.id)
            return 0
        changes = 0
        async with self.lock(poll.id):
            fresh = await self.store.get(poll.id)
            if fresh is None or not fresh.accepts_votes():
                return 0
            seen = await self.store.seen(poll.id, room)
            now: dict[str, tuple[str, ...]] = {}
            for sender, answers in event.votes:
                now[await self.ctx.people.person_of(sender.user)] = tuple(answers)
            async with self.store.db.transaction():
                for person, listed in now.items():
                    if seen.get(person, ()) == listed:
                        continue
                    try:
                        answers = self.checked(poll, listed)
                    except UserError:
                        log.info("poll %d: a listed vote does not fit the poll; ignored", poll.id)
                        continue
                    changes += 1
                    await self.store.set_seen(poll.id, room, person, answers)
                    if answers:
                        await self.store.put_vote(
                            poll.id, person, assoc.id, answers, str(room), event.at
                        )
                    else:
                        await self.store.delete_vote(poll.id, person)
                for person in seen.keys() - now.keys():
                    changes += 1
                    await self.store.set_seen(poll.id, room, person, ())
                    current = await self.store.vote_of(poll.id, person)
                    if current is not None and current[1] == str(room):
                        await self.store.delete_vote(poll.id, person)
        log.info("poll %d: %d change(s) from the voter list of %s", poll.id, changes, room)
        return changes
