"""The Discord adapter: lifecycle, slash-command sync, health.

The parts live beside it: `connection` (client, URLs), `identify` (the IDENTIFY
guard), `inbound` and
`receiver` (events in, per-channel order, catch-up), `outbound` and `webhooks` (posts),
`interactions` (the three-second rule, followups), `polls`, `commands`, `errors`,
`rooms` (organisers' roles, whether a room can be used).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Final

import aiohttp
import discord

from bot.adapters.discord.commands import build_commands, commands_hash
from bot.adapters.discord.connection import (
    INTENTS_HELP,
    GatewayClient,
    configure_urls,
    sleep_logged,
)
from bot.adapters.discord.errors import AuthBrake, boundary
from bot.adapters.discord.identify import IdentifyGuard, IdentifyLimitReached
from bot.adapters.discord.inbound import Inbound
from bot.adapters.discord.interactions import Interactions
from bot.adapters.discord.outbound import MESSAGE_LIMIT, Outbound
from bot.adapters.discord.parts import Parts
from bot.adapters.discord.polls import PollBook
from bot.adapters.discord.receiver import Receiver, RoleCache
from bot.adapters.discord.rooms import Rooms
from bot.adapters.discord.threads import Threads
from bot.adapters.discord.voters import PollSync
from bot.adapters.discord.webhooks import Webhooks
from bot.core.clock import Clock
from bot.core.errors import StartRefused
from bot.core.i18n import Translator
from bot.core.messages import OutgoingMessage
from bot.core.platform import AdapterHost
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.settings import DiscordSettings
from bot.storage.health import StorageUnavailable
from bot.storage.logins import GatewayLogins
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

_LOCALES: Final = Path(__file__).parent / "locales"


class DiscordAdapter:
    platform = "discord"
    command_prefix: str | None = None  # slash commands only
    message_limit = MESSAGE_LIMIT
    inbound_limit = 4000  # what Discord lets members with Nitro write

    def __init__(
        self,
        settings: DiscordSettings,
        state: AdapterState,
        clock: Clock,
        *,
        bot_name: str = "Samverkan",
        associations: dict[str, str] | None = None,
        language: str = "sv",
        ready_timeout: float = 30.0,
        guild_ready_timeout: float = 2.0,
        identify_delay: float = 5.0,
        defer_after: float = 2.0,
        max_ratelimit_timeout: float = 60.0,
        identify_backoff: float | None = None,
    ) -> None:
        self.settings = settings
        self._state = state
        self._clock = clock
        self._language = language
        self._associations = associations or {}
        self.ready_timeout = ready_timeout
        self.guild_ready_timeout = guild_ready_timeout
        self.identify_delay = identify_delay
        self.max_ratelimit_timeout = max_ratelimit_timeout
        self._own_t = Translator(language)
        self._own_t.load_dir(_LOCALES)
        self.brake = AuthBrake()
        self.guard = IdentifyGuard(
            GatewayLogins.of(state),
            clock,
            warn=settings.identify_warn,
            limit=settings.identify_limit,
            backoff=(
                settings.identify_backoff.total_seconds()
                if identify_backoff is None
                else identify_backoff
            ),
        )
        # Set when the guard refused a login: the adapter is down until a restart.
        self.limited: IdentifyLimitReached | None = None
        self.webhooks = Webhooks(state, self.brake, bot_name)
        self.interactions = Interactions(self.brake, defer_after=defer_after)
        self.polls = PollBook(state)
        self.roles = RoleCache()
        self.threads = Threads(self.brake, lambda: self._t("discord.thread", self._language))
        self.inbound = Inbound(state, clock, is_own=self._is_own_message, fetch_after=self._fetch)
        self.outbound = Outbound(
            self.brake,
            self.webhooks,
            self.interactions,
            self.polls,
            self.threads,
            Parts(state),
            native_polls=settings.native_polls,
        )
        self.pollsync = PollSync(self.polls, self.inbound, self.brake, lambda: self.client)
        self.outbound.poll_ended = lambda cid, mid, poll: self.pollsync.snapshot(
            cid, mid, poll, final=True
        )
        self.client: GatewayClient | None = None
        self._host: AdapterHost | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._input_done = asyncio.Event()  # stop_receiving: `run` returns
        self.problem: str | None = None
        self.refused: StartRefused | None = None
        self.commands_synced = 0
        self.rooms = Rooms(
            set(settings.organiser_roles),
            self.brake,
            self.roles,
            self.webhooks,
            client=lambda: self.client,
            offline=lambda: self.problem or self._t("discord.room_offline", self._language),
            translate=self._say,
        )

    # -- lifecycle ----------------------------------------------------------------------

    def _t(self, key: str, language: str | None = None, /, **params: object) -> str:
        if self._host is not None and not key.startswith("discord."):
            return self._host.t(key, language, **params)
        return self._own_t.t(key, language, **params)

    def _say(self, key: str, /, **params: object) -> str:
        """`key` in the adapter's own language (the rooms' checks)."""
        return self._t(key, self._language, **params)

    async def start(self, host: AdapterHost) -> None:
        self._host = host
        self.inbound.host = host
        configure_urls(self.settings.api_base_url, self.settings.gateway_url)
        await self.webhooks.start()
        configured = [int(r.id) for r in host.rooms(self.platform) if r.id.isdigit()]
        await self.inbound.load(configured)
        receiver = Receiver(
            self.inbound,
            self.interactions,
            self.polls,
            self.roles,
            self.brake,
            specs=host.commands,
            associations=self._associations,
            translate=lambda key: self._t(key, self._language),
            is_own=self._is_own,
            connected=host.connection_restored,
            channel_of=lambda cid: self.client.get_channel(cid) if self.client else None,
            threads=lambda: (
                [t for g in self.client.guilds for t in g.threads] if self.client else []
            ),
            session_ready=self.pollsync.reread_open,
        )
        self.outbound.select_placeholder = lambda room: self._t(
            "discord.select_placeholder", host.language_for(room)
        )
        self.receiver = receiver
        self.client = GatewayClient(
            receiver,
            identify_hook=self._before_identify,
            guild_ready_timeout=self.guild_ready_timeout,
            max_ratelimit_timeout=self.max_ratelimit_timeout,
        )
        self.outbound.client = self.client
        self._task = asyncio.create_task(self._supervise(), name="discord-gateway")
        ready = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=self.ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        ready.cancel()
        if self.refused is not None:
            raise self.refused
        if not done:
            log.warning(
                "Discord is not ready after %.0fs; going on, it keeps trying", self.ready_timeout
            )

    async def _before_identify(self, initial: bool) -> None:
        # Every IDENTIFY, the first of a start or a re-identify, passes here (a RESUME
        # does not); raising stops discord.py before it sends one.
        try:
            logins = await self.guard.take()
        except IdentifyLimitReached as exc:
            self._limit_reached(exc)
            raise
        if self._host is not None:
            await self.guard.warn_once(logins, self._host)
        if not initial:
            await asyncio.sleep(self.identify_delay)

    def _limit_reached(self, refusal: IdentifyLimitReached) -> None:
        if self.limited is None:
            log.error("%s", refusal)  # the one line, no traceback
        self.limited = refusal
        self.problem = str(refusal)

    async def _supervise(self) -> None:
        assert self.client is not None
        client = self.client
        try:
            blocked = await self.guard.blocked()
        except StorageUnavailable as exc:
            blocked = None
            log.warning("cannot read the Discord gateway logins of the day: %s", exc)
        if blocked is not None:
            # Still at the limit from before this start: not even a login over REST.
            self._limit_reached(blocked)
            return
        await sleep_logged(await self.guard.startup_delay(), "many identifies recently")
        backoff = 5.0
        logged_in = False
        while not self._stopping:
            try:
                if not logged_in:
                    await client.login(self.settings.token.get_secret_value())
                    logged_in = True
                    await self.sync_commands()
                    self._ready_when_connected()
                await client.connect(reconnect=True)
                return
            except IdentifyLimitReached:
                # Said by the hook; discord.py would otherwise reconnect by itself.
                await client.close_unidentified()
                await client.close()
                return
            except discord.PrivilegedIntentsRequired:
                self.problem = "the Message Content intent is not enabled"
                log.error(INTENTS_HELP)  # one clear line, no traceback
                return
            except discord.LoginFailure:
                self.problem = "Discord refused the token"
                # Said once, as the bot's last line: it stops with exit code 2.
                self.refused = StartRefused("Discord refused the bot token: check discord.token")
                return
            except discord.ConnectionClosed as exc:
                self.problem = f"gateway closed with code {exc.code}"
                log.error(
                    "Discord closed the gateway (code %s, %s); not reconnecting",
                    exc.code,
                    exc.reason,
                )
                return
            except (
                OSError,
                aiohttp.ClientError,
                discord.HTTPException,
                TimeoutError,
                StorageUnavailable,  # the logins could not be counted: not logging in
            ) as exc:
                if self._stopping or client.is_closed():
                    return
                log.warning("cannot reach Discord (%s); trying again in %.0fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(600.0, backoff * 2)

    def _ready_when_connected(self) -> None:
        async def wait() -> None:
            assert self.client is not None
            await self.client.wait_until_ready()
            self._ready.set()

        self._ready_task = asyncio.create_task(wait(), name="discord-ready")

    async def sync_commands(self) -> None:
        """Register the slash commands where they changed since the last sync."""
        assert self._host is not None and self.client is not None
        app_id = self.client.application_id
        if app_id is None:
            return
        payload = build_commands(self._host.commands(), self._t)
        digest = commands_hash(payload)
        scopes: list[int | None] = list(self.settings.guild_ids) or [None]
        for guild_id in scopes:
            key = f"commands:{guild_id or 'global'}"
            if await self._state.get(key) == digest:
                continue
            try:
                async with boundary(self.brake):
                    if guild_id is None:
                        await self.client.http.bulk_upsert_global_commands(app_id, payload)
                    else:
                        await self.client.http.bulk_upsert_guild_commands(app_id, guild_id, payload)
            except Exception as exc:
                log.error(
                    "could not register slash commands in %s: %s", guild_id or "all guilds", exc
                )
                continue
            await self._state.set(key, digest)
            self.commands_synced += 1
            log.info("registered %d slash commands in %s", len(payload), guild_id or "all guilds")

    async def run(self) -> None:
        if self._task is not None:
            done = asyncio.create_task(self._input_done.wait())
            either: set[asyncio.Future[Any]] = {asyncio.shield(self._task), done}
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
        if self.limited is not None:
            # Down, not gone: the rest of the bot goes on until it is stopped.
            await self._input_done.wait()
        if self.refused is not None:
            raise self.refused

    async def stop_receiving(self) -> None:
        """Finish what was received (the message in hand whatever happens, the queue as
        time allows) and take no new messages: those are read from the channels'
        history at the next start. The connection stays, for posts in flight."""
        await self.inbound.finish(timeout=5.0)
        self._input_done.set()

    async def stop(self) -> None:
        self._stopping = True
        self._input_done.set()
        await self.inbound.finish(timeout=5.0)
        if self.client is not None:
            await self.client.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.interactions.stop()
        await self.pollsync.stop()
        await self.inbound.stop()
        await self.webhooks.close()

    # -- own messages -----------------------------------------------------------------

    def _is_own(self, author_id: int | None, webhook_id: int | None) -> bool:
        client = self.client
        me = client.user.id if client is not None and client.user is not None else None
        app = client.application_id if client is not None else None
        if author_id is not None and author_id == me:
            return True
        return webhook_id is not None and (webhook_id in self.webhooks.own_ids or webhook_id == app)

    def _is_own_message(self, message: discord.Message) -> bool:
        return self._is_own(message.author.id, message.webhook_id)

    async def _fetch(self, cid: int, after: int, limit: int) -> list[discord.Message]:
        assert self.client is not None
        found = self.client.get_channel(cid)
        channel: discord.abc.Messageable = (
            found
            if isinstance(found, discord.abc.Messageable)
            else self.client.get_partial_messageable(cid)
        )
        async with boundary(self.brake):
            return [
                m
                async for m in channel.history(
                    limit=limit, after=discord.Object(id=after), oldest_first=True
                )
            ]

    # -- the Adapter protocol ---------------------------------------------------------

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        return await self.outbound.send(room, message, token)

    async def edit(self, target: MessageRef, message: OutgoingMessage, token: str) -> None:
        await self.outbound.edit(target, message, token)

    async def delete(self, target: MessageRef, token: str) -> None:
        await self.outbound.delete(target, token)

    async def react(self, target: MessageRef, key: str, token: str) -> MessageRef | None:
        return await self.outbound.react(target, key, token)

    async def close_poll(
        self, target: MessageRef, message: OutgoingMessage, token: str
    ) -> MessageRef | None:
        return await self.outbound.close_poll(target, message, token)

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        return await self.rooms.is_organiser(user, room)

    async def check_room(self, room: RoomRef) -> str | None:
        return await self.rooms.check_room(room)

    def connected(self) -> bool:
        """Ready, and the gateway's socket is open (not between a drop and a resume)."""
        client = self.client
        if client is None or not client.is_ready() or client.is_closed():
            return False
        return client.ws is not None and client.ws.open

    def health(self) -> dict[str, str]:
        client = self.client
        connected = client is not None and client.is_ready() and not client.is_closed()
        out = {
            "connected": "yes" if connected else "no",
            "handled": str(self.inbound.handled),
            "sent": str(self.outbound.sent + self.webhooks.sent),
        }
        if client is not None and connected:
            out["latency_ms"] = f"{client.latency * 1000:.0f}"
        if self.problem:
            out["problem"] = self.problem
        return out
