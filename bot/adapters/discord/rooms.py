"""Rooms and the people in them: whether a member organises (the guild's roles) and
whether the bot can use a channel (visible, may post, has a webhook)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, Protocol

import discord

from bot.adapters.discord.connection import GatewayClient
from bot.adapters.discord.errors import AuthBrake, boundary
from bot.adapters.discord.receiver import RoleCache
from bot.adapters.discord.threads import channel_id
from bot.adapters.discord.webhooks import Webhooks
from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.refs import RoomRef, UserRef

log = logging.getLogger(__name__)

# A room's check is reused this long: a refused check counts towards the AuthBrake.
ROOM_CHECK_TTL: Final = 60.0


class Translate(Protocol):
    def __call__(self, key: str, /, **params: object) -> str: ...


class Rooms:
    def __init__(
        self,
        organiser_roles: set[int],
        brake: AuthBrake,
        roles: RoleCache,
        webhooks: Webhooks,
        *,
        client: Callable[[], GatewayClient | None],
        offline: Callable[[], str],
        translate: Translate,
    ) -> None:
        self._wanted = organiser_roles
        self._brake = brake
        self._roles = roles
        self._webhooks = webhooks
        self._client = client
        self._offline = offline  # what to say while Discord is not connected
        self._t = translate
        self._checks: dict[int, tuple[float, str | None]] = {}

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        """Whether `user` has one of `organiser_roles` in the guild of `room`."""
        client = self._client()
        if not self._wanted or user.platform != "discord" or client is None:
            return False
        guild_id = await self._guild_of(client, channel_id(room))
        if guild_id is None:
            return False
        uid = int(user.id)
        roles = self._roles.get(guild_id, uid)
        if roles is None:
            try:
                async with boundary(self._brake):
                    data = await client.http.get_member(guild_id, uid)
            except Exception as exc:
                log.warning("could not read the roles of %s: %s", user, exc)
                return False
            roles = frozenset(int(r) for r in data.get("roles", []))
            self._roles.put(guild_id, uid, roles)
        return bool(self._wanted & roles)

    async def _guild_of(self, client: GatewayClient, cid: int) -> int | None:
        channel = client.get_channel(cid)
        guild = getattr(channel, "guild", None)
        if guild is not None:
            return int(guild.id)
        try:
            async with boundary(self._brake):
                data = await client.http.get_channel(cid)
        except Exception as exc:
            log.warning("could not look up channel %s: %s", cid, exc)
            return None
        gid = data.get("guild_id")
        return int(str(gid)) if gid else None

    async def check_room(self, room: RoomRef) -> str | None:
        """Why the bot cannot relay into `room`, or None when it can: the channel must be
        visible, allow posting, and give a webhook (attributed posts go through it)."""
        cid = channel_id(room)
        client = self._client()
        if client is None or client.user is None:
            return self._offline()
        cached = self._checks.get(cid)
        if cached is not None and time.monotonic() - cached[0] < ROOM_CHECK_TTL:
            return cached[1]
        try:
            problem = await self._room_problem(client, cid)
        except TransientSendError:
            return None  # Discord is not answering now: no verdict on the room
        self._checks[cid] = (time.monotonic(), problem)
        return problem

    async def _room_problem(self, client: GatewayClient, cid: int) -> str | None:
        channel = client.get_channel(cid)
        if channel is None:
            try:
                async with boundary(self._brake):
                    await client.http.get_channel(cid)
            except PermanentSendError as exc:
                return self._t("discord.room_unseen", error=str(exc))
        guild = getattr(channel, "guild", None)
        me = guild.me if guild is not None else None
        if isinstance(channel, discord.abc.GuildChannel) and me is not None:
            perms = channel.permissions_for(me)
            needed = {
                "View Channel": perms.view_channel,
                "Send Messages": perms.send_messages,
                "Manage Webhooks": perms.manage_webhooks,
                # The bridge continues other rooms' threads as threads here.
                "Create Public Threads": perms.create_public_threads,
                "Send Messages in Threads": perms.send_messages_in_threads,
            }
            missing = [name for name, ok in needed.items() if not ok]
            if missing:
                return self._t("discord.room_permissions", missing=", ".join(missing))
        try:
            await self._webhooks.hook(client, cid)
        except PermanentSendError as exc:
            return self._t("discord.room_no_webhook", error=str(exc))
        return None
