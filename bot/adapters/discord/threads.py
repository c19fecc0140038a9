"""Threads: where a message in a thread is addressed, and starting the thread of a root.

A thread's messages belong to its parent channel's room; their ids name the thread too
(`thread/message`, see `inbound.ref_of`), since Discord reaches them through the thread.
A thread started on a message has that message's id, so the root of a thread is enough
to post in it: the thread is started on first use, named after the root's first line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import discord

from bot.adapters.discord.errors import THREAD_EXISTS, AuthBrake, boundary
from bot.core.errors import PermanentSendError
from bot.core.refs import MessageRef, RoomRef

log = logging.getLogger(__name__)

NAME_LIMIT: Final = 100  # Discord's limit for a thread's name
_NAME_WANTED: Final = 60  # a name that fits the thread list
ARCHIVE_MINUTES: Final = 1440


def channel_id(room: RoomRef) -> int:
    if room.platform != "discord" or not room.id.isdigit():
        raise PermanentSendError(f"{room} is not a Discord channel")
    return int(room.id)


def message_place(ref: MessageRef) -> tuple[int, int]:
    """The channel to address for `ref` (its thread, if it is in one) and its id."""
    cid = channel_id(ref.room)
    thread, _, mid = ref.id.rpartition("/")
    if not mid.isdigit() or (thread and not thread.isdigit()):
        raise PermanentSendError(f"{ref} is not a Discord message")
    return (int(thread) if thread else cid), int(mid)


def thread_name(content: str, fallback: str) -> str:
    """The first line of the root's words; our reply links (`-# ↪ …`) are not words."""
    words = [line.strip() for line in content.splitlines()]
    first = next((w for w in words if w and not w.startswith("-# ")), "")
    if not first:
        return fallback[:NAME_LIMIT]
    if len(first) > _NAME_WANTED:
        first = first[: _NAME_WANTED - 1].rstrip() + "…"
    return first[:NAME_LIMIT]


class Threads:
    def __init__(self, brake: AuthBrake, fallback_name: Callable[[], str]) -> None:
        self._brake = brake
        self._fallback_name = fallback_name
        self.started = 0
        self._known: set[int] = set()  # before the gateway's THREAD_CREATE fills the cache

    async def ensure(self, client: discord.Client, cid: int, root: int) -> int | None:
        """The thread on message `root` of channel `cid`, started if need be; None if
        it cannot be (the root is gone, say): the post then goes to the channel."""
        if root in self._known or isinstance(client.get_channel(root), discord.Thread):
            return root
        try:
            async with boundary(self._brake):
                data = await client.http.get_message(cid, root)
                name = thread_name(str(data.get("content") or ""), self._fallback_name())
                await client.http.start_thread_with_message(
                    cid, root, name=name, auto_archive_duration=ARCHIVE_MINUTES
                )
        except PermanentSendError as exc:
            cause = exc.__cause__
            if isinstance(cause, discord.HTTPException) and cause.code == THREAD_EXISTS:
                self._known.add(root)
                return root
            log.warning("cannot start a thread on %s in %s: %s", root, cid, exc)
            return None
        self.started += 1
        self._known.add(root)
        log.info("started a thread on message %s in channel %s", root, cid)
        return root
