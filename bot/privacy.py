"""A person's own data: everything linked to them, exported or erased, on every platform.

A person is found through any one of their accounts: `People` gives the person's name
and every linked account, and each feature looks up its rows under all of those names
(`Subject`). Features take part through `Plugin.personal_data` (a `PersonalData` whose
hooks do nothing by default). Erasure runs in a fixed order that can be run again
safely: the bridged copies are queued for deletion first (while the map still names
them), then each feature's rows (in the reverse order of loading), then the audit
entries are untied from the person, and the account links go last, since every step
before finds the person through them. Nothing here is logged but counts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.audit import AuditLog
from bot.core.refs import RoomRef, UserRef
from bot.outbox import Target
from bot.people import People
from bot.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subject:
    """One person as the features store them: every account, and every name rows may be
    kept under (`People.person_of` gives the account, or the person id once linked)."""

    db: Database
    accounts: tuple[UserRef, ...]
    names: tuple[str, ...]

    def marks(self, values: Sequence[str]) -> str:
        return ", ".join("?" * len(values))

    @property
    def account_names(self) -> tuple[str, ...]:
        return tuple(str(a) for a in self.accounts)


@dataclass(frozen=True, slots=True)
class Copy:
    """A post the bot made for the person (a bridged copy of their message): its room
    and the delivery key that posted it."""

    room: RoomRef
    key: str


class PersonalData:
    """A feature's hooks over one person's rows. Each does nothing by default."""

    async def export(self, who: Subject) -> dict[str, Any]:
        """The person's rows, JSON-ready; an empty dict when there are none."""
        return {}

    async def erase(self, who: Subject) -> int:
        """Delete (or untie) the person's rows; how many. Must be safe to run again."""
        return 0

    async def copies(self, who: Subject) -> list[Copy]:
        """Posts the bot made of the person's messages, that may be deleted."""
        return []


class Source(Protocol):
    name: str
    personal_data: PersonalData


class Deleter(Protocol):
    async def delete_many(self, items: Sequence[tuple[str, Target, RoomRef]]) -> int: ...


@dataclass
class Erased:
    rows: dict[str, int] = field(default_factory=dict)
    copies_queued: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values()) + self.copies_queued


class Privacy:
    def __init__(self, db: Database, people: People, audit: AuditLog, sources: Sequence[Source]):
        self._db = db
        self._people = people
        self._audit = audit
        self._sources = list(sources)

    @property
    def audit_log(self) -> AuditLog:
        return self._audit

    async def subject(self, user: UserRef) -> Subject:
        person = await self._people.person_of(user)
        accounts = await self._people.accounts_of(person)
        if user not in accounts:
            accounts = [user, *accounts]
        names = dict.fromkeys([person, *(str(a) for a in accounts)])
        return Subject(self._db, tuple(accounts), tuple(names))

    async def export(self, user: UserRef, now: datetime) -> dict[str, Any]:
        who = await self.subject(user)
        data: dict[str, Any] = {
            "exported_at": now.isoformat(),
            "accounts": list(who.account_names),
        }
        linked = await self._db.fetchall(
            "SELECT account, linked_at FROM people_links"
            f" WHERE account IN ({who.marks(who.account_names)})",
            who.account_names,
        )
        if linked:
            data["account_links"] = [{"account": str(a), "linked_at": _iso(t)} for a, t in linked]
        actions = await self._audit.entries(actors=who.account_names)
        if actions:
            data["organiser_actions"] = [
                {
                    "seq": e.seq,
                    "at": e.at.isoformat(),
                    "action": e.action,
                    "association": e.association,
                    "detail": e.detail,
                    "actor": e.actor,
                }
                for e in actions
            ]
        for source in self._sources:
            part = await source.personal_data.export(who)
            if part:
                data[source.name] = part
        return data

    async def erase(
        self, user: UserRef, now: datetime, *, deleter: Deleter | None = None, by: str = "self"
    ) -> Erased:
        """Erase everything linked to `user`'s person; with a `deleter`, also queue the
        deletion of the bot's copies of their messages on every platform."""
        who = await self.subject(user)
        done = Erased()
        if deleter is not None:
            # A key of its own per copy: run again, each is queued once. One batch, in
            # one transaction: ten thousand copies are a few statements.
            doomed = [
                (f"erase:{copy.key}", Target(key=copy.key), copy.room)
                for source in self._sources
                for copy in await source.personal_data.copies(who)
            ]
            if doomed:
                done.copies_queued = await deleter.delete_many(doomed)
        for source in reversed(self._sources):
            async with self._db.transaction():
                count = await source.personal_data.erase(who)
            if count:
                done.rows[source.name] = count
        untied = await self._audit.pseudonymise(who.account_names)
        if untied:
            done.rows["audit"] = untied
        links = await self._db.fetchval(
            f"SELECT COUNT(*) FROM people_links WHERE account IN ({who.marks(who.account_names)})",
            who.account_names,
        )
        for account in who.accounts:
            await self._people.forget(account)
        if links:
            done.rows["people"] = int(links)
        if done.total:
            # Counts only: the entry says that someone was erased, not who.
            await self._audit.record(
                None, "person.erased", "", {"by": by, "rows": sum(done.rows.values())}, now
            )
        log.info(
            "erased a person's data: %d row(s), %d copies queued for deletion",
            sum(done.rows.values()),
            done.copies_queued,
        )
        return done


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), UTC).isoformat()
