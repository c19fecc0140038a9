"""Custom emoji from elsewhere (Discord's CDN) as images on the homeserver: each is
fetched and uploaded once, then known by its id in the adapter state, so that a message
shows it inline (`<img data-mx-emoticon>`) as Element shows its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from bot.adapters.matrix.html_out import MxcOf
from bot.core.document import Document, Emoji, emojis
from bot.core.errors import PermanentSendError, TransientSendError
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

MAX_EMOJI_BYTES: Final = 512 * 1024  # Discord allows 256 KiB
MAX_PER_MESSAGE: Final = 20  # distinct images fetched for one message, at most
Fetch = Callable[[str], Awaitable[bytes]]
Upload = Callable[[bytes, str, str], Awaitable[str]]  # (data, content type, name) -> mxc


class EmojiImages:
    def __init__(self, state: AdapterState | None, fetch: Fetch, upload: Upload) -> None:
        self._state = state
        self._fetch = fetch
        self._upload = upload
        self._known: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def mxc_of(self, document: Document | None) -> MxcOf:
        """What to show for each emoji of `document`: its mxc:// URI where it has one
        (uploaded now if need be); an emoji whose image cannot be had reads `:name:`."""
        found: dict[str, str] = {}
        if document is not None:
            wanted = {
                e.url: e
                for e in emojis(document)
                if e.url and e.url.startswith(("https://", "http://"))
            }
            for url, emoji in list(wanted.items())[:MAX_PER_MESSAGE]:
                mxc = await self._image(emoji, url)
                if mxc is not None:
                    found[url] = mxc

        def mxc_of(emoji: Emoji) -> str | None:
            if emoji.url and emoji.url.startswith("mxc://"):
                return emoji.url
            return found.get(emoji.url or "")

        return mxc_of

    async def _image(self, emoji: Emoji, url: str) -> str | None:
        key = f"emoji:{emoji.id or url}"
        # Copies for several rooms go out at once: one upload, the others wait for it.
        async with self._locks.setdefault(key, asyncio.Lock()):
            return await self._image_once(key, emoji, url)

    async def _image_once(self, key: str, emoji: Emoji, url: str) -> str | None:
        mxc = self._known.get(key)
        if mxc is None and self._state is not None:
            mxc = await self._state.get(key)
        if mxc is not None:
            self._known[key] = mxc
            return mxc
        try:
            data = await self._fetch(url)
            if len(data) > MAX_EMOJI_BYTES:
                raise PermanentSendError(f"{len(data)} bytes")
            kind = _content_type(data)
            extension = kind.rsplit("/", 1)[-1]
            mxc = await self._upload(data, kind, f"{emoji.name}.{extension}")
        except (TransientSendError, PermanentSendError) as exc:
            # The text still says which emoji it was; the next message tries again.
            log.warning("custom emoji %s could not be uploaded: %s", emoji.name, exc)
            return None
        self._known[key] = mxc
        if self._state is not None:
            await self._state.set(key, mxc)
        return mxc


def _content_type(data: bytes) -> str:
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


__all__ = ["EmojiImages"]
