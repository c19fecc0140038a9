"""People, not accounts: one person may use a Matrix and a Discord account, linked.

A vote or an RSVP counts once per person. `person_of` names the person behind an
account: the account itself (`matrix:@anna:hs`) until it is linked, then a random person
id (`person:3f9c…`) shared by every linked account. Plugins only ever see these names.

Linking: `start_link` gives an account a one-time code (valid 10 minutes, one pending per
account, a new request replaces the old); `complete_link`, from an account of another
platform, ties both to one person. A code shown where others may read it (Matrix has no
answer to one person alone) does not link by itself: whoever redeems it gets a second
code, shown to them alone, that only the asker's account may type. Otherwise anyone in
the room could tie their own account to the asker's and vote in the asker's name.
Wrong codes are bounded per account (5 tries per 10 minutes, whatever the code), and an
account already linked to another person is refused: `unlink` first.

Consumers that keep rows per `person_of` name listen with `on_rename(listener)`: after a
link, rows under the old names (each account, or a person it already was) belong to the
new person; when an unlink leaves a person with one account, the person's rows go back to
that account, and the account that left starts afresh. Listeners run inside the link's
transaction (so they must not open one), and a link and the re-keying commit together.
Which of two merged rows survives is the consumer's rule: ours is "the latest counts".
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from bot.core.refs import UserRef
from bot.storage.database import Database

log = logging.getLogger(__name__)

CODE_TTL: Final = timedelta(minutes=10)
TRY_WINDOW: Final = timedelta(minutes=10)
MAX_TRIES: Final = 5
# Letters and digits that cannot be mistaken for one another (no 0/O, no 1/I): 32 of
# them, 8 characters, 40 bits; five tries per ten minutes make guessing hopeless.
ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH: Final = 8
PERSON_PREFIX: Final = "person:"
_CACHE_MAX: Final = 10_000

Renamed = Callable[[tuple[str, ...], str], Awaitable[None]]


class LinkRefused(Exception):
    """A link or unlink that cannot be done. `reason`: unknown, expired, same_platform,
    too_many_tries (`wait`: until the next try), already_linked, linked_elsewhere,
    not_linked."""

    def __init__(self, reason: str, *, wait: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


@dataclass(frozen=True, slots=True)
class Completion:
    """What a code did: linked the caller to `other` (`person` set), or, for a code that
    may have been seen by others, gave a `confirm_code` for `other` to type."""

    other: UserRef
    person: str | None = None
    confirm_code: str | None = None


def normalize_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def _hash(code: str) -> str:
    # Stored hashed: the database at rest never holds a code that would still work.
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


class People:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Asked for every vote and RSVP: kept in memory, dropped for an account whenever
        # its link changes. `_generation` keeps a read that raced a change out of it.
        self._cache: dict[str, str] = {}
        self._generation = 0
        self._listeners: list[Renamed] = []

    def on_rename(self, listener: Renamed) -> Callable[[], None]:
        """Call `listener(old_names, new_name)` whenever names merge or split (see the
        module's docstring); returns what removes it again."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def person_of(self, user: UserRef) -> str:
        """The stable name of the person behind `user` (the account itself if unlinked)."""
        key = str(user)
        found = self._cache.get(key)
        if found is not None:
            return found
        generation = self._generation
        person = await self._db.fetchval(
            "SELECT person FROM people_links WHERE account = ?", (key,)
        )
        name = str(person) if person is not None else key
        # Not kept if read inside a transaction (it may still roll back) or if a link
        # changed while the read was waiting.
        if generation == self._generation and not self._db.in_transaction():
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = name
        return name

    async def accounts_of(self, person: str) -> list[UserRef]:
        """Every account of `person` (one, if it names an unlinked account)."""
        if person.startswith(PERSON_PREFIX):
            rows = await self._db.fetchall(
                "SELECT account FROM people_links WHERE person = ? ORDER BY account", (person,)
            )
            return [UserRef.parse(str(row[0])) for row in rows]
        try:
            return [UserRef.parse(person)]
        except ValueError:
            return []

    # -- linking ------------------------------------------------------------------------

    async def start_link(self, user: UserRef, now: datetime, *, private: bool = False) -> str:
        """A new one-time code for `user`, replacing any pending one. `private`: it is
        shown to `user` alone; otherwise redeeming it asks `user` to confirm."""
        async with self._db.transaction():
            await self._purge(now)
            code = await self._fresh_code()
            await self._put_code(str(user), code, now, confirm=not private, partner=None)
        log.debug("%s asked for a link code", user)
        return code

    async def complete_link(self, user: UserRef, code: str, now: datetime) -> Completion:
        """Redeem `code` from `user`. Raises LinkRefused."""
        async with self._db.transaction():
            # Decided inside, raised outside: a wrong try must be recorded, not rolled back.
            outcome = await self._complete(user, code, now)
        if isinstance(outcome, LinkRefused):
            log.info("a link by %s was refused: %s", user, outcome.reason)
            raise outcome
        return outcome

    async def unlink(self, user: UserRef) -> None:
        """Take `user` out of its person. Raises LinkRefused("not_linked")."""
        async with self._db.transaction():
            person = await self._linked_person(user)
            if person is None:
                raise LinkRefused("not_linked")
            await self._db.execute("DELETE FROM people_links WHERE account = ?", (str(user),))
            rest = await self.accounts_of(person)
            if len(rest) == 1:
                # A person of one account is just that account again.
                await self._db.execute(
                    "DELETE FROM people_links WHERE account = ?", (str(rest[0]),)
                )
                await self._renamed((person,), str(rest[0]))
            self._forget_after_commit([user, *rest])
        log.info("%s was unlinked", user)

    async def forget(self, user: UserRef) -> None:
        """Everything stored about `user` here: its link, its codes, its tries."""
        with contextlib.suppress(LinkRefused):
            await self.unlink(user)
        account = str(user)
        async with self._db.transaction():
            await self._db.execute(
                "DELETE FROM people_codes WHERE account = ? OR partner = ?", (account, account)
            )
            await self._db.execute("DELETE FROM people_tries WHERE account = ?", (account,))

    async def purge(self, now: datetime) -> None:
        """Forget codes and wrong tries that no longer matter."""
        async with self._db.transaction():
            await self._purge(now)

    # -- inside the transactions ---------------------------------------------------------

    async def _complete(self, user: UserRef, code: str, now: datetime) -> Completion | LinkRefused:
        account = str(user)
        await self._purge(now)
        tries = await self._db.fetchall(
            "SELECT tried_at FROM people_tries WHERE account = ? AND tried_at > ?",
            (account, (now - TRY_WINDOW).timestamp()),
        )
        if len(tries) >= MAX_TRIES:
            first = min(float(t[0]) for t in tries)
            wait = timedelta(seconds=first + TRY_WINDOW.total_seconds() - now.timestamp())
            return LinkRefused("too_many_tries", wait=wait)
        row = await self._db.fetchone(
            "SELECT account, expires_at, confirm, partner FROM people_codes WHERE code_hash = ?",
            (_hash(code),),
        )
        # A confirmation code typed by anyone but its partner is as good as unknown.
        if row is None or (row[3] is not None and row[3] != account):
            return await self._wrong(account, now, "unknown")
        asker = UserRef.parse(str(row[0]))
        if float(row[1]) <= now.timestamp():
            await self._db.execute("DELETE FROM people_codes WHERE account = ?", (str(asker),))
            return await self._wrong(account, now, "expired")
        if asker.platform == user.platform:
            # A try all the same: else one platform could probe for the other's codes.
            return await self._wrong(account, now, "same_platform")
        await self._db.execute("DELETE FROM people_codes WHERE account = ?", (str(asker),))
        refused = await self._joinable(asker, user)
        if refused is not None:
            return refused
        if row[2] and row[3] is None:
            confirm = await self._fresh_code()
            await self._put_code(account, confirm, now, confirm=False, partner=str(asker))
            return Completion(other=asker, confirm_code=confirm)
        return Completion(other=asker, person=await self._link(asker, user, now))

    async def _wrong(self, account: str, now: datetime, reason: str) -> LinkRefused:
        await self._db.execute(
            "INSERT INTO people_tries (account, tried_at) VALUES (?, ?)",
            (account, now.timestamp()),
        )
        return LinkRefused(reason)

    async def _joinable(self, a: UserRef, b: UserRef) -> LinkRefused | None:
        pa, pb = await self._linked_person(a), await self._linked_person(b)
        if pa is not None and pa == pb:
            return LinkRefused("already_linked")
        if pa is not None and pb is not None:
            return LinkRefused("linked_elsewhere")
        person = pa or pb
        if person is None:
            return None
        joining = b if pa is not None else a
        # One account per platform and person: else two votes could count as one.
        if any(m.platform == joining.platform for m in await self.accounts_of(person)):
            return LinkRefused("linked_elsewhere")
        return None

    async def _link(self, a: UserRef, b: UserRef, now: datetime) -> str:
        pa, pb = await self._linked_person(a), await self._linked_person(b)
        person = pa or pb or PERSON_PREFIX + secrets.token_hex(8)
        for account, current in ((a, pa), (b, pb)):
            if current is None:
                await self._db.execute(
                    "INSERT INTO people_links (account, person, linked_at) VALUES (?, ?, ?)",
                    (str(account), person, now.timestamp()),
                )
        olds = tuple(name for name in (pa or str(a), pb or str(b)) if name != person)
        await self._renamed(olds, person)
        self._forget_after_commit([a, b])
        log.info("%s and %s are now one person", a, b)
        return person

    async def _renamed(self, olds: tuple[str, ...], new: str) -> None:
        for listener in list(self._listeners):
            await listener(olds, new)

    async def _linked_person(self, user: UserRef) -> str | None:
        found = await self._db.fetchval(
            "SELECT person FROM people_links WHERE account = ?", (str(user),)
        )
        return str(found) if found is not None else None

    async def _fresh_code(self) -> str:
        while True:
            code = _new_code()
            taken = await self._db.fetchval(
                "SELECT 1 FROM people_codes WHERE code_hash = ?", (_hash(code),)
            )
            if taken is None:
                return code

    async def _put_code(
        self, account: str, code: str, now: datetime, *, confirm: bool, partner: str | None
    ) -> None:
        await self._db.execute(
            "INSERT INTO people_codes (account, code_hash, expires_at, confirm, partner)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET"
            " code_hash = excluded.code_hash, expires_at = excluded.expires_at,"
            " confirm = excluded.confirm, partner = excluded.partner",
            (account, _hash(code), (now + CODE_TTL).timestamp(), int(confirm), partner),
        )

    async def _purge(self, now: datetime) -> None:
        # Expired codes stay one more lifetime, so that a late try hears "expired".
        await self._db.execute(
            "DELETE FROM people_codes WHERE expires_at <= ?", ((now - CODE_TTL).timestamp(),)
        )
        await self._db.execute(
            "DELETE FROM people_tries WHERE tried_at <= ?", ((now - TRY_WINDOW).timestamp(),)
        )

    def _forget_after_commit(self, accounts: Iterable[UserRef]) -> None:
        keys = [str(a) for a in accounts]

        def forget() -> None:
            for key in keys:
                self._cache.pop(key, None)
            self._generation += 1

        self._db.after_commit(forget)
