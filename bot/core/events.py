"""Inbound events: what adapters hand to the framework, in platform-neutral form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.document import Document
from bot.core.messages import Attachment
from bot.core.refs import MessageRef, RoomRef, UserRef


@dataclass(frozen=True, slots=True)
class Sender:
    user: UserRef
    display_name: str
    avatar_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundEvent:
    """Base of every inbound event. `event_id` is unique per platform, used to drop repeats."""

    event_id: str
    room: RoomRef
    sender: Sender
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(InboundEvent):
    ref: MessageRef
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    reply_to: MessageRef | None = None
    # What the replied-to message said, as the platform gave it ("Anna: text"), for
    # quoting where the original cannot be linked; None when unknown.
    reply_quote: str | None = None
    thread: MessageRef | None = None
    is_notice: bool = False
    # The text's formatting as the adapter parsed it from the platform's own form
    # (Discord's Markdown, Matrix HTML); None where the text is all there is.
    document: Document | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEdited(InboundEvent):
    ref: MessageRef
    text: str
    html: str | None = None
    document: Document | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDeleted(InboundEvent):
    ref: MessageRef


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionAdded(InboundEvent):
    ref: MessageRef
    target: MessageRef
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionRemoved(InboundEvent):
    target: MessageRef
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PollVoteReceived(InboundEvent):
    """A native vote: `poll` is the poll's message, `answers` the chosen answer ids
    (empty: the vote was withdrawn).

    `toggle`: `answers` is the one answer clicked, to be added to or taken from the
    voter's current choice (buttons of a multiple-choice poll whose choices the adapter
    does not keep, a secret one). `origin`: what an answer to the voter replies to (for
    a Discord interaction, the adapter's reference: answered to the voter alone)."""

    poll: MessageRef
    answers: tuple[str, ...]
    toggle: bool = False
    origin: MessageRef | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PollVotesSnapshot(InboundEvent):
    """Every current vote of a native poll as the platform reports it (Discord's voter
    lists, read at start and at close): the truth for that post, so that votes cast or
    taken back while the bot was away count. `sender` is the bot itself."""

    poll: MessageRef
    votes: tuple[tuple[Sender, tuple[str, ...]], ...]
    final: bool = False  # read after the poll ended: nothing changes any more


@dataclass(frozen=True, slots=True, kw_only=True)
class ButtonPressed(InboundEvent):
    """A click on a button the bot posted; `custom_id` is what the bot put on it.
    `origin` as for `PollVoteReceived`."""

    message: MessageRef
    custom_id: str
    origin: MessageRef | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandInvoked(InboundEvent):
    """A command the adapter already parsed (Discord's slash commands).

    `path` names the command (("poll", "new")), `args` holds the raw option values by
    parameter name; the framework converts them with the same code as text commands.
    `origin` is what replies answer (for an interaction, the adapter's own reference).
    """

    path: tuple[str, ...]
    args: dict[str, Any] = field(default_factory=dict)
    origin: MessageRef | None = None
