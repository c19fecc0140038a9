"""The client's events, turned into core events and queued per channel.

Each handler enqueues synchronously before its first `await`: discord.py runs event
handlers as tasks in arrival order, so the queues keep Discord's order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import discord

from bot.adapters.discord.commands import association_choices, parse_invocation
from bot.adapters.discord.errors import AuthBrake, boundary
from bot.adapters.discord.inbound import Inbound, place_of, ref_of, sender_of
from bot.adapters.discord.interactions import Interactions
from bot.adapters.discord.markdown_in import document_of
from bot.adapters.discord.polls import SELECT_ID, VOTE_PREFIX, PollBook, PollRecord
from bot.core.commands import CommandSpec
from bot.core.events import (
    ButtonPressed,
    CommandInvoked,
    MessageDeleted,
    MessageEdited,
    PollVoteReceived,
    ReactionAdded,
    ReactionRemoved,
)
from bot.core.refs import MessageRef, RoomRef

log = logging.getLogger(__name__)


class RoleCache:
    """Members' roles as last seen (interactions and messages carry them), for the
    organiser check; older than `ttl` seconds they are fetched again."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._roles: dict[tuple[int, int], tuple[float, frozenset[int]]] = {}

    def remember(self, guild_id: int, member: discord.Member) -> None:
        self._roles[(guild_id, member.id)] = (
            time.monotonic(),
            frozenset(role.id for role in member.roles),
        )

    def get(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        entry = self._roles.get((guild_id, user_id))
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, guild_id: int, user_id: int, roles: frozenset[int]) -> None:
        self._roles[(guild_id, user_id)] = (time.monotonic(), roles)


class Receiver:
    def __init__(
        self,
        inbound: Inbound,
        interactions: Interactions,
        polls: PollBook,
        roles: RoleCache,
        brake: AuthBrake,
        *,
        specs: Callable[[], Sequence[CommandSpec]],
        associations: Mapping[str, str],
        translate: Callable[[str], str],
        is_own: Callable[[int | None, int | None], bool],
        connected: Callable[[], None] = lambda: None,
        channel_of: Callable[[int], object] = lambda _: None,
        threads: Callable[[], Iterable[discord.Thread]] = list,
        session_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self._threads = threads
        self._session_ready = session_ready
        self._connected = connected
        self._channel_of = channel_of
        self._inbound = inbound
        self._interactions = interactions
        self._polls = polls
        self._roles = roles
        self._brake = brake
        self._specs = specs
        self._associations = associations
        self._t = translate
        self._is_own = is_own
        self.ready_count = 0
        self.sessions = 0

    async def new_session(self) -> None:
        self.sessions += 1
        self._inbound.new_session()

    async def ready(self) -> None:
        self.ready_count += 1
        await self._inbound.adopt_threads(
            (t.id, t.parent_id, t.created_at or discord.utils.snowflake_time(t.id))
            for t in self._threads()
        )
        self._inbound.catch_up_all()
        # The gateway says nothing of votes on polls it did not show this session.
        self._session_ready()
        self._connected()

    async def thread_create(self, thread: discord.Thread) -> None:
        self._inbound.thread_started(thread.id, thread.parent_id)

    async def resumed(self) -> None:
        self._connected()

    def _place(self, channel_id: int, message_id: int) -> tuple[RoomRef, MessageRef]:
        """The room of a message known by ids only, and its reference (see `ref_of`)."""
        channel = self._channel_of(channel_id)
        room, thread = place_of(channel, channel_id, self._inbound.parents.get(channel_id))
        return room, ref_of(room, thread, message_id)

    async def message(self, message: discord.Message) -> None:
        # First: a command in this very message is checked against the roles it carries.
        if isinstance(message.author, discord.Member) and message.guild is not None:
            self._roles.remember(message.guild.id, message.author)
        await self._inbound.take(message)

    async def message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        message = payload.message
        if message.edited_at is None or self._is_own(message.author.id, message.webhook_id):
            return  # no edit time: Discord only added a link preview
        room, ref = self._place(payload.channel_id, message.id)
        edited = message.edited_at
        self._inbound.event(
            payload.channel_id,
            MessageEdited(
                event_id=f"e{message.id}:{edited.timestamp()}",
                room=room,
                sender=sender_of(message.author),
                at=edited,
                ref=ref,
                text=message.clean_content,
                document=document_of(message),
            ),
        )

    async def message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        cached = payload.cached_message
        room, ref = self._place(payload.channel_id, payload.message_id)
        self._inbound.event(
            payload.channel_id,
            MessageDeleted(
                event_id=f"d{payload.message_id}",
                room=room,
                sender=sender_of(cached.author if cached else None),
                at=discord.utils.utcnow(),
                ref=ref,
            ),
        )

    async def reaction(self, payload: discord.RawReactionActionEvent, added: bool) -> None:
        if self._is_own(payload.user_id, None):
            return
        room, target = self._place(payload.channel_id, payload.message_id)
        key = str(payload.emoji)
        now = discord.utils.utcnow()
        ident = f"{payload.message_id}:{payload.user_id}:{key}:{now.timestamp()}"
        sender = sender_of(payload.member, payload.user_id)
        event: ReactionAdded | ReactionRemoved
        if added:
            event = ReactionAdded(
                event_id=f"r+{ident}",
                room=room,
                sender=sender,
                at=now,
                ref=MessageRef(room, f"r{payload.message_id}-{payload.user_id}"),
                target=target,
                key=key,
            )
        else:
            event = ReactionRemoved(
                event_id=f"r-{ident}", room=room, sender=sender, at=now, target=target, key=key
            )
        self._inbound.event(payload.channel_id, event)

    async def poll_vote(self, payload: discord.RawPollVoteActionEvent, added: bool) -> None:
        record = await self._polls.get(payload.message_id)
        if record is None or record.kind != "native":
            return
        answers = await self._polls.native_vote(
            payload.message_id, payload.user_id, record, payload.answer_id, added
        )
        if answers is None:
            return
        room, poll = self._place(payload.channel_id, payload.message_id)
        now = discord.utils.utcnow()
        self._inbound.event(
            payload.channel_id,
            PollVoteReceived(
                event_id=f"v{payload.message_id}:{payload.user_id}:{now.timestamp()}",
                room=room,
                sender=sender_of(None, payload.user_id),
                at=now,
                poll=poll,
                answers=answers,
            ),
        )

    async def interaction(self, interaction: discord.Interaction[Any]) -> None:
        if interaction.channel_id is None:
            return
        if isinstance(interaction.user, discord.Member) and interaction.guild_id is not None:
            self._roles.remember(interaction.guild_id, interaction.user)
        kind = interaction.type
        if kind is discord.InteractionType.application_command:
            self._command(interaction)
        elif kind is discord.InteractionType.autocomplete:
            await self._autocomplete(interaction)
        elif kind is discord.InteractionType.component:
            await self._component(interaction)

    def _command(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.channel_id is not None
        data: Mapping[str, Any] = interaction.data or {}
        path, args, _ = parse_invocation(data, self._specs())
        origin = self._interactions.track(interaction)
        self._inbound.event(
            interaction.channel_id,
            CommandInvoked(
                event_id=f"i{interaction.id}",
                room=place_of(interaction.channel, interaction.channel_id)[0],
                sender=sender_of(interaction.user),
                at=interaction.created_at,
                path=path,
                args=args,
                origin=origin,
            ),
            seen_key=f"i{interaction.id}",
        )

    async def _autocomplete(self, interaction: discord.Interaction[Any]) -> None:
        data: Mapping[str, Any] = interaction.data or {}
        _, args, focused = parse_invocation(data, self._specs())
        typed = str(args.get(focused, "") if focused else "")
        language = "sv" if str(interaction.locale).startswith("sv") else "en"
        choices = [
            discord.app_commands.Choice(name=c["name"], value=c["value"])
            for c in association_choices(typed, self._associations, language)
        ]
        async with boundary(self._brake):
            await interaction.response.autocomplete(choices)

    async def _component(self, interaction: discord.Interaction[Any]) -> None:
        """A click or a pick: acknowledged at once (see `Interactions`), then handed to
        the core with an origin through which the answer reaches the voter alone."""
        assert interaction.channel_id is not None
        data: Mapping[str, Any] = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        message = interaction.message
        if message is None:
            return
        origin = self._interactions.track(interaction, component=True)
        room, ref = self._place(interaction.channel_id, message.id)
        is_vote = custom_id.startswith(VOTE_PREFIX) or custom_id == SELECT_ID
        record = await self._polls.get(message.id) if is_vote else None
        base: dict[str, Any] = {
            "event_id": f"i{interaction.id}",
            "room": room,
            "sender": sender_of(interaction.user),
            "at": interaction.created_at,
        }
        vote = await self._vote(record, message.id, interaction.user.id, custom_id, data)
        event: PollVoteReceived | ButtonPressed
        if vote is not None:
            answers, toggle = vote
            event = PollVoteReceived(
                **base, poll=ref, answers=answers, toggle=toggle, origin=origin
            )
        else:
            event = ButtonPressed(**base, message=ref, custom_id=custom_id, origin=origin)
        self._inbound.event(interaction.channel_id, event, seen_key=f"i{interaction.id}")

    async def _vote(
        self,
        record: PollRecord | None,
        message_id: int,
        user_id: int,
        custom_id: str,
        data: Mapping[str, Any],
    ) -> tuple[tuple[str, ...], bool] | None:
        """The answers a component vote stands for, and whether they are a toggle; None
        when it is not a vote on a poll this adapter posted."""
        if record is None:
            return None
        if record.kind == "select" and custom_id == SELECT_ID:
            # The picks are the voter's whole choice (none: the vote taken back).
            picked = [str(v) for v in data.get("values") or []]
            return tuple(a for a in record.answers if a in picked), False
        answer = custom_id[len(VOTE_PREFIX) :]
        if record.kind != "buttons" or answer not in record.answers:
            return None
        if record.secret:
            # No choice is kept for a secret poll: the click goes to the core as it is.
            return (answer,), record.max_selections > 1
        return await self._polls.button_vote(message_id, user_id, record, answer), False
