"""Rooms and the people in them: whether a member organises (power level, or a room
version 12 creator) and whether the bot can post in a room."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

from nio import AsyncClient

from bot.core.i18n import Translator
from bot.core.refs import RoomRef, UserRef

from .outbound import api

log = logging.getLogger(__name__)


class Rooms:
    def __init__(
        self,
        client: Callable[[], AsyncClient | None],
        room_id: Callable[[str], str],
        organiser_level: int,
        translator: Translator,
        language: str,
    ) -> None:
        self._client = client
        self._room_id = room_id  # a configured alias's room id
        self._organiser_level = organiser_level
        self._translator = translator
        self._language = language
        self._creators: dict[str, set[str]] = {}

    def _t(self, key: str, **params: object) -> str:
        return self._translator.t(key, self._language, **params)

    async def check_room(self, room: RoomRef) -> str | None:
        """Why the bot cannot post in `room`, or None when it can (an organiser reads it
        in the bridge's status)."""
        client = self._client()
        if client is None:
            return self._t("matrix.room_offline")
        room_id = self._room_id(room.id)
        if room.id.startswith("#") and room_id == room.id:
            return self._t("matrix.room_alias", room=room.id)
        matrix_room = client.rooms.get(room_id)
        if matrix_room is None:
            return self._t("matrix.room_not_joined", room=room.id)
        if not matrix_room.power_levels.can_user_send_message(client.user_id, "m.room.message"):
            return self._t("matrix.room_no_post", room=room.id)
        return None

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        client = self._client()
        if client is None or user.platform != "matrix":
            return False
        matrix_room = client.rooms.get(self._room_id(room.id))
        if matrix_room is None:
            return False
        level = int(matrix_room.power_levels.get_user_level(user.id))
        if level >= self._organiser_level:
            return True
        return user.id in await self._creators_of(client, matrix_room.room_id)

    async def _creators_of(self, client: AsyncClient, room_id: str) -> set[str]:
        """Room version 12 gives its creators unlimited power without listing them in the
        power levels. Its room id is the create event's id, so one fetch, cached."""
        if ":" in room_id:
            return set()
        cached = self._creators.get(room_id)
        if cached is None:
            path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/event/"
            path += quote("$" + room_id[1:], safe="")
            status, event = await api(client, "GET", path)
            if status != 200:
                log.warning("cannot read the create event of %s: HTTP %s", room_id, status)
                return set()
            content = event.get("content") or {}
            extra = content.get("additional_creators") or []
            cached = {str(event.get("sender")), *(str(u) for u in extra)}
            self._creators[room_id] = cached
        return cached
