"""Posts, edits, deletions, reactions and poll ends, from core messages to Discord.

Text over 2000 characters is split at paragraph or sentence boundaries. A normal post
carries the delivery token as its nonce (discord.py adds `enforce_nonce`), so a retry
after an unrecorded success returns the first message instead of a second one; the
parts after the first get nonces derived from the same token. Nothing posted mentions
anyone (`AllowedMentions.none()`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

import discord

from bot.adapters.discord.errors import (
    CANNOT_EDIT_OTHERS,
    POLL_EXPIRED,
    UNKNOWN_MESSAGE,
    AuthBrake,
    boundary,
)
from bot.adapters.discord.inbound import ref_of
from bot.adapters.discord.interactions import Interactions, interaction_id
from bot.adapters.discord.markdown_out import fit, parts_of
from bot.adapters.discord.parts import Parts
from bot.adapters.discord.polls import (
    NATIVE_MAX_HOURS,
    PollBook,
    PollRecord,
    button_view,
    native_poll,
    poll_choices,
    poll_kind,
)
from bot.adapters.discord.threads import Threads, channel_id, message_place
from bot.adapters.discord.webhooks import Upload, Webhooks
from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import Attachment, OutgoingMessage
from bot.core.refs import MessageRef, RoomRef

log = logging.getLogger(__name__)
_NO_MENTIONS: Final = discord.AllowedMentions.none()  # read, never changed

MESSAGE_LIMIT: Final = 2000
UPLOAD_LIMIT: Final = 10 * 1024 * 1024  # what every guild allows


def part_nonce(token: str, index: int) -> str:
    if index == 0:
        return token
    return hashlib.sha256(f"{token}:{index}".encode()).hexdigest()[:24]


def attachments_split(
    attachments: tuple[Attachment, ...], limit: int = UPLOAD_LIMIT
) -> tuple[list[Upload], list[str]]:
    """Files to upload, and lines with links for those that cannot be uploaded."""
    uploads: list[Upload] = []
    links: list[str] = []
    for a in attachments:
        if a.data is not None and len(a.data) <= limit:
            uploads.append(Upload(a.filename, a.data, a.content_type))
        elif a.url:
            links.append(f"📎 {a.filename}: {a.url}")
        else:
            links.append(f"📎 {a.filename}")
    return uploads, links


class Outbound:
    def __init__(
        self,
        brake: AuthBrake,
        webhooks: Webhooks,
        interactions: Interactions,
        polls: PollBook,
        threads: Threads,
        parts: Parts,
        *,
        native_polls: bool = True,
    ) -> None:
        self._brake = brake
        self._threads = threads
        self._parts = parts
        self._webhooks = webhooks
        self._interactions = interactions
        self._polls = polls
        self.native_polls = native_polls
        self.client: discord.Client | None = None
        self.sent = 0
        # Set by the adapter: a select menu's placeholder in a room's language, and what
        # reads a native poll's voters once it has ended (see voters.py).
        self.select_placeholder: Callable[[RoomRef], str] = lambda room: ""
        self.poll_ended: Callable[[int, int, PollRecord], Awaitable[None]] | None = None

    def _client(self) -> discord.Client:
        if self.client is None or self.client.user is None:
            raise TransientSendError("not logged in to Discord yet")
        return self.client

    def _channel(self, cid: int) -> discord.abc.Messageable:
        client = self._client()
        channel = client.get_channel(cid)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return client.get_partial_messageable(cid)

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        cid = channel_id(room)
        uploads, links = attachments_split(message.attachments)
        parts = parts_of(message, links=links)
        if interaction_id(message.reply_to) is not None and message.reply_to is not None:
            answered = await self._interactions.reply(
                message.reply_to,
                parts or ["…"],
                message.ephemeral,
                [(u.filename, u.data) for u in uploads],
                token,
            )
            if answered is not None:
                self.sent += 1
                return answered
            if message.ephemeral:
                # Meant for the caller alone: never posted for everyone instead.
                raise PermanentSendError("the interaction expired; its private answer is dropped")
            message = _without_reply(message)  # the interaction expired: post in the channel
        thread = await self._thread_for(cid, message)
        if message.attribution is not None and message.poll is None and not message.buttons:
            # A webhook cannot answer a message: a link to the answered one goes first.
            link = self._jump_url(cid, message.reply_to)
            if link is not None:
                parts = parts_of(message, links=links, answering=link)
            posted = await self._webhooks.post(
                self._client(),
                cid,
                parts or ["" if uploads else "…"],
                token,
                username=message.attribution.label,
                avatar_url=message.attribution.avatar_url,
                uploads=uploads,
                thread=thread,
            )
            self.sent += 1
            await self._parts.remember(thread or cid, posted)
            return ref_of(room, thread, posted[0])
        return await self._send_parts(room, cid, thread, message, parts, uploads, token)

    async def _thread_for(self, cid: int, message: OutgoingMessage) -> int | None:
        """The thread to post in: the root's (started if need be), else the answered
        message's, else none."""
        if message.thread is not None:
            where, root = message_place(message.thread)
            if where != cid:
                return where  # the root is itself in a thread: Discord nests no deeper
            return await self._threads.ensure(self._client(), cid, root)
        if message.reply_to is not None and interaction_id(message.reply_to) is None:
            try:
                where, _ = message_place(message.reply_to)
            except PermanentSendError:
                return None
            return where if where != cid else None
        return None

    def _jump_url(self, cid: int, reply_to: MessageRef | None) -> str | None:
        if reply_to is None or reply_to.room.id != str(cid):
            return None
        try:
            where, mid = message_place(reply_to)
        except PermanentSendError:
            return None
        guild = getattr(self._client().get_channel(cid), "guild", None)
        if guild is None:
            return None
        return f"https://discord.com/channels/{guild.id}/{where}/{mid}"

    async def _send_parts(
        self,
        room: RoomRef,
        cid: int,
        thread: int | None,
        message: OutgoingMessage,
        parts: list[str],
        uploads: list[Upload],
        token: str,
    ) -> MessageRef:
        where = thread or cid
        channel = self._channel(where)
        poll = message.poll
        kind = poll_kind(poll, self.native_polls) if poll is not None else ""
        choices = poll_choices(poll, kind) if poll is not None and kind != "native" else []
        placeholder = self.select_placeholder(room) if kind == "select" else ""
        record: PollRecord | None = None
        if poll is not None:
            hours = max(1, min(NATIVE_MAX_HOURS, poll.hours or 24))
            record = PollRecord(
                kind,
                [a.id for a in poll.answers],
                poll.max_selections,
                choices,
                poll.secret,
                where,
                time.time() + 3600 * hours if kind == "native" else 0.0,
                placeholder,
            )
            if not parts and kind != "native":
                parts = [poll.question]
        view = record.view() if record is not None else None
        if view is None and message.buttons:
            view = button_view(message.buttons)
        native = kind == "native"
        if not parts and not native and not uploads:
            parts = ["…"]
        reference = None
        answered = _place_or_none(message.reply_to)
        if answered is not None and answered[0] == where:
            reference = discord.MessageReference(
                message_id=answered[1], channel_id=where, fail_if_not_exists=False
            )
        first: discord.Message | None = None
        last: discord.Message | None = None
        posted: list[int] = []
        count = max(1, len(parts))
        for i in range(count):
            is_last = i == count - 1
            kwargs: dict[str, Any] = {
                "nonce": part_nonce(token, i),
                "allowed_mentions": _NO_MENTIONS,
                "mention_author": False,
            }
            if i == 0 and reference is not None:
                kwargs["reference"] = reference
            if is_last:
                if uploads:
                    kwargs["files"] = [
                        discord.File(io.BytesIO(u.data), filename=u.filename) for u in uploads
                    ]
                if native and poll is not None:
                    kwargs["poll"] = native_poll(poll)
                if view is not None:
                    kwargs["view"] = view
            async with boundary(self._brake):
                sent = await channel.send(parts[i] if i < len(parts) else None, **kwargs)
            first = first or sent
            last = sent
            posted.append(sent.id)
        assert first is not None and last is not None
        if record is not None:
            await self._polls.remember(last.id, record)
        self.sent += count
        if poll is None:
            await self._parts.remember(where, posted)
        # A poll is closed through its own message; other posts are answered by the first.
        return ref_of(room, thread, last.id if poll is not None else first.id)

    async def edit(self, target: MessageRef, message: OutgoingMessage, token: str) -> None:
        """Edit a post, every part of it if it was split: the new text is split the same
        way; parts it no longer needs are deleted, and a text that needs more parts than
        the post has is cut short in its last part."""
        cid = channel_id(target.room)
        where, mid = message_place(target)
        thread = where if where != cid else None
        ids = await self._parts.of(where, mid)
        texts = fit(parts_of(message), len(ids), MESSAGE_LIMIT)
        for part_id, text in zip(ids, texts, strict=False):
            await self._edit_one(cid, where, thread, part_id, text, message.attribution is not None)
        for extra in ids[len(texts) :]:
            await self._delete_one(where, extra)
        if len(texts) < len(ids):
            await self._parts.keep(where, ids[: len(texts)])

    async def _edit_one(
        self, cid: int, where: int, thread: int | None, mid: int, text: str, attributed: bool
    ) -> None:
        if attributed:
            # An attributed post is our webhook's: the bot's own edit would be refused
            # with a 403, and refusals count towards the AuthBrake.
            await self._webhooks.edit(self._client(), cid, mid, text, thread=thread)
            return
        partial = self._client().get_partial_messageable(where).get_partial_message(mid)
        try:
            async with boundary(self._brake):
                await partial.edit(content=text, allowed_mentions=discord.AllowedMentions.none())
        except PermanentSendError as exc:
            cause = exc.__cause__
            if isinstance(cause, discord.HTTPException) and cause.code == CANNOT_EDIT_OTHERS:
                # Our webhook's message (a bridged post): edited through the webhook.
                await self._webhooks.edit(self._client(), cid, mid, text, thread=thread)
                return
            raise

    async def delete(self, target: MessageRef, token: str) -> None:
        where, mid = message_place(target)
        for part_id in await self._parts.of(where, mid):
            await self._delete_one(where, part_id)
        await self._parts.forget(where, mid)

    async def _delete_one(self, where: int, mid: int) -> None:
        partial = self._client().get_partial_messageable(where).get_partial_message(mid)
        try:
            async with boundary(self._brake):
                await partial.delete()
        except PermanentSendError as exc:
            cause = exc.__cause__
            if isinstance(cause, discord.NotFound) and cause.code == UNKNOWN_MESSAGE:
                return  # gone already: what a retry of a deletion wants
            raise

    async def react(self, target: MessageRef, key: str, token: str) -> MessageRef | None:
        cid, mid = message_place(target)
        partial = self._client().get_partial_messageable(cid).get_partial_message(mid)
        async with boundary(self._brake):
            await partial.add_reaction(key)
        return None

    async def close_poll(
        self, target: MessageRef, message: OutgoingMessage, token: str
    ) -> MessageRef | None:
        """End the poll: a native one expires (then its voters are read once more, for
        the core's final count), buttons and menus are disabled; `message` follows as a
        reply. Safe to repeat: an expired poll is ended already."""
        cid, mid = message_place(target)
        record = await self._polls.get(mid)
        client = self._client()
        if record is not None and record.kind == "native":
            # Read once more only the first time: a repeat of the close changes nothing.
            still_open = mid in await self._polls.open_native()
            gone = False
            try:
                async with boundary(self._brake):
                    await client.http.end_poll(cid, mid)
            except PermanentSendError as exc:
                code = getattr(exc.__cause__, "code", None)
                if code not in (POLL_EXPIRED, UNKNOWN_MESSAGE):
                    raise
                gone = code == UNKNOWN_MESSAGE
                log.info("poll %s had ended already%s", target, " (deleted)" if gone else "")
            if self.poll_ended is not None and still_open and not gone:
                await self.poll_ended(cid, mid, record)
        elif record is not None:
            view = record.view(disabled=True)
            if view is not None:
                partial = client.get_partial_messageable(cid).get_partial_message(mid)
                async with boundary(self._brake):
                    await partial.edit(view=view)
        await self._polls.closed(mid)
        if not message.text.strip() and not message.attachments:
            return None
        reply = OutgoingMessage(
            text=message.text, reply_to=target, attachments=message.attachments, notice=True
        )
        return await self.send(target.room, reply, token)


def _place_or_none(ref: MessageRef | None) -> tuple[int, int] | None:
    if ref is None:
        return None
    try:
        return message_place(ref)
    except PermanentSendError:
        return None


def _without_reply(message: OutgoingMessage) -> OutgoingMessage:
    return replace(message, reply_to=None)
