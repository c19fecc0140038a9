"""The bridge: a message in one room of a bridge appears in every other room of it.

Every copy goes through delivery with the key `bridge:<source message>:<target room>`,
in a lane per source and target room, so a target that is down gets its messages late
and in order while the other rooms go on. The map from a message to its copies (keys,
never text) lets edits, deletions, replies and reactions follow, also after a restart,
for the bridge's retention period.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from bot.commanding import CommandCall
from bot.core.document import Document
from bot.core.events import (
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ReactionAdded,
    ReactionRemoved,
    Sender,
)
from bot.core.markdown_out import to_markdown
from bot.core.messages import Attribution, OutgoingMessage
from bot.core.permissions import Level
from bot.core.refs import MessageRef, RoomRef
from bot.delivery import LaneHealth, Target
from bot.plugin import Plugin, command, job, on
from bot.scheduling import JobRun
from plugins.bridge.formatting import document_of, with_quote
from plugins.bridge.personal import BridgeData
from plugins.bridge.settings import BridgeSettings
from plugins.bridge.store import BridgeStore, migrations

PURGE_CRON: Final = "41 3 * * *"


def copy_key(origin: MessageRef | str, room: RoomRef) -> str:
    return f"bridge:{origin}:{room}"


def lane(source: RoomRef, target: RoomRef) -> str:
    return f"bridge:{source}>{target}"


class BridgePlugin(Plugin):
    name = "bridge"
    settings_key = "bridges"
    settings_type = list[BridgeSettings]
    settings_default = list
    migrations = migrations
    locales = str(Path(__file__).parent / "locales")
    personal_data = BridgeData()

    async def on_start(self) -> None:
        self.bridges: list[BridgeSettings] = list(self.ctx.settings or [])
        self.store = BridgeStore(self.ctx.db)
        self._of_room: dict[RoomRef, list[BridgeSettings]] = {}
        for bridge in self.bridges:
            for room in bridge.rooms:
                self._of_room.setdefault(room, []).append(bridge)
        if self.bridges:
            await self.ctx.scheduler.every("purge", PURGE_CRON, "purge", grace=timedelta(days=3650))

    async def on_ready(self) -> None:
        # A room the bot cannot reach is said at start, not silently skipped.
        for bridge in self.bridges:
            for room in bridge.rooms:
                problem = await self.ctx.check_room(room)
                if problem:
                    self.log.warning(
                        "bridge %s: room %s is not usable: %s", bridge.id, room, problem
                    )

    # -- where a room's messages go ---------------------------------------------------

    def _targets(self, room: RoomRef) -> list[tuple[RoomRef, str]]:
        """Every other room of every bridge `room` is in, once, with the bridge's id."""
        seen: dict[RoomRef, str] = {}
        for bridge in self._of_room.get(room, []):
            for other in bridge.rooms:
                if other != room:
                    seen.setdefault(other, bridge.id)
        return list(seen.items())

    def _attribution(self, sender: Sender, room: RoomRef) -> Attribution:
        assoc = self.ctx.associations.of_room(room)
        return Attribution(sender.display_name, assoc.name if assoc else None, sender.avatar_url)

    async def _origin(self, ref: MessageRef) -> MessageRef:
        """The source message of `ref`: itself, or the message it is a copy of."""
        key = await self.ctx.delivery.key_for(ref)
        if key is not None:
            origin = await self.store.origin_of_key(key)
            if origin is not None:
                return origin
        return ref

    async def _room_of_ref(
        self, origin: MessageRef, room: RoomRef
    ) -> tuple[MessageRef | None, str | None]:
        """How to point at `origin` in `room`: the message itself or its copy's key."""
        if origin.room == room:
            return origin, None
        for copy in await self.store.copies(str(origin)):
            if copy.room == room:
                return None, copy.key
        return None, None

    # -- following messages -----------------------------------------------------------

    @on(MessageReceived)
    async def relay(self, event: MessageReceived) -> None:
        targets = self._targets(event.room)
        if not targets:
            return
        document = document_of(event)
        # Every copy, its map entry and its outbox row are written together or not at
        # all: a stop or a failure halfway leaves nothing that a retry would skip.
        async with self.ctx.db.transaction():
            await self._relay(event, targets, document)

    async def _relay(
        self,
        event: MessageReceived,
        targets: list[tuple[RoomRef, str]],
        document: Document,
    ) -> None:
        origin = await self._origin(event.reply_to) if event.reply_to else None
        root = await self._origin(event.thread) if event.thread else None
        now = self.ctx.clock.now()
        for room, bridge_id in targets:
            key = copy_key(event.ref, room)
            reply_ref, reply_key = (None, None)
            body = document
            if origin is not None:
                reply_ref, reply_key = await self._room_of_ref(origin, room)
                if reply_ref is None and reply_key is None and event.reply_quote:
                    body = with_quote(document, event.reply_quote)
            # A thread follows where its root was bridged; a thread on a message the
            # bridge never saw reads as plain messages in the room.
            thread_ref, thread_key = (None, None)
            if root is not None:
                thread_ref, thread_key = await self._room_of_ref(root, room)
            # The document is what adapters render; its Markdown is the core's text.
            message = OutgoingMessage(
                text=to_markdown(body),
                document=body,
                attachments=event.attachments,
                reply_to=reply_ref,
                reply_to_key=reply_key,
                thread=thread_ref,
                thread_key=thread_key,
                attribution=self._attribution(event.sender, event.room),
                notice=False,
            )
            await self.store.add(
                str(event.ref), room, key, "message", bridge_id, now, str(event.sender.user)
            )
            await self.ctx.delivery.send(key, room, message, lane=lane(event.room, room))

    @on(MessageEdited)
    async def follow_edit(self, event: MessageEdited) -> None:
        document = document_of(event)
        async with self.ctx.db.transaction():
            await self._edit_copies(event, document)

    async def _edit_copies(self, event: MessageEdited, document: Document) -> None:
        text = to_markdown(document)
        for copy in await self.store.copies(str(event.ref)):
            message = OutgoingMessage(
                text=text,
                document=document,
                attribution=self._attribution(event.sender, event.room),
                notice=False,
            )
            await self.ctx.delivery.edit(
                f"bridge-edit:{event.event_id}:{copy.room}",
                Target(key=copy.key),
                copy.room,
                message,
                lane=lane(event.room, copy.room),
            )

    @on(MessageDeleted)
    async def follow_deletion(self, event: MessageDeleted) -> None:
        # The deleted thing may be a message or a reaction (Matrix redacts both).
        async with self.ctx.db.transaction():
            await self._delete_copies(str(event.ref), event.room)

    async def _delete_copies(self, name: str, source: RoomRef) -> None:
        for copy in await self.store.copies(name):
            await self.ctx.delivery.delete(
                f"bridge-delete:{copy.delivery_key}",
                Target(key=copy.delivery_key),
                copy.room,
                lane=lane(source, copy.room),
            )

    @on(ReactionAdded)
    async def follow_reaction(self, event: ReactionAdded) -> None:
        async with self.ctx.db.transaction():
            await self._react_copies(event)

    async def _react_copies(self, event: ReactionAdded) -> None:
        origin = await self._origin(event.target)
        rooms = [origin.room] + [c.room for c in await self.store.copies(str(origin))]
        if event.room not in rooms:
            return
        now = self.ctx.clock.now()
        # Removals arrive either as a deletion of the reaction (Matrix) or as who/what
        # on which message (Discord): remember the copies under both names.
        names = [str(event.ref), _reaction_name(event.target, event.sender, event.key)]
        for room in rooms:
            if room == event.room:
                continue
            ref, key = await self._room_of_ref(origin, room)
            target = Target(ref=ref) if ref is not None else Target(key=key)
            if target.ref is None and target.key is None:
                continue
            react_key = f"bridge-react:{event.event_id}:{room}"
            for name in names:
                await self.store.add(
                    name, room, f"{react_key}|{name}", "reaction", "", now, str(event.sender.user)
                )
            await self.ctx.delivery.react(
                react_key, target, room, event.key, lane=lane(event.room, room)
            )

    @on(ReactionRemoved)
    async def follow_reaction_removal(self, event: ReactionRemoved) -> None:
        name = _reaction_name(event.target, event.sender, event.key)
        async with self.ctx.db.transaction():
            await self._delete_copies(name, event.room)

    # -- upkeep and status -------------------------------------------------------------

    @job("purge")
    async def purge(self, run: JobRun) -> None:
        now = self.ctx.clock.now()
        forgotten = 0
        for bridge in self.bridges:
            forgotten += await self.store.forget(bridge.id, now - bridge.retention)
        # Reaction rows carry no bridge; they go with the shortest retention.
        shortest = min((b.retention for b in self.bridges), default=timedelta(days=30))
        forgotten += await self.store.forget("", now - shortest)
        self.log.info("forgot %d bridged message map entries", forgotten)

    @command("bridge status", sv="brygga status", help="bridge.status_help", level=Level.ORGANISER)
    async def status(self, call: CommandCall) -> None:
        if not self.bridges:
            await call.reply(call.t("bridge.none"))
            return
        lanes = {h.lane: h for h in await self.ctx.delivery.health()}
        lines: list[str] = []
        for bridge in self.bridges:
            lines.append(call.t("bridge.title", id=bridge.id, count=len(bridge.rooms)))
            for room in bridge.rooms:
                lines.append("  " + await self._room_line(call, room, lanes.values()))
        await call.reply("\n".join(lines))

    async def _room_line(
        self, call: CommandCall, room: RoomRef, lanes: Iterable[LaneHealth]
    ) -> str:
        backlog = 0
        error: str | None = None
        for health in lanes:
            if health.lane.startswith("bridge:") and health.lane.endswith(f">{room}"):
                backlog += health.backlog
                error = health.last_error or error
        problem = await self.ctx.check_room(room)
        last = await self.store.last_relay(room)
        when = (
            call.translator.datetime(
                last.astimezone(ZoneInfo(self.ctx.timezone_name)), call.language
            )
            if last
            else call.t("bridge.never")
        )
        assoc = self.ctx.associations.of_room(room)
        label = f"{room} ({assoc.name})" if assoc else str(room)
        if problem:
            state = call.t("bridge.unreachable", problem=problem)
        elif error:
            state = call.t("bridge.failing", error=error)
        else:
            state = call.t("bridge.ok")
        return call.t("bridge.room", room=label, state=state, last=when, backlog=backlog)


def _reaction_name(target: MessageRef, sender: Sender, key: str) -> str:
    return f"reaction:{target}|{sender.user}|{key}"


__all__ = ["BridgePlugin", "copy_key", "lane"]
