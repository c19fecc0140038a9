"""Outbound calls: sends, edits, redactions, reactions, polls and media, with nio's error
values turned into TransientSendError / PermanentSendError at this one boundary."""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any, Final, TypeVar
from urllib.parse import quote

import aiohttp
from nio import AsyncClient, ErrorResponse, RoomRedactResponse, RoomSendResponse, UploadResponse
from nio.crypto.attachments import decrypt_attachment
from nio.exceptions import LocalProtocolError, SendRetryError

from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import Attachment, OutgoingMessage
from bot.core.refs import MessageRef, RoomRef
from bot.storage.state import AdapterState

from . import formatting, polls
from .emoji import EmojiImages
from .memory import Threads

log = logging.getLogger(__name__)

MAX_MEDIA_BYTES: Final = 20 * 1024 * 1024
T = TypeVar("T")


def convert_error(answer: ErrorResponse, what: str) -> Exception:
    """A nio error value as the exception Delivery understands."""
    transport = getattr(answer, "transport_response", None)
    status = int(getattr(transport, "status", 0) or 0)
    code = answer.status_code
    if code == "M_LIMIT_EXCEEDED" or status == 429:
        retry = answer.retry_after_ms
        return TransientSendError(
            f"{what}: rate limited", retry_after=retry / 1000 if retry else None
        )
    if status >= 500 or status == 0:
        return TransientSendError(f"{what}: {answer}")
    return PermanentSendError(f"{what}: {answer}")


async def guarded(what: str, call: Awaitable[T]) -> T:
    """Await a nio call, turning its exceptions into send errors."""
    try:
        return await call
    except (aiohttp.ClientError, TimeoutError, SendRetryError) as exc:
        raise TransientSendError(f"{what}: {exc!r}") from exc
    except LocalProtocolError as exc:
        raise PermanentSendError(f"{what}: {exc}") from exc


class Outbound:
    """Every call the bot makes to post into Matrix rooms."""

    def __init__(
        self, client: AsyncClient, threads: Threads, state: AdapterState | None = None
    ) -> None:
        self._client = client
        self._threads = threads
        # When a post of ours last reached the homeserver (monotonic): the sync loop
        # leaves the server to its readers for a moment after it (syncing.POST_LINGER).
        self.last_post = -math.inf
        self._emoji = EmojiImages(state, lambda url: self.fetch(url, None), self._upload_image)

    def _check_room(self, room_id: str) -> Any:
        room = self._client.rooms.get(room_id)
        if room is None:
            raise PermanentSendError(f"the bot is not in {room_id}")
        if room.encrypted and (self._client.olm is None or self._client.store is None):
            # nio would send plaintext into an encrypted room without a loaded store.
            raise PermanentSendError(f"{room_id} is encrypted and the store is not loaded")
        return room

    async def raw_send(
        self, room_id: str, event_type: str, content: dict[str, Any], txn: str
    ) -> str:
        self._check_room(room_id)
        answer = await guarded(
            f"send to {room_id}",
            self._client.room_send(
                room_id, event_type, content, tx_id=txn, ignore_unverified_devices=True
            ),
        )
        if not isinstance(answer, RoomSendResponse):
            raise convert_error(answer, f"send to {room_id}")
        self.last_post = time.monotonic()
        return str(answer.event_id)

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        room_id = room.id
        self._check_room(room_id)
        bodies: list[tuple[str, dict[str, Any]]] = []
        if message.poll is not None:
            bodies.append((polls.START, polls.start_content(message.poll, message.text)))
        else:
            mxc_of = await self._emoji.mxc_of(message.document)
            bodies.extend(("m.room.message", c) for c in formatting.text_contents(message, mxc_of))
        first: str | None = None
        n = 0
        reply = message.reply_to.id if message.reply_to is not None else None
        root = message.thread.id if message.thread is not None else None
        if root is None and reply is not None:
            root = self._threads.root_of(reply)  # an answer stays in its question's thread
        for event_type, content in bodies:
            if root is not None:
                # Every part stays in the thread; only the first answers the reply.
                answered = reply if first is None else None
                formatting.in_thread(
                    content,
                    root,
                    answered or self._threads.latest(root),
                    falling_back=answered is None,
                )
            elif reply is not None and first is None:
                formatting.with_reply(content, reply)
            # One transaction id per part, all derived from the delivery token: a retry
            # of any part is recognised by the homeserver and not posted twice.
            event_id = await self.raw_send(room_id, event_type, content, _txn(token, n))
            n += 1
            first = first or event_id
            if root is not None:
                self._threads.saw(event_id, root)
        for attachment in message.attachments:
            content = await self._media(room_id, attachment)
            if root is not None:
                latest = self._threads.latest(root)
                formatting.in_thread(content, root, latest, falling_back=True)
            event_id = await self.raw_send(room_id, "m.room.message", content, _txn(token, n))
            n += 1
            first = first or event_id
            if root is not None:
                self._threads.saw(event_id, root)
        if first is None:
            raise PermanentSendError("nothing to send: no text, poll or attachment")
        # No buttons on Matrix: the answers they stand for are offered as reactions.
        for button in message.buttons:
            if button.emoji:
                content = formatting.reaction_content(first, button.emoji)
                await self.raw_send(room_id, "m.reaction", content, _txn(token, n))
                n += 1
        return MessageRef(room, first)

    async def edit(self, target: MessageRef, message: OutgoingMessage, token: str) -> None:
        mxc_of = await self._emoji.mxc_of(message.document)
        contents = formatting.text_contents(message, mxc_of)
        if not contents:
            raise PermanentSendError("an edit needs text")
        content = formatting.edit_content(target.id, contents[0])
        await self.raw_send(target.room.id, "m.room.message", content, _txn(token, 0))

    async def delete(self, target: MessageRef, token: str) -> None:
        """Redact an event: the bot's own, or a member's where the bot's power level
        allows it (the room's `redact` level). Where it does not, Synapse refuses and
        this says so plainly: the event stays, and nothing retries."""
        room = self._check_room(target.room.id)
        answer = await guarded(
            f"redact {target}",
            self._client.room_redact(target.room.id, target.id, tx_id=_txn(token, 0)),
        )
        if isinstance(answer, RoomRedactResponse):
            self.last_post = time.monotonic()
            return
        error = convert_error(answer, f"redact {target}")
        if answer.status_code == "M_FORBIDDEN":
            levels = room.power_levels
            have = levels.get_user_level(self._client.user_id)
            needed = levels.defaults.redact
            log.warning(
                "cannot remove %s in %s: removing others' messages takes power level %s, "
                "the bot has %s",
                target.id, target.room.id, needed, have,
            )  # fmt: skip
            raise PermanentSendError(
                f"the bot may not remove others' messages in {target.room.id}: that takes "
                f"power level {needed}, the bot has {have}"
            ) from error
        raise error

    async def react(self, target: MessageRef, key: str, token: str) -> MessageRef:
        content = formatting.reaction_content(target.id, key)
        event_id = await self.raw_send(target.room.id, "m.reaction", content, _txn(token, 0))
        return MessageRef(target.room, event_id)

    async def close_poll(
        self, target: MessageRef, message: OutgoingMessage, token: str
    ) -> MessageRef:
        content = polls.end_content(target.id, message.text)
        event_id = await self.raw_send(target.room.id, polls.END, content, _txn(token, 0))
        return MessageRef(target.room, event_id)

    # -- media -----------------------------------------------------------------------

    async def _media(self, room_id: str, attachment: Attachment) -> dict[str, Any]:
        data = attachment.data
        if data is None and attachment.url:
            data = await self.fetch(attachment.url, None)
        if data is None:
            raise PermanentSendError(f"attachment {attachment.filename} has no content")
        encrypted = bool(self._client.rooms[room_id].encrypted)
        answer, keys = await guarded(
            "upload",
            self._client.upload(
                io.BytesIO(data),
                content_type=attachment.content_type,
                filename=attachment.filename,
                encrypt=encrypted,
                filesize=len(data),
            ),
        )
        if not isinstance(answer, UploadResponse):
            raise convert_error(answer, f"upload {attachment.filename}")
        return formatting.media_content(
            formatting.media_msgtype(attachment.content_type),
            attachment.filename,
            attachment.content_type,
            len(data),
            str(answer.content_uri),
            keys if encrypted else None,
        )

    async def _upload_image(self, data: bytes, content_type: str, filename: str) -> str:
        """An image shown inline in messages (a custom emoji): never encrypted, since
        HTML points at it by its mxc:// URI alone."""
        answer, _ = await guarded(
            "upload",
            self._client.upload(
                io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data)
            ),
        )
        if not isinstance(answer, UploadResponse):
            raise convert_error(answer, f"upload {filename}")
        return str(answer.content_uri)

    async def fetch(self, url: str, encrypted: dict[str, Any] | None) -> bytes:
        """The content behind an mxc:// (authenticated media) or http(s) URL, capped."""
        if url.startswith("mxc://"):
            server, _, media_id = url[len("mxc://") :].partition("/")
            path = (
                f"/_matrix/client/v1/media/download/{quote(server, safe='')}/"
                f"{quote(media_id, safe='')}"
            )
            headers = {"Authorization": f"Bearer {self._client.access_token}"}
            response = await guarded("download", self._client.send("GET", path, headers=headers))
        elif url.startswith(("https://", "http://")):
            session = self._client.client_session
            assert session is not None
            response = await guarded("download", session.get(url))
        else:
            raise PermanentSendError(f"cannot fetch {url!r}")
        async with response:
            if response.status >= 400:
                err = TransientSendError if response.status >= 500 else PermanentSendError
                raise err(f"download {url}: HTTP {response.status}")
            data = await response.content.read(MAX_MEDIA_BYTES + 1)
        if len(data) > MAX_MEDIA_BYTES:
            raise PermanentSendError(f"{url} is larger than {MAX_MEDIA_BYTES} bytes")
        if encrypted is not None:
            try:
                data = decrypt_attachment(
                    data,
                    encrypted["key"]["k"],
                    encrypted["hashes"]["sha256"],
                    encrypted["iv"],
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise PermanentSendError(f"cannot decrypt {url}: {exc}") from exc
        return bytes(data)


def _txn(token: str, part: int) -> str:
    return token if part == 0 else f"{token}.{part}"


async def api(
    client: AsyncClient, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """A raw client-server API call, for what nio has no method for (cross-signing)."""
    headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
    response = await client.send(
        method, path, json.dumps(body) if body is not None else None, headers=headers
    )
    async with response:
        try:
            answer = await response.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            answer = {}
    return int(response.status), answer if isinstance(answer, dict) else {}


__all__ = ["Outbound", "api", "convert_error"]
