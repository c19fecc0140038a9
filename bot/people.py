"""People, not accounts: one person may use a Matrix and a Discord account, linked.

A vote or an RSVP counts once per person. `person_of` names the person behind an
account: the account itself (`matrix:@anna:hs`) until it is linked, then a person id
shared by every linked account. Plugins only ever see these names.
"""

from __future__ import annotations

import logging

from bot.core.refs import UserRef
from bot.storage.database import Database

log = logging.getLogger(__name__)


class People:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def person_of(self, user: UserRef) -> str:
        """The stable name of the person behind `user` (the account itself if unlinked)."""
        return str(user)

    async def accounts_of(self, person: str) -> list[UserRef]:
        """Every account of `person` (one, if unlinked)."""
        return [UserRef.parse(person)] if ":" in person else []
