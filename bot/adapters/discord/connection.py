"""The gateway connection: discord.py's client with our intents, URLs and hooks.

discord.py reads its REST base from `discord.http.Route.BASE` and its gateway from
`DiscordWebSocket.DEFAULT_GATEWAY` (a plain Client never asks `/gateway/bot`), both
process-wide: `configure_urls` sets them from the settings. RESUME and reconnects with
backoff are discord.py's; what it cannot know is the identify budget across restarts
and instances (1000 a day): every IDENTIFY goes through our hook (`identify.py`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import discord
import yarl
from discord.gateway import DiscordWebSocket, KeepAliveHandler

log = logging.getLogger(__name__)

INTENTS_HELP: Final = (
    "Discord refused the gateway connection (close code 4014): the bot asks for the "
    "privileged MESSAGE CONTENT intent, which is not enabled for this application. "
    "Enable it in the Discord Developer Portal: Applications -> your bot -> Bot -> "
    "Privileged Gateway Intents -> Message Content Intent, then restart the bot."
)


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    wanted.guild_reactions = True
    wanted.guild_polls = True
    return wanted


def configure_urls(api_base_url: str, gateway_url: str) -> None:
    """Point discord.py at a REST base and gateway (a proxy, or the test stand-in)."""
    discord.http.Route.BASE = api_base_url.rstrip("/")
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class Sink(Protocol):
    """Where the client hands what it receives (the adapter's inbound side)."""

    async def new_session(self) -> None: ...
    async def ready(self) -> None: ...

    async def resumed(self) -> None: ...
    async def thread_create(self, thread: discord.Thread) -> None: ...
    async def message(self, message: discord.Message) -> None: ...
    async def message_edit(self, payload: discord.RawMessageUpdateEvent) -> None: ...
    async def message_delete(self, payload: discord.RawMessageDeleteEvent) -> None: ...
    async def reaction(self, payload: discord.RawReactionActionEvent, added: bool) -> None: ...
    async def poll_vote(self, payload: discord.RawPollVoteActionEvent, added: bool) -> None: ...
    async def interaction(self, interaction: discord.Interaction[Any]) -> None: ...


class GatewayClient(discord.Client):
    """discord.py's client, forwarding what we use to the adapter's sink."""

    def __init__(
        self,
        sink: Sink,
        *,
        identify_hook: Callable[[bool], Awaitable[None]],
        guild_ready_timeout: float = 2.0,
        max_ratelimit_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            max_ratelimit_timeout=max_ratelimit_timeout,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
        )
        self._sink = sink
        self._identify_hook = identify_hook

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # Replaces discord.py's fixed 5 s sleep before every re-identify.
        await self._identify_hook(initial)

    async def close_unidentified(self) -> None:
        """Close the gateway socket whose IDENTIFY the hook refused. discord.py starts a
        socket's heartbeat (a thread) at HELLO, before IDENTIFY, and keeps the socket
        only once IDENTIFY is sent: refused, the socket is left open and unreferenced,
        its thread heartbeating until the process ends."""
        for thread in threading.enumerate():
            ws = getattr(thread, "ws", None)
            if (
                isinstance(thread, KeepAliveHandler)
                and ws is not None
                and ws is not self.ws
                and getattr(ws, "_connection", None) is self._connection
            ):
                await ws.close(code=1000)

    async def on_connect(self) -> None:
        # Dispatched by discord.py at READY only, a new session (not a resume): live
        # messages that follow must wait for the catch-up of what the old session
        # missed. (Not `on_socket_event_type`: that costs a task for every event.)
        await self._sink.new_session()

    async def on_ready(self) -> None:
        await self._sink.ready()

    async def on_resumed(self) -> None:
        # The gateway is back after a drop: what waits for Discord may go now.
        await self._sink.resumed()

    async def on_thread_create(self, thread: discord.Thread) -> None:
        await self._sink.thread_create(thread)

    async def on_message(self, message: discord.Message) -> None:
        await self._sink.message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self._sink.message_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self._sink.message_delete(payload)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._sink.reaction(payload, True)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._sink.reaction(payload, False)

    async def on_raw_poll_vote_add(self, payload: discord.RawPollVoteActionEvent) -> None:
        await self._sink.poll_vote(payload, True)

    async def on_raw_poll_vote_remove(self, payload: discord.RawPollVoteActionEvent) -> None:
        await self._sink.poll_vote(payload, False)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        await self._sink.interaction(interaction)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        # discord.py calls this from inside its `except`: the traceback is at hand.
        log.exception("handling the Discord event %s failed", event_method)  # noqa: LOG004


async def sleep_logged(delay: float, why: str) -> None:
    if delay > 0:
        log.warning("waiting %.0fs before connecting to Discord: %s", delay, why)
        await asyncio.sleep(delay)
