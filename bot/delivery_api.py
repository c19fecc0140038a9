"""The public face of `Delivery`: what plugins call to queue posts and look them up.

Apart from `bot.delivery` so that the lanes (order, claims, retries) read on their own;
every method here is a thin call into `_submit` or the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef
from bot.outbox import Entry, LaneHealth, Outbox, Target


class DeliveryApi:
    _outbox: Outbox

    async def _submit(
        self,
        key: str,
        action: str,
        room: RoomRef,
        target: Target | None,
        payload: str | None,
        lane: str | None,
        message: OutgoingMessage | None = None,
    ) -> bool:
        raise NotImplementedError

    async def _submit_many(self, entries: Sequence[Entry]) -> int:
        raise NotImplementedError

    # -- submitting ------------------------------------------------------------------

    async def send_many(self, items: Sequence[tuple[str, RoomRef, OutgoingMessage]]) -> int:
        """Queue many posts (key, room, message) at once, each into its room's lane in
        the order given, in one transaction (the caller's, if it is in one): a thousand
        reminders due at one instant cost a few statements, not a thousand round trips.
        Keys already known are left out. Returns how many were queued."""
        entries = [
            Entry(key, str(room), "send", room, None, message.to_json())
            for key, room, message in items
        ]
        return await self._submit_many(entries)

    async def delete_many(self, items: Sequence[tuple[str, Target, RoomRef]]) -> int:
        """Queue many deletions (key, target, room) at once, each into its room's lane,
        in one transaction: erasing a person with ten thousand bridged copies costs a
        few statements, not ten thousand round trips. Keys already known are left out.
        Returns how many were queued."""
        entries = [
            Entry(key, str(room), "delete", room, target.encode(), None)
            for key, target, room in items
        ]
        return await self._submit_many(entries)

    async def send(
        self, key: str, room: RoomRef, message: OutgoingMessage, *, lane: str | None = None
    ) -> bool:
        """Queue a post. Returns False if the key was already known (nothing queued)."""
        return await self._submit(key, "send", room, None, message.to_json(), lane, message)

    async def edit(
        self,
        key: str,
        target: Target,
        room: RoomRef,
        message: OutgoingMessage,
        *,
        lane: str | None = None,
    ) -> bool:
        return await self._submit(key, "edit", room, target, message.to_json(), lane, message)

    async def delete(
        self, key: str, target: Target, room: RoomRef, *, lane: str | None = None
    ) -> bool:
        return await self._submit(key, "delete", room, target, None, lane)

    async def react(
        self, key: str, target: Target, room: RoomRef, emoji: str, *, lane: str | None = None
    ) -> bool:
        return await self._submit(key, "react", room, target, emoji, lane)

    async def close_poll(
        self,
        key: str,
        target: Target,
        room: RoomRef,
        message: OutgoingMessage,
        *,
        lane: str | None = None,
    ) -> bool:
        return await self._submit(key, "close_poll", room, target, message.to_json(), lane, message)

    # -- looking up ------------------------------------------------------------------

    async def status(self, key: str) -> str | None:
        return await self._outbox.status(key)

    async def statuses(self, keys: Sequence[str]) -> dict[str, str]:
        """The status of each key that is known, in a few statements."""
        return await self._outbox.statuses(keys)

    async def message_ref(self, key: str) -> MessageRef | None:
        return await self._outbox.message_ref(key)

    async def key_for(self, ref: MessageRef) -> str | None:
        """The delivery key that posted `ref`, if we posted it."""
        return await self._outbox.key_for(ref)

    async def health(self) -> list[LaneHealth]:
        return await self._outbox.health()

    async def purge(self, before: datetime) -> int:
        """Forget finished deliveries older than `before` (their keys may then recur)."""
        return await self._outbox.purge(before)

    async def backlog(self) -> dict[str, tuple[int, float]]:
        """Per platform: posts pending, and the oldest one's creation time (epoch s)."""
        found: dict[str, tuple[int, float]] = {}
        for room, count, oldest in await self._outbox.pending_by_room():
            platform = room.partition(":")[0]
            have, first = found.get(platform, (0, oldest))
            found[platform] = (have + count, min(first, oldest))
        return found
