"""The Discord stand-in: one aiohttp server on 127.0.0.1 (port 0) serving the gateway at
`/gateway` and REST under `/api/v10`, with its world, its recordings, and the knobs tests
turn (injected 429s and errors, gateway events from users, dropped connections)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests import log_watch
from tests.discord.standin import components, payloads, polls, threads
from tests.discord.standin.gateway import Frame, Gateway
from tests.discord.standin.model import (
    Channel,
    Guild,
    Interaction,
    Json,
    Message,
    Snowflakes,
    User,
    Webhook,
    iso,
    new_token,
)
from tests.discord.standin.ratelimits import Injection, RateLimiter, json_response
from tests.discord.standin.validation import ApiError, check_poll
from tests.support import serve_on_loopback

API = "/api/v10"
_MENTION = re.compile(r"<@!?(\d+)>")


@dataclass
class Recorded:
    """One REST request as it came in, and what it got back."""

    method: str
    path: str
    route: str  # the route template, e.g. POST /channels/{channel_id}/messages
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[str] = field(default_factory=list)
    status: int = 0


class StandIn:
    def __init__(self, *, token: str = "stand-in-token") -> None:
        self.token = token
        self.ids = Snowflakes()
        self.bot = User(self.ids.next(), "Samverkan", bot=True)
        self.users: dict[int, User] = {self.bot.id: self.bot}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        # Messages by (channel, nonce), for enforce_nonce: a scan of every message per
        # post made the stand-in's own CPU grow with the run (the benches count it).
        self.by_nonce: dict[tuple[int, str], list[Message]] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.interactions: dict[int, Interaction] = {}
        self.polls: dict[int, polls.PollState] = {}  # by message id
        self.commands: dict[str, list[Json]] = {}  # "global" or guild id -> commands
        self.requests: list[Recorded] = []
        # How long an interaction's token takes followups (Discord: 15 minutes).
        self.followup_window = 15 * 60.0
        # Channels where the bot lacks Manage Webhooks: their webhook routes answer 403.
        self.no_webhooks: set[int] = set()
        self.frames: list[Frame] = []
        self.limiter = RateLimiter()
        self.gateway = Gateway(
            token=token,
            ready_payload=lambda session: payloads.ready(self, session),
            guild_payloads=lambda: payloads.guild_creates(self),
            frames=self.frames,
        )
        # Called with each recorded request once it is answered (benchmarks time on it).
        self.listeners: list[Callable[[Recorded], None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + API

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        from tests.discord.standin.rest import add_routes

        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        app.router.add_get("/gateway", self.gateway.handle)
        add_routes(app, self, API)
        threads.add_thread_routes(app, self, API)
        polls.add_poll_routes(app, self, API)
        self._runner, self.port = await serve_on_loopback(app)

    async def stop(self) -> None:
        await self.gateway.drop_connections(code=1001)
        runner, self._runner = self._runner, None  # a second stop finds nothing
        if runner is not None:
            await runner.cleanup()

    # -- the world ---------------------------------------------------------------------

    def add_guild(self, name: str = "Vänsterpartiet Dalarna") -> Guild:
        guild = Guild(self.ids.next(), name)
        self.guilds[guild.id] = guild
        self.bot.roles[guild.id] = []
        return guild

    def add_role(self, guild: Guild, name: str) -> int:
        role_id = self.ids.next()
        guild.roles[role_id] = name
        return role_id

    def add_channel(self, guild: Guild, name: str) -> Channel:
        channel = Channel(self.ids.next(), guild.id, name)
        self.channels[channel.id] = channel
        return channel

    def add_user(self, name: str, *, roles: dict[int, list[int]] | None = None) -> User:
        user = User(self.ids.next(), name, roles=roles or {})
        self.users[user.id] = user
        return user

    def threads(self, channel_id: int) -> list[Channel]:
        return [c for c in self.channels.values() if c.parent_id == channel_id]  # oldest first

    def channel(self, channel_id: int | str) -> Channel:
        channel = self.channels.get(int(channel_id))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def message(self, channel_id: int | str, message_id: int | str) -> Message:
        msg = self.messages.get(int(message_id))
        if msg is None or msg.deleted or msg.channel_id != int(channel_id):
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def channel_messages(self, channel_id: int) -> list[Message]:
        return sorted(
            (
                m
                for m in self.messages.values()
                if m.channel_id == channel_id and not m.deleted and not m.ephemeral
            ),
            key=lambda m: m.id,
        )

    def create_message(
        self,
        channel: Channel,
        author: User | None,
        body: Json,
        *,
        webhook: Webhook | None = None,
        username: str | None = None,
        ephemeral: bool = False,
        interaction: Interaction | None = None,
        attachments: list[Json] | None = None,
    ) -> Message:
        msg_id = self.ids.next()
        if webhook is not None:
            author_data = {
                "id": str(webhook.id),
                "username": username or webhook.name,
                "discriminator": "0000",
                "avatar": None,
                "bot": True,
            }
        else:
            assert author is not None
            author_data = author.payload()
        data: Json = {
            "id": str(msg_id),
            "channel_id": str(channel.id),
            "guild_id": str(channel.guild_id),
            "author": author_data,
            "content": body.get("content") or "",
            "timestamp": iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": self._mentions(body),
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": body.get("embeds") or [],
            "pinned": False,
            "type": 0,
            "flags": 64 if ephemeral else 0,
            "components": body.get("components") or [],
        }
        if webhook is not None:
            data["webhook_id"] = str(webhook.id)
        if body.get("nonce") is not None:
            data["nonce"] = body["nonce"]
        if author is not None and webhook is None:
            data["member"] = {
                k: v for k, v in author.member(channel.guild_id).items() if k != "user"
            }
        ref = body.get("message_reference")
        if ref:
            data["message_reference"] = {
                "message_id": str(ref["message_id"]),
                "channel_id": str(channel.id),
                "guild_id": str(channel.guild_id),
            }
            target = self.messages.get(int(ref["message_id"]))
            data["referenced_message"] = dict(target.data) if target else None
            data["type"] = 19
        if body.get("poll"):
            author_id = webhook.id if webhook is not None else author.id if author else 0
            data["poll"] = polls.create(self, msg_id, channel.id, author_id, body["poll"])
        if interaction is not None:
            data["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": 2,
                "user": self.users[interaction.user_id].payload(),
                "authorizing_integration_owners": {},
            }
            data["webhook_id"] = str(self.bot.id)
            data["application_id"] = str(self.bot.id)
        msg = Message(
            msg_id,
            channel.id,
            data,
            author.id if author is not None and webhook is None else 0,
            webhook_id=webhook.id if webhook else None,
            nonce=str(body["nonce"]) if body.get("nonce") is not None else None,
            ephemeral=ephemeral,
        )
        self.messages[msg_id] = msg
        if msg.nonce is not None:
            self.by_nonce.setdefault((channel.id, msg.nonce), []).append(msg)
        if not ephemeral:
            threads.counted(self, channel, msg_id, +1)
        return msg

    def _mentions(self, body: Json) -> list[Json]:
        allowed = body.get("allowed_mentions")
        parse_users = allowed is None or "users" in (allowed.get("parse") or [])
        explicit = {int(u) for u in (allowed or {}).get("users") or []}
        found = []
        for match in _MENTION.finditer(body.get("content") or ""):
            uid = int(match[1])
            if uid in self.users and (parse_users or uid in explicit):
                found.append(self.users[uid].payload())
        return found

    # -- what tests inject -------------------------------------------------------------

    async def user_message(
        self,
        channel: Channel,
        author: User,
        content: str,
        *,
        reply_to: int | None = None,
        attachments: list[Json] | None = None,
        dispatch: bool = True,
        poll: Json | None = None,
    ) -> Message:
        log_watch.said(content)
        body: Json = {"content": content}
        if poll is not None:
            check_poll(poll)
            body["poll"] = poll
        if reply_to is not None:
            body["message_reference"] = {"message_id": reply_to}
        msg = self.create_message(channel, author, body, attachments=attachments)
        if dispatch:
            await self.gateway.dispatch("MESSAGE_CREATE", msg.data)
        return msg

    async def user_edit(self, message: Message, content: str) -> None:
        """The author edits `message`: Discord sends the whole message, with its edit time."""
        log_watch.said(content)
        message.data["content"] = content
        message.data["edited_timestamp"] = iso()
        await self.gateway.dispatch("MESSAGE_UPDATE", message.data)

    async def start_thread(
        self, message: Message, user: User, name: str, *, dispatch: bool = True
    ) -> Channel:
        """`user` starts a thread on `message`; `dispatch=False`: one the bot missed."""
        thread = threads.create_thread(self, message, user, name)
        if dispatch:
            await threads.announce(self, thread)
        return thread

    def new_interaction(self, channel: Channel, user: User) -> tuple[Interaction, Json]:
        inter = Interaction(self.ids.next(), new_token(), channel.id, channel.guild_id, user.id)
        self.interactions[inter.id] = inter
        payload: Json = {
            "id": str(inter.id),
            "application_id": str(self.bot.id),
            "token": inter.token,
            "version": 1,
            "guild_id": str(channel.guild_id),
            "channel_id": str(channel.id),
            "channel": channel.payload(),
            "member": {**user.member(channel.guild_id), "permissions": "0"},
            "app_permissions": "0",
            "locale": "sv-SE",
            "guild_locale": "sv-SE",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(channel.guild_id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024**2,
        }
        return inter, payload

    async def slash_command(
        self, channel: Channel, user: User, name: str, options: list[Json] | None = None
    ) -> Interaction:
        inter, payload = self.new_interaction(channel, user)
        payload["type"] = 2
        payload["data"] = {"id": "1", "name": name, "type": 1, "options": options or []}
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return inter

    async def autocomplete(
        self, channel: Channel, user: User, name: str, options: list[Json]
    ) -> Interaction:
        inter, payload = self.new_interaction(channel, user)
        inter.kind = 4
        payload["type"] = 4
        payload["data"] = {"id": "1", "name": name, "type": 1, "options": options}
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return inter

    async def click(self, message: Message, user: User, custom_id: str) -> Interaction:
        """`user` clicks the button `custom_id` of `message` (one the client shows, enabled)."""
        components.find(message, custom_id, kind=2)
        return await self._component(message, user, {"custom_id": custom_id, "component_type": 2})

    async def select(
        self, message: Message, user: User, custom_id: str, values: list[str]
    ) -> Interaction:
        """`user` picks `values` in the select menu `custom_id` of `message`."""
        menu = components.find(message, custom_id, kind=3)
        components.check_choice(menu, values)
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return await self._component(message, user, data)

    async def _component(self, message: Message, user: User, data: Json) -> Interaction:
        channel = self.channels[message.channel_id]
        inter, payload = self.new_interaction(channel, user)
        inter.kind, inter.message_id = 3, message.id
        payload["type"] = 3
        payload["message"] = message.data
        payload["data"] = data
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return inter

    async def poll_vote(
        self, message: Message, user: User, answer_id: int, *, add: bool = True
    ) -> bool:
        """`user` ticks (or unticks) an answer of a native poll; see `polls.vote`."""
        return await polls.vote(self, message, user, answer_id, add=add)

    async def reaction(self, message: Message, user: User, emoji: str, *, add: bool = True) -> None:
        channel = self.channels[message.channel_id]
        data: Json = {
            "user_id": str(user.id),
            "channel_id": str(channel.id),
            "message_id": str(message.id),
            "guild_id": str(channel.guild_id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if add:
            data["member"] = user.member(channel.guild_id)
        await self.gateway.dispatch(
            "MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE", data
        )

    def inject(self, route: str, status: int = 429, **kwargs: Any) -> Injection:
        """Make the next matching request(s) fail; see `Injection`."""
        injection = Injection(route=route, status=status, **kwargs)
        self.limiter.injections.append(injection)
        return injection

    # -- looking at what happened -----------------------------------------------------

    def recorded(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if r.route == route]

    async def wait_for(
        self, condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    # -- gateway payloads -------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        from tests.discord.standin.rest import record_and_run

        if request.path == "/gateway":
            response: web.StreamResponse = await handler(request)
            return response
        return await record_and_run(self, request, handler)


__all__ = ["API", "Recorded", "StandIn", "json_response"]
