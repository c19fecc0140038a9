"""What the framework expects of a platform adapter, and what it offers one.

An adapter translates at the boundary, in one place, both ways: platform objects become
the core events and refs; core messages become platform calls; library error values
become `TransientSendError` / `PermanentSendError`. It persists its own inbound position
only after `AdapterHost.handle` has returned for the events before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.core.commands import CommandSpec
from bot.core.events import InboundEvent
from bot.core.messages import OutgoingMessage
from bot.core.refs import MessageRef, RoomRef, UserRef


class AdapterHost(Protocol):
    """The framework as an adapter sees it."""

    async def handle(self, event: InboundEvent) -> None:
        """Handle one inbound event completely (commands, plugin handlers) and return."""
        ...

    def commands(self) -> Sequence[CommandSpec]:
        """Every registered command, for platforms that present them natively."""
        ...

    def rooms(self, platform: str) -> Sequence[RoomRef]:
        """The rooms of this platform named anywhere in the configuration."""
        ...

    def t(self, key: str, language: str | None = None, /, **params: object) -> str:
        """Translate; adapters use it for the few texts they write themselves."""
        ...

    def language_for(self, room: RoomRef) -> str:
        """The language of `room` (its association's, or the bot's)."""
        ...

    def connection_restored(self) -> None:
        """The platform answers again after failing: posts waiting out a backoff for it
        are retried now rather than after the backoff (a server's own retry-after, a
        rate limit, is still honoured)."""
        ...

    async def alert(self, key: str, text_key: str, /, **params: object) -> int:
        """Tell organisers, in each room of `bot.organiser_rooms`, the text `text_key`
        translated for the room; each post is delivered with the key `<key>:<room>`,
        so a key already told (by this instance, another or an earlier start) is not
        told again. Without organiser rooms, one log line. Returns the posts queued."""
        ...


class Adapter(Protocol):
    platform: str
    command_prefix: str | None  # None: the platform has native commands only
    message_limit: int  # characters a single post may hold
    # Optional: `inbound_limit`, the characters of inbound text kept (the platform's own
    # limit); longer text is cut there. Without it, `message_limit`.
    # Optional: `idempotent_sends`, True when the platform itself drops a second send
    # with the same token (Matrix: a transaction id on the same device; Discord: a nonce
    # with enforce_nonce). Command replies then skip the durable outbox: their token is
    # derived from the inbound event, so a replay after a crash is harmless.

    async def start(self, host: AdapterHost) -> None:
        """Connect and log in; return once ready to send."""
        ...

    async def run(self) -> None:
        """Receive until stopped or, for the console, until the end of input."""
        ...

    async def stop(self) -> None: ...

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        """Post `message`; `token` is stable across retries (transaction id, nonce)."""
        ...

    async def edit(self, target: MessageRef, message: OutgoingMessage, token: str) -> None: ...

    async def delete(self, target: MessageRef, token: str) -> None: ...

    async def react(self, target: MessageRef, key: str, token: str) -> MessageRef | None: ...

    async def close_poll(
        self, target: MessageRef, message: OutgoingMessage, token: str
    ) -> MessageRef | None:
        """End the poll posted as `target` (Matrix poll end event, Discord poll expiry or
        buttons disabled); `message` carries the results text where the end is a post."""
        ...

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        """Whether the platform itself makes `user` an organiser in `room` (a Discord
        role, a Matrix power level). The configured organiser list is checked by the
        framework."""
        ...

    def health(self) -> dict[str, str]:
        """A few words on the connection, for status commands."""
        ...


class RoomChecker(Protocol):
    """Optional for adapters: say why a room cannot be used (not joined, no permission
    to post or to manage webhooks), or None when it can."""

    async def check_room(self, room: RoomRef) -> str | None: ...
