"""What comes from Discord, in order per channel, into the core's events.

Each channel has one worker that handles its items one after the other: live messages,
edits, deletions, reactions, interactions, and catch-ups. The last handled message id of
each channel is stored in the adapter state after `host.handle` returned; after a
restart or a session that could not be resumed, the channel's history after that id is
read, in order, before the next live message, so nothing is lost or handled twice.
While the database cannot be written, a channel's worker keeps the item in hand and
tries it again (the items behind it wait): its last id does not move.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import discord

from bot.adapters.discord.markdown_in import document_of
from bot.core.clock import Clock
from bot.core.events import InboundEvent, MessageReceived, Sender
from bot.core.messages import Attachment
from bot.core.plain import to_plain
from bot.core.platform import AdapterHost
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.storage.health import StorageUnavailable
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

_CHANNELS_KEY: Final = "channels"
# Threads we read, and their parent channels: discord.py forgets archived threads, and
# their messages must still land in the parent's room.
_THREADS_KEY: Final = "threads"
# Discord archives a thread after at most a week without messages.
_THREAD_QUIET: Final = timedelta(days=8)
# How soon an item the database could not take is tried again.
STORAGE_RETRY: Final = 2.0
Fetch = Callable[[int, int, int], Awaitable[list[discord.Message]]]
OwnCheck = Callable[[discord.Message], bool]


def room_of(channel_id: int) -> RoomRef:
    return RoomRef("discord", str(channel_id))


def place_of(
    channel: object, channel_id: int, known_parent: int | None = None
) -> tuple[RoomRef, int | None]:
    """The room a channel's messages belong to, and the thread they are in: a thread's
    messages belong to its parent channel's room, so that commands, associations and
    bridges see the room that is configured. `known_parent`: the parent we recorded,
    for a thread that discord.py no longer holds (archived, say)."""
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return room_of(channel.parent_id), channel.id
    if known_parent is not None:
        return room_of(known_parent), channel_id
    return room_of(channel_id), None


def ref_of(room: RoomRef, thread: int | None, message_id: int) -> MessageRef:
    """A message's reference. In a thread its id names the thread too (`thread/message`):
    the room is the parent channel's, and Discord needs the thread's id to reach it."""
    return MessageRef(room, f"{thread}/{message_id}" if thread else str(message_id))


# Discord's notices (pins, joins, "started a thread", a thread's copy of its starter):
# not members' words.
_WORDS: Final = frozenset({discord.MessageType.default, discord.MessageType.reply})


def is_words(message: discord.Message) -> bool:
    return message.type in _WORDS


def sender_of(user: discord.abc.User | discord.Member | None, user_id: int | None = None) -> Sender:
    if user is None:
        return Sender(UserRef("discord", str(user_id or 0)), str(user_id or ""))
    return Sender(UserRef("discord", str(user.id)), user.display_name, str(user.display_avatar.url))


def message_event(message: discord.Message, known_parent: int | None = None) -> MessageReceived:
    room, thread = place_of(message.channel, message.channel.id, known_parent)
    reply_to = None
    reply_quote = None
    ref = message.reference
    if ref is not None and ref.message_id is not None and message.type is discord.MessageType.reply:
        if ref.channel_id in (None, message.channel.id):
            reply_to = ref_of(room, thread, ref.message_id)
        else:
            reply_to = MessageRef(room_of(ref.channel_id or 0), str(ref.message_id))
        # What the answered message said, for rooms where it cannot be linked.
        if isinstance(ref.resolved, discord.Message):
            said = to_plain(document_of(ref.resolved))  # its spoilers hidden
            reply_quote = f"{ref.resolved.author.display_name}: {said}"
    return MessageReceived(
        event_id=f"m{message.id}",
        room=room,
        sender=sender_of(message.author),
        at=message.created_at,
        ref=ref_of(room, thread, message.id),
        # Mentions become names (`@anna`), not ids.
        text=message.clean_content,
        document=document_of(message),
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
        # A thread started on a message has that message's id.
        thread=MessageRef(room, str(thread)) if thread else None,
        is_notice=message.author.bot,
    )


@dataclass
class _Item:
    kind: str  # "message", "event", "catchup", "adopt"; "stop" ends the worker
    message: discord.Message | None = None
    event: InboundEvent | None = None
    seen_key: str | None = None
    parent: int | None = None  # "adopt": the thread's parent channel


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
        # Held while an item of the channel is handled, by its worker or (`take`) by the
        # task that brought a message to an idle channel.
        self._turns: dict[int, asyncio.Lock] = {}
        self._inline: set[asyncio.Task[Any]] = set()
        self._last: dict[int, int | None] = {}
        self._known: set[int] = set()
        self._needs_catch_up: set[int] = set()
        self.parents: dict[int, int] = {}
        self.active_threads: set[int] = set()  # as the gateway listed them at READY
        self.handled = 0
        self.caught_up = 0
        self._closed = False  # stopping: no new messages are taken
        self._finishing = False  # stopping: workers end after the item in hand
        # Events handled whose seen mark could not be written yet: not handed over again
        # when the item is retried.
        self._unmarked: set[str] = set()
        # Channels whose position this process moved: a later message there cannot have
        # been handled (and seen) before.
        self._marked: set[int] = set()

    async def load(self, configured: list[int]) -> None:
        raw = await self._state.get(_CHANNELS_KEY)
        stored = {int(c) for c in json.loads(raw)} if raw else set()
        self._known = stored | set(configured)
        raw = await self._state.get(_THREADS_KEY)
        self.parents = {int(t): int(p) for t, p in json.loads(raw).items()} if raw else {}

    async def _remember_parent(self, thread_id: int, parent_id: int) -> None:
        if self.parents.get(thread_id) != parent_id:
            self.parents[thread_id] = parent_id
            await self._state.set(_THREADS_KEY, json.dumps(self.parents))

    # -- feeding ------------------------------------------------------------------------

    def _queue(self, channel_id: int) -> asyncio.Queue[_Item]:
        queue = self._queues.get(channel_id)
        if queue is None:
            queue = self._queues[channel_id] = asyncio.Queue()
            self._turns[channel_id] = asyncio.Lock()
            self._workers[channel_id] = asyncio.create_task(
                self._work(channel_id, queue), name=f"discord-inbound:{channel_id}"
            )
        return queue

    def new_session(self) -> None:
        """A fresh gateway session: whatever the old one missed is read from history
        before the next live message of each channel."""
        self._needs_catch_up |= self._known

    async def adopt_threads(self, threads: Iterable[tuple[int, int, datetime]]) -> None:
        """At a new session, the active threads as (thread, parent, started): one under a
        watched channel, unknown to us and started after the last message handled there,
        was started while we were away, and is read from its start like a known channel."""
        self.active_threads = set()
        for thread_id, parent_id, started in threads:
            self.active_threads.add(thread_id)
            if thread_id in self._known or parent_id not in self._known:
                continue
            last = await self.last_id(parent_id)
            if last is None or started <= discord.utils.snowflake_time(last):
                continue
            log.info("thread %s in channel %s was started while away", thread_id, parent_id)
            await self._adopt(thread_id, parent_id)
            self._needs_catch_up.add(thread_id)

    def thread_started(self, thread_id: int, parent_id: int) -> None:
        """A thread started under a watched channel is watched from its start: after a
        restart its history is read like any channel's, also before anything in it was
        handled."""
        if parent_id in self._known and thread_id not in self._known:
            self._queue(thread_id).put_nowait(_Item("adopt", parent=parent_id))

    async def _adopt(self, thread_id: int, parent_id: int) -> None:
        await self._remember_parent(thread_id, parent_id)
        self._known.add(thread_id)
        await self._state.set(_CHANNELS_KEY, json.dumps(sorted(self._known)))
        if await self.last_id(thread_id) is None:
            # Its messages all come after its id (the starter message's, or its own).
            await self._state.set(f"last:{thread_id}", str(thread_id))
            self._last[thread_id] = thread_id

    def catch_up_all(self) -> None:
        for channel_id in sorted(self._needs_catch_up):
            self._queue(channel_id).put_nowait(_Item("catchup"))

    async def take(self, message: discord.Message) -> None:
        """`message`, handled in the calling task (discord.py's, one per event) when its
        channel is idle, which saves a turn of the channel's worker; queued behind what
        the channel has in hand otherwise. Either way in the order they came."""
        if self._closed:
            return  # stopping: read from the channel's history at the next start
        if self._is_own(message) or not is_words(message):
            return  # our own echo (half the messages a busy bridge sees) needs no turn
        channel_id = message.channel.id
        queue = self._queue(channel_id)
        turn = self._turns[channel_id]
        if turn.locked() or not queue.empty():
            queue.put_nowait(_Item("message", message=message))
            return
        task = asyncio.current_task()
        assert task is not None
        self._inline.add(task)
        try:
            async with turn:  # free: taken at once, before any other task runs
                await self._run(channel_id, _Item("message", message=message))
        finally:
            self._inline.discard(task)

    def event(self, channel_id: int, event: InboundEvent, seen_key: str | None = None) -> None:
        self._queue(channel_id).put_nowait(_Item("event", event=event, seen_key=seen_key))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued item is handled (tests, shutdown)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for queue in list(self._queues.values()):
                    await queue.join()
                if self._inline:
                    await asyncio.wait(set(self._inline))

    async def finish(self, timeout: float) -> None:
        """Take no new messages, handle what is queued within `timeout`, then let each
        worker end after the item in hand (an item is never cut off halfway: its writes
        and its mark as handled go together); a worker still busy after a further
        `timeout` is left to `stop`."""
        self._closed = True
        await self.drain(timeout)
        self._finishing = True
        for queue in self._queues.values():
            queue.put_nowait(_Item("stop"))
        workers = [t for t in self._workers.values() if not t.done()]
        if workers:
            await asyncio.wait(workers, timeout=timeout)

    async def stop(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        self._queues.clear()

    # -- handling -----------------------------------------------------------------------

    async def _work(self, channel_id: int, queue: asyncio.Queue[_Item]) -> None:
        turn = self._turns[channel_id]
        while not self._finishing:
            item = await queue.get()
            if item.kind == "stop":
                queue.task_done()
                return
            try:
                async with turn:
                    await self._run(channel_id, item)
            finally:
                queue.task_done()

    async def _run(self, channel_id: int, item: _Item) -> None:
        try:
            while True:
                try:
                    await self._item(channel_id, item)
                    return
                except StorageUnavailable:
                    # Logged once by the database; the channel waits, in order.
                    if self._finishing:
                        return  # stopping: read from history at the next start
                    await asyncio.sleep(STORAGE_RETRY)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("inbound %s in channel %s failed", item.kind, channel_id)

    async def _item(self, channel_id: int, item: _Item) -> None:
        if item.kind == "adopt" and item.parent is not None:
            await self._adopt(channel_id, item.parent)
        if item.kind == "catchup" or channel_id in self._needs_catch_up:
            await self._catch_up(channel_id)
        if item.kind == "message" and item.message is not None:
            await self._handle_message(item.message)
        elif item.kind == "event" and item.event is not None:
            await self._handle_event(item.event, item.seen_key)

    async def _handle_event(self, event: InboundEvent, seen_key: str | None) -> None:
        assert self.host is not None
        if seen_key is not None and await self._state.seen(seen_key):
            return
        if seen_key is None or seen_key not in self._unmarked:
            await self.host.handle(event)
        if seen_key is not None:
            self._unmarked.add(seen_key)
            await self._state.mark_seen(seen_key, self._clock.now())
            self._unmarked.discard(seen_key)

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
        if self._is_own(message) or not is_words(message):
            return
        channel = message.channel
        if isinstance(channel, discord.Thread) and channel.parent_id:
            await self._remember_parent(channel.id, channel.parent_id)
        event = message_event(message, self.parents.get(channel_id))
        if channel_id not in self._marked and await self._state.seen(event.event_id):
            return
        try:
            await self.host.handle(event)
        except StorageUnavailable:
            raise  # not handled: the worker tries it again, the last id stays
        except Exception:
            log.exception("handling message %s failed", message.id)
        self.handled += 1
        # Only now is it handled: the channel's position moves past it, written within a
        # few ms behind this worker. A crash before then sees it again after restart, and
        # what its handling queued is known by its delivery keys. The position alone
        # says what was handled (a channel's messages are handled in the order of their
        # ids); the seen row of each message, written until 2026-12, is looked up still
        # for the first message of a channel after a start.
        self._state.set_soon(f"last:{channel_id}", str(message.id))
        self._last[channel_id] = message.id
        self._marked.add(channel_id)
        if channel_id not in self._known:
            self._known.add(channel_id)
            await self._state.set(_CHANNELS_KEY, json.dumps(sorted(self._known)))

    async def _catch_up(self, channel_id: int) -> None:
        self._needs_catch_up.discard(channel_id)
        last = await self.last_id(channel_id)
        if last is None:
            return  # never handled anything here: nothing to catch up from
        if channel_id in self.parents and channel_id not in self.active_threads:
            # An archived thread quiet for longer than Discord keeps a thread open had
            # nothing new before we left: reading every old thread at each new session
            # would cost a request apiece, for years' worth of threads.
            quiet_since = discord.utils.snowflake_time(last)
            if self._clock.now() - quiet_since > _THREAD_QUIET:
                return
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
