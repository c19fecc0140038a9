"""Answers to "are you coming?": by command, by reaction (Matrix) and by button (Discord).

A reaction or a button press counts only on a reminder we posted: the message is looked
up in delivery (`key_for`), whose key names the event. One answer per person and
occurrence, whichever account gives it (`People.person_of`: a Matrix and a Discord
account linked are one person); a later answer replaces the earlier one, and when two
accounts that had both answered are linked, the later of their answers stays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from bot.core.clock import Clock
from bot.core.refs import MessageRef, UserRef
from bot.delivery import Delivery
from bot.people import People
from plugins.calendar.arming import RSVP_NO, RSVP_YES
from plugins.calendar.model import Occurrence, parse_reminder_key
from plugins.calendar.storage import Store

log = logging.getLogger(__name__)

YES: Final = "yes"
NO: Final = "no"
_WORDS: Final = {"yes": YES, "ja": YES, "no": NO, "nej": NO}
_YES_EMOJI: Final = frozenset({"👍", "✅", "✔", "☑", "🙋"})
_NO_EMOJI: Final = frozenset({"👎", "❌", "✖", "🚫"})
_BUTTONS: Final = {RSVP_YES: YES, RSVP_NO: NO}
# Variation selectors and skin tones: 👍🏽 and 👍️ are 👍.
_MODIFIERS: Final = {0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)}


def answer_of_word(word: str) -> str | None:
    return _WORDS.get(word.strip().lower())


def answer_of_emoji(key: str) -> str | None:
    base = "".join(ch for ch in key if ord(ch) not in _MODIFIERS)
    if base in _YES_EMOJI:
        return YES
    if base in _NO_EMOJI:
        return NO
    return None


def answer_of_button(custom_id: str) -> str | None:
    return _BUTTONS.get(custom_id)


class Answers:
    def __init__(self, store: Store, delivery: Delivery, people: People, clock: Clock) -> None:
        self.store = store
        self.delivery = delivery
        self.people = people
        self.clock = clock

    async def reminder_of(self, message: MessageRef) -> Occurrence | None:
        """The occurrence a reminder message of ours is about, if it is one."""
        key = await self.delivery.key_for(message)
        if key is None:
            return None
        found = parse_reminder_key(key, message.room)
        if found is None:
            return None
        return await self.store.find_any(*found)

    async def record(self, o: Occurrence, user: UserRef, answer: str) -> None:
        person = await self.people.person_of(user)
        await self.store.answer(o.uid, o.occ, person, answer, self.clock.now())
        log.debug("answer %s to %s (%s) recorded", answer, o.uid, o.occ)

    async def withdraw(self, o: Occurrence, user: UserRef, answer: str) -> bool:
        person = await self.people.person_of(user)
        return await self.store.withdraw(o.uid, o.occ, person, answer)

    async def renamed(self, olds: Sequence[str], new: str) -> None:
        """Accounts were linked or unlinked (`People.on_rename`): re-key their answers."""
        await self.store.rename_answers(olds, new)

    async def who(self, o: Occurrence) -> list[tuple[str, str]]:
        """(accounts, answer) per person who answered; linked accounts joined by " / "."""
        found = []
        for person, answer in await self.store.who(o.uid, o.occ):
            accounts = await self.people.accounts_of(person)
            found.append((" / ".join(str(a) for a in accounts) or person, answer))
        return found
