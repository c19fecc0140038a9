"""What comes from Discord, in order per channel, into the core's events.

Each channel has one worker that handles its items one after the other: live messages,
edits, deletions, reactions, interactions, and catch-ups. The last handled message id of
each channel is stored in the adapter state after `host.handle` returned; after a
restart or a session that could not be resumed, the channel's history after that id is
read, in order, before the next live message, so nothing is lost or handled twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import discord

from bot.core.clock import Clock
from bot.core.events import InboundEvent, MessageReceived, Sender
from bot.core.messages import Attachment
from bot.core.platform import AdapterHost
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

_CHANNELS_KEY: Final = "channels"
Fetch = Callable[[int, int, int], Awaitable[list[discord.Message]]]
OwnCheck = Callable[[discord.Message], bool]


def room_of(channel_id: int) -> RoomRef:
    return RoomRef("discord", str(channel_id))


def sender_of(user: discord.abc.User | discord.Member | None, user_id: int | None = None) -> Sender:
    if user is None:
        return Sender(UserRef("discord", str(user_id or 0)), str(user_id or ""))
    return Sender(UserRef("discord", str(user.id)), user.display_name, str(user.display_avatar.url))


def message_event(message: discord.Message) -> MessageReceived:
    room = room_of(message.channel.id)
    reply_to = None
    reply_quote = None
    ref = message.reference
    if ref is not None and ref.message_id is not None and message.type is discord.MessageType.reply:
        reply_to = MessageRef(room_of(ref.channel_id or message.channel.id), str(ref.message_id))
        # What the answered message said, for rooms where it cannot be linked.
        if isinstance(ref.resolved, discord.Message):
            reply_quote = f"{ref.resolved.author.display_name}: {ref.resolved.clean_content}"
    return MessageReceived(
        event_id=f"m{message.id}",
        room=room,
        sender=sender_of(message.author),
        at=message.created_at,
        ref=MessageRef(room, str(message.id)),
        # Mentions become names (`@anna`), not ids.
        text=message.clean_content,
        attachments=tuple(
            Attachment(
                a.filename,
                a.content_type or "application/octet-stream",
                url=a.url,
                size=a.size,
            )
            for a in message.attachments
        ),
        reply_to=reply_to,
        reply_quote=reply_quote,
        is_notice=message.author.bot,
    )


@dataclass
class _Item:
    kind: str  # "message", "event", "catchup"
    message: discord.Message | None = None
    event: InboundEvent | None = None
    seen_key: str | None = None


class Inbound:
    def __init__(
        self,
        state: AdapterState,
        clock: Clock,
        *,
        is_own: OwnCheck,
        fetch_after: Fetch,
        catch_up_limit: int = 1000,
    ) -> None:
        self._state = state
        self._clock = clock
        self._is_own = is_own
        self._fetch_after = fetch_after
        self.catch_up_limit = catch_up_limit
        self.host: AdapterHost | None = None
        self._queues: dict[int, asyncio.Queue[_Item]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._last: dict[int, int | None] = {}
        self._known: set[int] = set()
        self._needs_catch_up: set[int] = set()
        self.handled = 0
        self.caught_up = 0

    async def load(self, configured: list[int]) -> None:
        raw = await self._state.get(_CHANNELS_KEY)
        stored = {int(c) for c in json.loads(raw)} if raw else set()
        self._known = stored | set(configured)

    # -- feeding ------------------------------------------------------------------------

    def _queue(self, channel_id: int) -> asyncio.Queue[_Item]:
        queue = self._queues.get(channel_id)
        if queue is None:
            queue = self._queues[channel_id] = asyncio.Queue()
            self._workers[channel_id] = asyncio.create_task(
                self._work(channel_id, queue), name=f"discord-inbound:{channel_id}"
            )
        return queue

    def new_session(self) -> None:
        """A fresh gateway session: whatever the old one missed is read from history
        before the next live message of each channel."""
        self._needs_catch_up |= self._known

    def catch_up_all(self) -> None:
        for channel_id in sorted(self._needs_catch_up):
            self._queue(channel_id).put_nowait(_Item("catchup"))

    def message(self, message: discord.Message) -> None:
        self._queue(message.channel.id).put_nowait(_Item("message", message=message))

    def event(self, channel_id: int, event: InboundEvent, seen_key: str | None = None) -> None:
        self._queue(channel_id).put_nowait(_Item("event", event=event, seen_key=seen_key))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued item is handled (tests, shutdown)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for queue in list(self._queues.values()):
                    await queue.join()

    async def stop(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        self._queues.clear()

    # -- handling -----------------------------------------------------------------------

    async def _work(self, channel_id: int, queue: asyncio.Queue[_Item]) -> None:
        while True:
            item = await queue.get()
            try:
                if item.kind == "catchup" or channel_id in self._needs_catch_up:
                    await self._catch_up(channel_id)
                if item.kind == "message" and item.message is not None:
                    await self._handle_message(item.message)
                elif item.kind == "event" and item.event is not None:
                    await self._handle_event(item.event, item.seen_key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("inbound %s in channel %s failed", item.kind, channel_id)
            finally:
                queue.task_done()

    async def _handle_event(self, event: InboundEvent, seen_key: str | None) -> None:
        assert self.host is not None
        if seen_key is not None and await self._state.seen(seen_key):
            return
        await self.host.handle(event)
        if seen_key is not None:
            await self._state.mark_seen(seen_key, self._clock.now())

    async def last_id(self, channel_id: int) -> int | None:
        if channel_id not in self._last:
            raw = await self._state.get(f"last:{channel_id}")
            self._last[channel_id] = int(raw) if raw else None
        return self._last[channel_id]

    async def _handle_message(self, message: discord.Message) -> None:
        assert self.host is not None
        channel_id = message.channel.id
        last = await self.last_id(channel_id)
        if last is not None and message.id <= last:
            return  # handled already (catch-up and live overlap)
        if self._is_own(message):
            return
        event = message_event(message)
        if await self._state.seen(event.event_id):
            return
        try:
            await self.host.handle(event)
        except Exception:
            log.exception("handling message %s failed", message.id)
        self.handled += 1
        # Only now is it handled: a crash before this line sees it again after restart.
        await self._state.mark_seen(event.event_id, self._clock.now())
        await self._state.set(f"last:{channel_id}", str(message.id))
        self._last[channel_id] = message.id
        if channel_id not in self._known:
            self._known.add(channel_id)
            await self._state.set(_CHANNELS_KEY, json.dumps(sorted(self._known)))

    async def _catch_up(self, channel_id: int) -> None:
        self._needs_catch_up.discard(channel_id)
        last = await self.last_id(channel_id)
        if last is None:
            return  # never handled anything here: nothing to catch up from
        fetched = 0
        after = last
        while fetched < self.catch_up_limit:
            batch = await self._fetch_after(
                channel_id, after, min(100, self.catch_up_limit - fetched)
            )
            if not batch:
                break
            for message in sorted(batch, key=lambda m: m.id):
                await self._handle_message(message)
                after = max(after, message.id)
            fetched += len(batch)
            self.caught_up += len(batch)
        if fetched:
            log.info("caught up %d message(s) in channel %s", fetched, channel_id)
        if fetched >= self.catch_up_limit:
            log.warning(
                "channel %s had more than %d messages while away: the rest are not read",
                channel_id,
                self.catch_up_limit,
            )
