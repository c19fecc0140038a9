"""The Matrix adapter: wires login, sync, inbound conversion, outbound calls and
cross-signing together, and answers the framework's `Adapter` protocol."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from nio import (
    AsyncClient,
    JoinedRoomsResponse,
    JoinResponse,
    MegolmEvent,
    RoomResolveAliasResponse,
)

from bot.core.clock import Clock
from bot.core.errors import PermanentSendError, PlatformUnavailable, SendError
from bot.core.events import MessageReceived
from bot.core.i18n import Translator
from bot.core.messages import OutgoingMessage
from bot.core.platform import AdapterHost
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.settings import MatrixSettings
from bot.storage.health import StorageUnavailable
from bot.storage.state import AdapterState

from . import formatting, inbound, polls
from .crosssign import CrossSigning
from .direct import DirectRooms
from .memory import Lru, Threads
from .outbound import Outbound, api
from .rooms import Rooms
from .session import open_client
from .syncing import SyncError, SyncLoop

log = logging.getLogger(__name__)

_LOCALES: Final = Path(__file__).parent / "locales"
INLINE_MEDIA_BYTES: Final = 10 * 1024 * 1024  # files up to this size come with their data


class MatrixAdapter:
    platform = "matrix"
    message_limit = formatting.MESSAGE_LIMIT
    inbound_limit = 65_536  # an event is at most 64 KiB, so no body is longer
    # A transaction id is deduplicated by the homeserver per device: command replies
    # need no outbox row (see Delivery.send_reply).
    idempotent_sends = True

    def __init__(
        self, settings: MatrixSettings, state: AdapterState, clock: Clock, language: str = "sv"
    ) -> None:
        self.settings = settings
        self.command_prefix: str | None = settings.command_prefix
        self._state = state
        self._clock = clock
        self._language = language
        self._t = Translator(language)
        self._t.load_dir(_LOCALES)
        self._client: AsyncClient | None = None
        self._host: AdapterHost | None = None
        self._sync: SyncLoop | None = None
        self._outbound: Outbound | None = None
        self._cross: CrossSigning | None = None
        self._stopped = asyncio.Event()
        self._running: asyncio.Task[Any] | None = None
        # Configured rooms may be aliases: events report the room as configured.
        self._alias_ids: dict[str, str] = {}
        self._configured_ids: set[str] = set()
        self._threads = Threads()
        self._reactions: Lru = Lru()
        self._recent: Lru = Lru()  # ids handled in this run
        self._names: Lru = Lru()  # members' names fetched after a restart
        self._rooms = Rooms(
            lambda: self._client,
            self._room_id,
            settings.organiser_power_level,
            self._t,
            language,
        )
        self._direct: DirectRooms | None = None
        self._secret_posts = polls.SecretPosts(state)
        self.ready_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: AdapterHost) -> None:
        began = time.perf_counter()
        # nio logs every event at INFO: noise, and a cost per message.
        if logging.getLogger("nio").level == logging.NOTSET:
            logging.getLogger("nio").setLevel(logging.WARNING)
        self._host = host
        try:
            client, creds, new_device = await open_client(self.settings)
            self._client = client
            try:
                await self._connect(client, host, new_device)
            except BaseException:
                await client.close()
                self._client = None
                raise
        except (aiohttp.ClientError, TimeoutError, SyncError) as exc:
            # Not answering (yet) is not a mistake of the configuration: tried again.
            raise PlatformUnavailable(f"{self.settings.homeserver}: {exc}") from None
        self.ready_seconds = time.perf_counter() - began
        log.info(
            "Matrix ready as %s (device %s) in %d rooms after %.2fs",
            creds.user_id, creds.device_id, len(client.rooms), self.ready_seconds,
        )  # fmt: skip

    async def _connect(self, client: AsyncClient, host: AdapterHost, new_device: bool) -> None:
        self._outbound = Outbound(client, self._threads, self._state)
        self._direct = DirectRooms(client, self._state)
        await self._direct.load()
        self._sync = SyncLoop(
            client,
            self._state,
            self._on_event,
            self._on_invite,
            host.connection_restored,
            invited_counts=lambda room_id: self._direct is not None and room_id in self._direct,
            last_post=lambda: self._out().last_post,
        )
        await self._join_configured(host.rooms(self.platform))
        await self._sync.prepare()
        if client.should_upload_keys:
            # The device keys must be on the server before they can be cross-signed.
            await client.keys_upload()
        self._cross = CrossSigning(client, self.settings, new_device)
        try:
            await self._cross.ensure()
        except Exception:
            # Messages still flow; clients will show the device as unverified.
            log.exception("cross-signing of device %s failed", client.device_id)

    async def run(self) -> None:
        assert self._sync is not None, "start() first"
        self._running = asyncio.current_task()
        await self._sync.run(self._stopped)

    async def stop_receiving(self) -> None:
        """`run` returns once the batch in hand is handled and its position saved; the
        client stays connected, so that posts in flight still go out."""
        self._stopped.set()
        running, self._running = self._running, None
        if running is not None and running is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                # Let the batch in hand finish and its position be saved.
                await asyncio.wait_for(asyncio.shield(running), 10)
        if self._sync is not None:
            try:
                await self._sync.save()
            except Exception:
                log.exception("could not save the Matrix sync position")

    async def stop(self) -> None:
        await self.stop_receiving()
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- rooms -------------------------------------------------------------------------

    def _room_id(self, ref_id: str) -> str:
        return self._alias_ids.get(ref_id, ref_id)

    def _room_ref(self, room_id: str) -> RoomRef:
        for alias, rid in self._alias_ids.items():
            if rid == room_id:
                return RoomRef(self.platform, alias)
        return RoomRef(self.platform, room_id)

    async def _join_configured(self, rooms: Any) -> None:
        client = self._client
        assert client is not None
        for ref in rooms:
            if ref.id.startswith("#"):
                answer = await client.room_resolve_alias(ref.id)
                if not isinstance(answer, RoomResolveAliasResponse):
                    log.error("room alias %s cannot be resolved: %s", ref.id, answer)
                    continue
                self._alias_ids[ref.id] = str(answer.room_id)
            self._configured_ids.add(self._room_id(ref.id))
        joined = await client.joined_rooms()
        have = set(joined.rooms) if isinstance(joined, JoinedRoomsResponse) else set()
        for room_id in sorted(self._configured_ids - have):
            await self._join(room_id)

    async def _join(self, room_id: str) -> None:
        assert self._client is not None
        answer = await self._client.join(room_id)
        if isinstance(answer, JoinResponse):
            log.info("joined %s", room_id)
        elif room_id in self._configured_ids:
            log.error("cannot join configured room %s: %s (invite the bot)", room_id, answer)
        else:
            log.warning("cannot join the direct chat %s: %s", room_id, answer)

    async def _on_invite(self, room_id: str, info: Any) -> None:
        # Only the rooms of the configuration, and direct chats opened by people who
        # share one of them with the bot: a bot that joins anything can be spammed.
        assert self._direct is not None
        if room_id in self._configured_ids or await self._direct.admits(
            room_id, info, self._configured_ids
        ):
            await self._join(room_id)
        else:
            log.info("ignoring an invite to %s: not a configured room", room_id)

    async def rooms_of_member(self, user: UserRef) -> list[RoomRef]:
        """The configured rooms `user` is joined to (the homeserver's word)."""
        if user.platform != self.platform or self._direct is None:
            return []
        joined = await self._direct.joined_of(self._configured_ids, user.id)
        return [self._room_ref(room_id) for room_id in joined]

    # -- inbound -----------------------------------------------------------------------

    async def _on_event(self, room_id: str, event: Any, maybe_repeat: bool, mark: bool) -> bool:
        client, host = self._client, self._host
        assert client is not None and host is not None
        source: dict[str, Any] = event.source
        sender = source.get("sender")
        event_id = source.get("event_id")
        if sender == client.user_id or not isinstance(event_id, str):
            return False
        if isinstance(event, MegolmEvent):
            await self._undecryptable(room_id, event)
            return True
        if event_id in self._recent or (maybe_repeat and await self._state.seen(event_id)):
            return False
        room_key = self._room_ref(room_id).id
        name = await self._display_name(room_id, str(sender))
        core = inbound.convert(
            room_key,
            source,
            name,
            attachment_data=await self._inline_media(source),
            reactions=self._reactions,
        )
        if isinstance(core, MessageReceived):
            if core.thread is not None:
                self._threads.saw(event_id, core.thread.id)
            if core.reply_to is not None and core.reply_quote is None:
                # No fallback (newer clients send none): the answered words are fetched,
                # for rooms where the original cannot be linked.
                quote = await self._quote_of(room_id, core.reply_to.id)
                core = dataclasses.replace(core, reply_quote=quote)
        if core is not None:
            try:
                await host.handle(core)
            except StorageUnavailable:
                # Not handled: the batch's position stays, and the sync loop hands the
                # event over again once the database can be written.
                raise
            except Exception:
                log.exception("handling Matrix event %s failed", event_id)
        self._recent.remember(event_id, True)
        if mark:
            await self._state.mark_seen(event_id, self._clock.now())
        return True

    async def _quote_of(self, room_id: str, event_id: str) -> str | None:
        """ "Name: words" of event `event_id`, or None if it cannot be read."""
        client = self._client
        assert client is not None
        try:
            answer = await client.room_get_event(room_id, event_id)
        except Exception as exc:  # a quote is not worth dropping the reply for
            log.warning("cannot read %s in %s: %s", event_id, room_id, exc)
            return None
        event = getattr(answer, "event", None)
        if isinstance(event, MegolmEvent):
            try:
                event = client.decrypt_event(event)
            except Exception:
                return None  # no key for it: the reply goes without a quote
        body = getattr(event, "body", None)
        sender = getattr(event, "sender", None)
        if not isinstance(body, str) or not isinstance(sender, str):
            return None
        name = await self._display_name(room_id, sender)
        return f"{name}: {inbound.strip_reply_fallback(body)}"

    async def _display_name(self, room_id: str, user_id: str) -> str:
        """The sender's name in the room. After a restart the sync resumes from its
        position without the member list, so an unknown member is asked for once."""
        assert self._client is not None
        room = self._client.rooms.get(room_id)
        if room is not None and user_id in room.users:
            return str(room.user_name(user_id) or user_id)
        cached = self._names.get(f"{room_id}|{user_id}")
        if isinstance(cached, str):
            return cached
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state/m.room.member/"
            f"{quote(user_id, safe='')}"
        )
        try:
            status, member = await api(self._client, "GET", path)
        except Exception as exc:  # a name is not worth dropping the event for
            log.warning("cannot read the name of %s in %s: %s", user_id, room_id, exc)
            return user_id
        name = member.get("displayname") if status == 200 else None
        found = name if isinstance(name, str) and name.strip() else user_id
        self._names.remember(f"{room_id}|{user_id}", found)
        return found

    async def _inline_media(self, source: dict[str, Any]) -> bytes | None:
        content = source.get("content")
        if source.get("type") != "m.room.message" or not isinstance(content, dict):
            return None
        media = inbound.media_of(content)
        info = content.get("info")
        size = info.get("size") if isinstance(info, dict) else None
        if media is None or (isinstance(size, int) and size > INLINE_MEDIA_BYTES):
            return None
        assert self._outbound is not None
        try:
            return await self._outbound.fetch(media.mxc, media.encrypted)
        except SendError as exc:
            log.warning("could not download %s: %s", media.mxc, exc)
            return None

    async def _undecryptable(self, room_id: str, event: Any) -> None:
        session = str(getattr(event, "session_id", "") or "")
        log.warning(
            "cannot decrypt %s from %s in %s (session %s)",
            event.event_id, event.sender, room_id, session,
        )  # fmt: skip
        once = f"undecryptable:{room_id}:{session}"
        if await self._state.get(once) is not None:
            return
        token = hashlib.sha256(once.encode()).hexdigest()[:24]
        room = self._room_ref(room_id)
        language = self._host.language_for(room) if self._host else self._language
        text = self._t.t("matrix.undecryptable", language)
        message = OutgoingMessage(text=text, reply_to=MessageRef(room, event.event_id))
        try:
            await self.send(room, message, token)
        except SendError as exc:
            # Not marked as answered: the next undecryptable event tries again.
            log.warning("could not tell %s about an undecryptable event: %s", room_id, exc)
            return
        await self._state.set(once, event.event_id)

    # -- outbound ----------------------------------------------------------------------

    def _out(self) -> Outbound:
        if self._outbound is None:
            raise PermanentSendError("the Matrix adapter is not started")
        return self._outbound

    def _to_id(self, room: RoomRef) -> RoomRef:
        return RoomRef(room.platform, self._room_id(room.id))

    def _target(self, ref: MessageRef) -> MessageRef:
        return MessageRef(self._to_id(ref.room), ref.id)

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        secret = message.poll is not None and message.poll.secret
        out = polls.as_words(message) if secret else message
        ref = await self._out().send(self._to_id(room), out, token)
        if secret:
            await self._secret_posts.remember(ref.id)
        return MessageRef(room, ref.id)

    async def edit(self, target: MessageRef, message: OutgoingMessage, token: str) -> None:
        await self._out().edit(self._target(target), message, token)

    async def delete(self, target: MessageRef, token: str) -> None:
        await self._out().delete(self._target(target), token)

    async def react(self, target: MessageRef, key: str, token: str) -> MessageRef | None:
        ref = await self._out().react(self._target(target), key, token)
        return MessageRef(target.room, ref.id)

    async def close_poll(
        self, target: MessageRef, message: OutgoingMessage, token: str
    ) -> MessageRef | None:
        if await self._secret_posts.has(target.id):
            # Words, not a native poll: closed by a reply, if there is anything to say.
            ended = None
            if message.text.strip():
                reply = dataclasses.replace(message, reply_to=target)
                ended = await self.send(target.room, reply, token)
            await self._secret_posts.forget(target.id)
            return ended
        ref = await self._out().close_poll(self._target(target), message, token)
        return MessageRef(target.room, ref.id)

    async def check_room(self, room: RoomRef) -> str | None:
        return await self._rooms.check_room(room)

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        return await self._rooms.is_organiser(user, room)

    def connected(self) -> bool:  # started, and the last sync succeeded
        sync = self._sync
        return self._client is not None and sync is not None and sync.last_error is None

    def health(self) -> dict[str, str]:
        client, sync = self._client, self._sync
        if client is None or sync is None:
            return {"state": "stopped"}
        out = {
            "state": "error: " + sync.last_error if sync.last_error else "syncing",
            "rooms": str(len(client.rooms)),
            "device": str(client.device_id),
        }
        if self._cross is not None:
            out["cross_signing"] = self._cross.status
        return out
