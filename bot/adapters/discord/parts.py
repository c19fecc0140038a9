"""The parts of a post split below Discord's 2000 characters, so that an edit or a
deletion of the post reaches all of them, not only the first (whose id stands for the
post everywhere else: the outbox, replies, reactions)."""

from __future__ import annotations

import json

from bot.core.messages import split_text
from bot.storage.state import AdapterState


def fit(text: str, count: int, limit: int) -> list[str]:
    """`text` in at most `count` parts of at most `limit` characters: split as a new post
    would be, the overflow of a longer text cut short in the last part."""
    parts = split_text(text, limit) if text.strip() else ["…"]
    if len(parts) <= count:
        return parts
    rest = "\n".join(parts[count - 1 :])
    if len(rest) > limit:
        rest = rest[: limit - 1].rstrip() + "…"
    return [*parts[: count - 1], rest]


class Parts:
    def __init__(self, state: AdapterState) -> None:
        self._state = state

    @staticmethod
    def _key(channel: int, first: int) -> str:
        # Ended by a colon: as a prefix it names this post only.
        return f"parts:{channel}:{first}:"

    async def remember(self, channel: int, ids: list[int]) -> None:
        if len(ids) > 1:
            await self._state.set(self._key(channel, ids[0]), json.dumps(ids))

    async def of(self, channel: int, first: int) -> list[int]:
        raw = await self._state.get(self._key(channel, first))
        return [int(i) for i in json.loads(raw)] if raw else [first]

    async def keep(self, channel: int, ids: list[int]) -> None:
        """After an edit left fewer parts."""
        if len(ids) > 1:
            await self.remember(channel, ids)
        else:
            await self._state.delete_prefix(self._key(channel, ids[0]))

    async def forget(self, channel: int, first: int) -> None:
        await self._state.delete_prefix(self._key(channel, first))
