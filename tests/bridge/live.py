"""The bridge against real peers: the test Synapse, the Discord stand-in and a console,
all in one App running the bridge.

Shared by the functional tests (test_bridge_live.py) and the fault tests: keep the
names stable. `BridgeEnv` is the world (Matrix users and rooms, the Discord guild, a
console, a small CDN for Discord attachments); `running_app(env)` runs the whole App
on it until the block ends and can be entered again (a restart on the same database).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from bot.adapters.console import ConsoleAdapter
from bot.adapters.discord import DiscordAdapter
from bot.adapters.matrix import MatrixAdapter
from bot.app import App
from bot.plugin import Plugin
from bot.settings import RootSettings
from plugins.bridge import BridgePlugin
from plugins.help import HelpPlugin
from tests import log_watch
from tests.discord.botrun import World
from tests.discord.standin import StandIn
from tests.discord.standin.model import Channel
from tests.factories import discord_factory, matrix_factory
from tests.matrix.synapse import Account, Synapse
from tests.matrix.users import User
from tests.support import serve_on_loopback, settings_from

PICKLE_KEY = "a-bridge-test-pickle-key"
BRIDGE_ID = "samverkan"


def edit_of(target: str, text: str) -> dict[str, Any]:
    """A Matrix edit of event `target` to `text`, as clients send it."""
    return {
        "msgtype": "m.text",
        "body": "* " + text,
        "m.new_content": {"msgtype": "m.text", "body": text},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }


async def poll_until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Wait for `condition()` to be truthy (and return it); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'a condition'}")
        await asyncio.sleep(0.02)


# -- a CDN for Discord attachments ------------------------------------------------------


class Cdn:
    """What cdn.discordapp.com is to Discord: files the attachments' URLs point at."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.fetched: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/attachments/{name}", self._serve)
        app.router.add_get("/emojis/{name}", self._serve)  # custom emoji, by id
        self._runner, self.port = await serve_on_loopback(app)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None  # a second stop finds nothing
        if runner is not None:
            await runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        found = self.files.get(name)
        if found is None:
            return web.Response(status=404)
        self.fetched.append(name)
        return web.Response(body=found[0], content_type=found[1])

    @property
    def base(self) -> str:
        """What stands for https://cdn.discordapp.com (discord.py's `Asset.BASE`)."""
        return f"http://127.0.0.1:{self.port}"

    def emoji(self, emoji_id: int, data: bytes) -> None:
        self.files[f"{emoji_id}.png"] = (data, "image/png")

    def attachment(self, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Store a file and give the attachment object a Discord message carries."""
        self.files[name] = (data, content_type)
        url = f"http://127.0.0.1:{self.port}/attachments/{name}"
        return {
            "id": str(abs(hash(name)) % 10**17),
            "filename": name,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }


# -- a console whose input and output the test holds ----------------------------------


class ConsoleOutput(io.StringIO):
    """The console's stdout, kept as lines."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            return super().write(s)

    def lines(self) -> list[str]:
        with self._lock:
            return self.getvalue().splitlines()


@dataclass
class ConsoleIO:
    """One run's console: lines written go to the adapter's stdin (a pipe)."""

    output: ConsoleOutput
    _write_fd: int
    stdin: io.TextIOWrapper

    @classmethod
    def open(cls, output: ConsoleOutput) -> ConsoleIO:
        read_fd, write_fd = os.pipe()
        return cls(output, write_fd, io.TextIOWrapper(os.fdopen(read_fd, "rb"), encoding="utf-8"))

    def say(self, room: str, user: str, text: str) -> None:
        log_watch.said(text)
        os.write(self._write_fd, f"#{room} {user}: {text}\n".encode())

    def close(self) -> None:
        # The reader thread sees the end of input and finishes.
        with contextlib.suppress(OSError):
            os.close(self._write_fd)


# -- the world -------------------------------------------------------------------------


@dataclass
class BridgeEnv:
    synapse: Synapse
    bot: Account  # the bot's Matrix account
    anna: User  # a Matrix member (creator of both Matrix rooms: an organiser there)
    falun: str  # Matrix room of association Falun
    ludvika: str  # Matrix room of association Ludvika
    standin: StandIn
    world: World
    mora: Channel  # Discord channel of association Mora
    cdn: Cdn
    tmp: Path
    console_room: str = "borlange"  # console room of association Borlänge
    extra: str = ""  # more TOML (another bridge, say)
    output: ConsoleOutput = field(default_factory=ConsoleOutput)
    runs: int = 0

    @property
    def bridge_rooms(self) -> list[str]:
        return [
            f"matrix:{self.falun}",
            f"matrix:{self.ludvika}",
            f"discord:{self.mora.id}",
            f"console:{self.console_room}",
        ]

    def config_text(self) -> str:
        s = self.standin
        rooms = ", ".join(f'"{r}"' for r in self.bridge_rooms)
        return f"""
[bot]
language = "sv"
database = "{self.tmp / "bot.db"}"
organisers = ["console:anna"]

[console]
enabled = true

[matrix]
homeserver = "{self.synapse.url}"
user_id = "{self.bot.user_id}"
password = "{self.bot.password}"
store_path = "{self.tmp / "matrix-store"}"
pickle_key = "{PICKLE_KEY}"

[discord]
token = "{s.token}"
guild_ids = [{self.world.guild_id}]
organiser_roles = [{self.world.organiser_role}]
api_base_url = "{s.api_url}"
gateway_url = "{s.gateway_url}"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["matrix:{self.falun}"]

[[associations]]
id = "ludvika"
name = "Ludvika"
rooms = ["matrix:{self.ludvika}"]

[[associations]]
id = "mora"
name = "Mora"
rooms = ["discord:{self.mora.id}"]

[[associations]]
id = "borlange"
name = "Borlänge"
rooms = ["console:{self.console_room}"]

[[bridges]]
id = "{BRIDGE_ID}"
rooms = [{rooms}]
{self.extra}
"""

    def settings(self) -> RootSettings:
        return settings_from(self.tmp, self.config_text(), PLUGINS)

    # -- what the peers saw ----------------------------------------------------------

    def matrix_from_bot(
        self, room_id: str, event_type: str = "m.room.message"
    ) -> list[dict[str, Any]]:
        """Events the bot posted in `room_id`, as Anna's client received them."""
        bot = self.bot.user_id
        return [
            src
            for room, src in self.anna.events
            if room == room_id and src.get("sender") == bot and src.get("type") == event_type
        ]

    def webhook_posts(self) -> list[Any]:
        """Webhook executions the stand-in answered with success, in order."""
        return [
            r
            for r in self.standin.recorded("POST /webhooks/{webhook_id}/{webhook_token}")
            if 200 <= r.status < 300
        ]

    def discord_copies(self) -> list[Any]:
        """Messages the bot's webhook posted in Mora, in channel order."""
        return [m for m in self.standin.channel_messages(self.mora.id) if m.webhook_id]

    def console_posts(self) -> list[str]:
        return [line for line in self.output.lines() if line.startswith(f"[#{self.console_room}]")]


class ReadyFlag(Plugin):
    """The last plugin: its `on_ready` runs after every other plugin's (the bridge's
    check of its rooms included)."""

    name = "readyflag"
    ready: ClassVar[asyncio.Event | None] = None

    async def on_ready(self) -> None:
        if ReadyFlag.ready is not None:
            ReadyFlag.ready.set()


PLUGINS: list[type[Plugin]] = [HelpPlugin, BridgePlugin, ReadyFlag]


@dataclass
class Live:
    """One run of the App on a BridgeEnv."""

    app: App
    matrix: MatrixAdapter
    discord: DiscordAdapter
    console: ConsoleAdapter
    io: ConsoleIO
    task: asyncio.Task[None]
    watcher: User
    mark_room: str

    def bridge(self) -> BridgePlugin:
        found = next(p for p in self.app.plugins if isinstance(p, BridgePlugin))
        return found

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is left to deliver and Anna's client has seen all of it
        (the homeserver accepting a post is not her sync returning it)."""
        assert await self.app.delivery.wait_idle(timeout), "deliveries still pending"
        await self.watcher.caught_up(self.mark_room)


@contextlib.asynccontextmanager
async def running_app(
    env: BridgeEnv, *, plugins: Sequence[type[Plugin]] = PLUGINS, **discord_options: Any
) -> AsyncIterator[Live]:
    """The whole App with the bridge on Matrix, Discord (short timings) and the console,
    until the block ends; adapter state lives in the App's database file."""
    settings = env.settings()
    env.runs += 1
    console_io = ConsoleIO.open(env.output)
    matrix: list[MatrixAdapter] = []
    discord: list[DiscordAdapter] = []
    console = ConsoleAdapter(settings.bot.name, stdin=console_io.stdin, stdout=env.output)
    ReadyFlag.ready = asyncio.Event()
    app = App(
        settings,
        list(plugins),
        adapter_factories={
            "matrix": matrix_factory(settings, matrix),
            "discord": discord_factory(settings, discord, **discord_options),
            "console": lambda state, clock: console,
        },
        delivery_backoff=0.1,
    )
    task = asyncio.create_task(app.run())
    ready = asyncio.create_task(ReadyFlag.ready.wait())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            raise AssertionError("the app stopped before it was ready")
        if ready not in done:
            raise AssertionError("the app was not ready in time")
        yield Live(app, matrix[0], discord[0], console, console_io, task, env.anna, env.falun)
    finally:
        ready.cancel()
        app.request_stop()
        try:
            await asyncio.wait_for(task, 40)
        finally:
            console_io.close()


async def make_env(
    synapse: Synapse,
    make_user: Callable[..., Any],
    standin: StandIn,
    world: World,
    cdn: Cdn,
    tmp: Path,
) -> BridgeEnv:
    """Two Matrix rooms made by Anna with the bot invited, Discord's Mora channel."""
    bot = synapse.register("bridgebot")
    anna: User = await make_user("anna")
    await anna.client.set_displayname("Anna")
    falun = await anna.create_room(invite=[bot.user_id])
    ludvika = await anna.create_room(invite=[bot.user_id])
    mora = world.channels[1]
    return BridgeEnv(synapse, bot, anna, falun, ludvika, standin, world, mora, cdn, tmp)


__all__ = [
    "BRIDGE_ID",
    "PLUGINS",
    "BridgeEnv",
    "Cdn",
    "ConsoleIO",
    "ConsoleOutput",
    "Live",
    "ReadyFlag",
    "make_env",
    "poll_until",
    "running_app",
]
