"""Running the whole App with the Discord adapter against the stand-in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bot.adapters.discord import DiscordAdapter
from bot.app import App
from bot.commanding import CommandCall
from bot.core.clock import Clock
from bot.core.commands import Flag, Kind, Param
from bot.core.events import InboundEvent, MessageReceived
from bot.core.messages import OutgoingMessage
from bot.core.permissions import Level
from bot.plugin import Plugin, command, on
from bot.settings import RootSettings
from bot.storage.state import AdapterState
from plugins.help import HelpPlugin
from tests.discord.standin import StandIn
from tests.discord.standin.model import Channel, User
from tests.support import settings_from

LOCALES = Path(__file__).parent / "probe_locales"


class Probe(Plugin):
    """A small plugin for the tests: records events, answers a few commands."""

    name = "probe"
    locales = str(LOCALES)
    events: ClassVar[list[InboundEvent]] = []

    @on(InboundEvent)
    async def record(self, event: InboundEvent) -> None:
        Probe.events.append(event)
        if isinstance(event, MessageReceived) and event.text.startswith("ping"):
            reply = OutgoingMessage(text="pong " + event.text[4:].strip(), reply_to=event.ref)
            await self.ctx.delivery.send(f"pong:{event.event_id}", event.room, reply)

    @command(
        "echo",
        sv="eko",
        help="probe.echo",
        params=(Param("text", sv_name="text", variadic=True),),
        flags=(Flag("loud", sv_name="högt"),),
    )
    async def echo(self, call: CommandCall) -> None:
        text = " ".join(call.args["text"])
        await call.reply(text.upper() if call.args["loud"] else text)

    @command(
        "poll new",
        sv="omröstning ny",
        help="probe.poll_new",
        params=(Param("question", sv_name="fråga"),),
        flags=(
            Flag("in", Kind.ASSOCIATIONS, sv_name="i"),
            Flag("for", Kind.DURATION, sv_name="för"),
        ),
        level=Level.ORGANISER,
    )
    async def poll_new(self, call: CommandCall) -> None:
        await call.reply(f"poll: {call.args['question']} in {call.args['in']}")

    @command("long", sv="lång", help="probe.long")
    async def long(self, call: CommandCall) -> None:
        paragraph = ("Ett stycke text om regionens politik. " * 20).strip()
        await call.reply("\n\n".join([paragraph] * 4)[:2500])

    @command("slow", sv="långsam", help="probe.slow", params=(Param("n", Kind.INTEGER),))
    async def slow(self, call: CommandCall) -> None:
        await asyncio.sleep(0.3)
        await call.reply(f"done {call.args['n']}", ephemeral=True)


def messages_received() -> list[MessageReceived]:
    return [e for e in Probe.events if isinstance(e, MessageReceived)]


@dataclass
class World:
    standin: StandIn
    channels: list[Channel]
    organiser_role: int
    anna: User  # an organiser by role
    bertil: User  # a member
    guild_id: int


def build_world(standin: StandIn) -> World:
    guild = standin.add_guild()
    role = standin.add_role(guild, "Organisatör")
    channels = [standin.add_channel(guild, name) for name in ("falun", "mora", "allmänt")]
    anna = standin.add_user("anna", roles={guild.id: [role]})
    bertil = standin.add_user("bertil")
    return World(standin, channels, role, anna, bertil, guild.id)


def settings_for(world: World, tmp: Path) -> RootSettings:
    return settings_from(tmp, config_text(world, tmp), [HelpPlugin, Probe])


def config_text(world: World, tmp: Path) -> str:
    """A configuration with the stand-in's Discord and two associations, Falun and Mora."""
    s = world.standin
    falun, mora, _ = world.channels
    return f"""
    [bot]
    language = "sv"
    database = "{tmp / "bot.db"}"

    [discord]
    token = "{s.token}"
    guild_ids = [{world.guild_id}]
    organiser_roles = [{world.organiser_role}]
    api_base_url = "{s.api_url}"
    gateway_url = "{s.gateway_url}"

    [[associations]]
    id = "falun"
    name = "Falun"
    rooms = ["discord:{falun.id}"]

    [[associations]]
    id = "mora"
    name = "Mora"
    rooms = ["discord:{mora.id}"]
    """


@dataclass
class Running:
    app: App
    adapter: DiscordAdapter
    options: dict[str, Any] = field(default_factory=dict)


FAST: dict[str, Any] = {
    "ready_timeout": 10.0,
    "guild_ready_timeout": 0.05,
    "identify_delay": 0.05,
}


def discord_factory(
    settings: RootSettings,
    built: list[DiscordAdapter],
    *,
    clock: Clock | None = None,
    **options: Any,
) -> Callable[[AdapterState, Clock], DiscordAdapter]:
    """The App's Discord adapter, built on its own database (one connection, as
    `samverkan run` has) with short timings, kept in `built`. `clock`: the platform's
    own, where the App runs on a test's fake one."""
    discord_settings = settings.discord
    assert discord_settings is not None

    def build(state: AdapterState, app_clock: Clock) -> DiscordAdapter:
        adapter = DiscordAdapter(
            discord_settings,
            state,
            clock or app_clock,
            associations={a.id: a.name for a in settings.associations},
            **{**FAST, **options},
        )
        built.append(adapter)
        return adapter

    return build


@contextlib.asynccontextmanager
async def running_bot(
    settings: RootSettings,
    *,
    expect_ready: bool = True,
    plugins: Sequence[type[Plugin]] = (),
    own_process: bool = False,
    **options: Any,
) -> AsyncIterator[Running]:
    """The whole App with help, the probe and `plugins`, the Discord adapter built with
    short timings on the App's own database (one connection, as `samverkan run` has)."""
    built: list[DiscordAdapter] = []
    app = App(
        settings,
        [HelpPlugin, Probe, *plugins],
        adapter_factories={"discord": discord_factory(settings, built, **options)},
        delivery_backoff=0.1,
        own_process=own_process,
    )
    task = asyncio.create_task(app.run())
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while expect_ready and not (built and built[0]._ready.is_set()):
            if task.done():
                task.result()
                raise AssertionError("the app stopped before Discord was ready")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("Discord adapter not ready")
            await asyncio.sleep(0.01)
        while not built:  # not waiting for ready: until the App has built it
            if task.done():
                task.result()
                raise AssertionError("the app stopped before building the Discord adapter")
            await asyncio.sleep(0.01)
        adapter = built[0]
        yield Running(app, adapter, options)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 20)
