"""Direct messages with the bot, and who is in which configured room.

A member of a configured room may open a direct chat with the bot (an invite marked
`is_direct`, as Element sends it): that is where a secret poll's `vote` is written,
seen by no one else (and encrypted where the chat is). The bot joins such a chat only
when the inviter shares a configured room with it, so that strangers cannot fill it
with rooms. Membership is asked of the homeserver, not read from the client's member
lists, which lazy loading leaves incomplete. The direct rooms the bot joined are kept
in the adapter state: there, messages sent while the bot was still only invited count
too (a member may write before the bot has joined).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from nio import AsyncClient

from bot.storage.state import AdapterState

from .outbound import api

log = logging.getLogger(__name__)

_DIRECT_KEY: Final = "direct_rooms"


@dataclass(frozen=True)
class Invite:
    inviter: str
    is_direct: bool


def invite_of(info: Any, own_id: str) -> Invite | None:
    """Who invited the bot, and whether as a direct chat, from an invited room's state.

    nio parses the stripped state into `InviteMemberEvent`s and takes `content` out of
    their `source`: the fields are read from the event objects."""
    for event in getattr(info, "invite_state", None) or []:
        if getattr(event, "state_key", None) != own_id:
            continue
        content = getattr(event, "content", None)
        if getattr(event, "membership", None) != "invite" or not isinstance(content, dict):
            continue
        return Invite(str(getattr(event, "sender", "") or ""), content.get("is_direct") is True)
    return None


class DirectRooms:
    def __init__(self, client: AsyncClient, state: AdapterState) -> None:
        self._client = client
        self._state = state
        self._rooms: set[str] = set()

    async def load(self) -> None:
        raw = await self._state.get(_DIRECT_KEY)
        self._rooms = {str(r) for r in json.loads(raw)} if raw else set()

    def __contains__(self, room_id: object) -> bool:
        return room_id in self._rooms

    async def accepted(self, room_id: str) -> None:
        if room_id not in self._rooms:
            self._rooms.add(room_id)
            await self._state.set(_DIRECT_KEY, json.dumps(sorted(self._rooms)))

    async def admits(self, room_id: str, info: Any, configured: Iterable[str]) -> bool:
        """Whether to join the invited room `room_id`: a direct chat whose inviter is in
        one of the `configured` rooms (then it is remembered as a direct room)."""
        invite = invite_of(info, str(self._client.user_id))
        if invite is None or not invite.is_direct:
            return False
        if not await self.joined_of(configured, invite.inviter):
            log.info(
                "not joining the direct chat %s: its inviter is in no configured room", room_id
            )
            return False
        await self.accepted(room_id)
        return True

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        """Whether `user_id` is joined to `room_id`, as the homeserver says."""
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state/m.room.member/"
            f"{quote(user_id, safe='')}"
        )
        try:
            status, member = await api(self._client, "GET", path)
        except Exception as exc:  # an unknown answer is no membership
            log.warning("cannot read the membership of %s in %s: %s", user_id, room_id, exc)
            return False
        return status == 200 and member.get("membership") == "join"

    async def joined_of(self, rooms: Iterable[str], user_id: str) -> list[str]:
        """The rooms among `rooms` that `user_id` is joined to."""
        listed = sorted(set(rooms))
        found = await asyncio.gather(*(self.is_joined(r, user_id) for r in listed))
        return [room for room, joined in zip(listed, found, strict=True) if joined]
