"""The polls against real peers: the test Synapse, the Discord stand-in and a console, in
one App (or in a bot process that can be killed), with an injected clock where the
deadline matters.

The world: Matrix rooms of Falun and Ludvika (Anna's; she organises), Discord channels
of Mora and Rättvik, the console room of Borlänge. Votes are cast as members cast them
(Element's unstable poll responses, the stable form, Discord's native votes, buttons, a
select menu, `vote` by text) and written into a `Ledger` as they are cast: the recount
the bot's results are compared with is made from it, without the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.adapters.console import ConsoleAdapter
from bot.adapters.discord import DiscordAdapter
from bot.adapters.matrix import MatrixAdapter
from bot.app import App
from bot.core.clock import FakeClock
from bot.scheduling import ManualWaker
from bot.settings import RootSettings
from plugins.help import HelpPlugin
from plugins.polls import PollsPlugin
from tests.bridge.live import ConsoleIO, ConsoleOutput
from tests.discord.botrun import World
from tests.discord.standin import StandIn
from tests.discord.standin.model import Channel, Message
from tests.factories import both_ready, discord_factory, matrix_factory
from tests.matrix.synapse import Account, Synapse
from tests.matrix.users import MakeUser, User
from tests.support import settings_from

PICKLE_KEY = "a-polls-live-test-pickle-key"
UNSTABLE = "org.matrix.msc3381.poll.response"
STABLE = "m.poll.response"
START = "org.matrix.msc3381.poll.start"
END = "org.matrix.msc3381.poll.end"
CONSOLE_ROOM = "borlange"
_RESULT_LINE = re.compile(r"^(\d+)\. .*: (\d+) \(", re.MULTILINE)
_TURNOUT = re.compile(r"Antal som röstat: (\d+)\.")
_CREATED = re.compile(r"Omröstning (\d+) är skapad")


async def until(condition: Any, timeout: float = 20.0, what: str = "a condition") -> Any:
    """Wait for `condition()` (a value or an awaitable's) to be truthy and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Ledger:
    """Every vote the test cast, per person, in order: the independent recount."""

    cast: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    def vote(self, person: str, association: str, answers: Sequence[str]) -> None:
        self.cast.append((person, association, tuple(answers)))

    def last(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        out: dict[str, tuple[str, tuple[str, ...]]] = {}
        for person, association, answers in self.cast:
            if answers:
                out[person] = (association, answers)
            else:
                out.pop(person, None)  # taken back
        return out

    def counts(self, answers: int) -> dict[str, int]:
        counted = Counter(a for _, chosen in self.last().values() for a in chosen)
        return {str(n): counted.get(str(n), 0) for n in range(1, answers + 1)}

    def voters(self) -> int:
        return len(self.last())


def results_in(text: str) -> tuple[dict[str, int], int] | None:
    """The counts per answer and the turnout of a results post, or None."""
    if "Resultat för omröstning" not in text:
        return None
    counts = {n: int(c) for n, c in _RESULT_LINE.findall(text)}
    turnout = _TURNOUT.search(text)
    return (counts, int(turnout[1])) if turnout else None


@dataclass
class PollWorld:
    synapse: Synapse
    bot: Account
    anna: User  # creator of both Matrix rooms: an organiser there, and in the config
    falun: str
    ludvika: str
    standin: StandIn
    world: World
    mora: Channel
    rattvik: Channel
    tmp: Path
    output: ConsoleOutput = field(default_factory=ConsoleOutput)
    settle: str = "2s"
    console: bool = True

    def config_text(self) -> str:
        s = self.standin
        borlange = (
            f'[[associations]]\nid = "borlange"\nname = "Borlänge"\n'
            f'rooms = ["console:{CONSOLE_ROOM}"]\n'
            if self.console
            else ""
        )
        return f"""
[bot]
language = "sv"
database = "{self.tmp / "bot.db"}"
organisers = ["console:anna", "matrix:{self.anna.user_id}"]
plugins = ["plugins.help", "plugins.polls"]

[console]
enabled = {"true" if self.console else "false"}

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

[polls]
settle = "{self.settle}"

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
id = "rattvik"
name = "Rättvik"
rooms = ["discord:{self.rattvik.id}"]

{borlange}"""

    def settings(self) -> RootSettings:
        return settings_from(self.tmp, self.config_text(), [HelpPlugin, PollsPlugin])

    def write_config(self) -> Path:
        path = self.tmp / "bot.toml"
        path.write_text(self.config_text(), encoding="utf-8")
        return path

    # -- what the peers hold -----------------------------------------------------------

    def bot_events(self, room: str, event_type: str = "m.room.message") -> list[dict[str, Any]]:
        """What the bot posted in Matrix room `room`, as Anna's client received it."""
        return [
            src
            for r, src in self.anna.events
            if r == room and src.get("sender") == self.bot.user_id and src.get("type") == event_type
        ]

    def poll_start(self, room: str, poll_id: int) -> dict[str, Any] | None:
        for src in self.bot_events(room, START):
            if f"Omröstning {poll_id}:" in str(src["content"].get("body", "")):
                return src
        return None

    def discord_poll(self, channel: Channel, poll_id: int) -> Message | None:
        """The bot's post of poll `poll_id` in `channel`: native, or with components."""
        for msg in self.standin.channel_messages(channel.id):
            ours = msg.author_id == self.standin.bot.id
            votable = bool(msg.data.get("poll") or msg.data.get("components"))
            if ours and votable and f"mröstning {poll_id}:" in str(msg.data["content"]):
                return msg
        return None

    def results(self, poll_id: int) -> dict[str, tuple[dict[str, int], int]]:
        """Each room's results post of poll `poll_id`, parsed."""
        found: dict[str, tuple[dict[str, int], int]] = {}
        head = f"Resultat för omröstning {poll_id}:"
        for room in (self.falun, self.ludvika):
            for src in self.bot_events(room):
                body = str(src["content"].get("body", ""))
                parsed = results_in(body)
                if head in body and parsed:
                    found[f"matrix:{room}"] = parsed
        for channel in (self.mora, self.rattvik):
            for msg in self.standin.channel_messages(channel.id):
                text = str(msg.data.get("content", ""))
                parsed = results_in(text)
                if head in text and parsed and msg.author_id == self.standin.bot.id:
                    found[f"discord:{channel.id}"] = parsed
        if self.console:
            text = "\n".join(
                line[2:] if line.startswith("  ") else line for line in self.output.lines()
            )
            for block in text.split(f"[#{CONSOLE_ROOM}] ")[1:]:
                parsed = results_in(block)
                if head in block and parsed:
                    found[f"console:{CONSOLE_ROOM}"] = parsed
        return found

    def created_ids(self) -> list[int]:
        """The ids of the polls created from the console, in order."""
        return [int(m[1]) for line in self.output.lines() if (m := _CREATED.search(line))]


async def make_world(
    synapse: Synapse, users: MakeUser, world: World, tmp: Path, *, console: bool = True
) -> PollWorld:
    bot = synapse.register("pollbot")
    anna = await users("anna")
    await anna.client.set_displayname("Anna")
    # The bot may remove members' messages in Falun (a secret vote written there).
    falun = await anna.create_room(invite=[bot.user_id], power={bot.user_id: 50})
    ludvika = await anna.create_room(invite=[bot.user_id])
    mora, rattvik = world.channels[1], world.channels[2]
    return PollWorld(
        synapse, bot, anna, falun, ludvika, world.standin, world, mora, rattvik, tmp,
        console=console,
    )  # fmt: skip


async def member(
    users: MakeUser, world: PollWorld, name: str, rooms: Sequence[str], *, e2e: bool = False
) -> User:
    """A Matrix member of `rooms` (invited by Anna, joined); `e2e`: with an encryption
    store, for encrypted rooms."""
    user = await users(name, world.tmp / f"{name}-store" if e2e else None)
    for room in rooms:
        await world.anna.client.room_invite(room, user.user_id)
        await user.join(room)
    return user


async def respond(
    user: User, room: str, poll_event: str, answers: Sequence[str], *, stable: bool = False
) -> str:
    """A poll response as Element sends it (unstable), or in the stable form."""
    reference = {"rel_type": "m.reference", "event_id": poll_event}
    if stable:
        return await user.send(
            room, {"m.relates_to": reference, "m.selections": list(answers)}, STABLE
        )
    body = {"m.relates_to": reference, UNSTABLE: {"answers": list(answers)}}
    return await user.send(room, body, UNSTABLE)


@dataclass
class Live:
    app: App
    clock: FakeClock
    matrix: MatrixAdapter
    discord: DiscordAdapter
    io: ConsoleIO

    def polls(self) -> PollsPlugin:
        return next(p for p in self.app.plugins if isinstance(p, PollsPlugin))

    async def advance_to(self, when: datetime) -> None:
        """Move the clock as a running bot lives through it: every wake-up on time."""
        while True:
            due = await self.app.scheduler.next_due()
            if due is None or due > when:
                break
            self.clock.set(max(due, self.clock.now()))
            await self.app.scheduler.run_due()
            await self.idle()
        self.clock.set(when)
        await self.app.scheduler.run_due()
        await self.idle()

    async def idle(self) -> None:
        await self.discord.inbound.drain()
        assert await self.app.delivery.wait_idle(30), "deliveries did not finish"


@contextlib.asynccontextmanager
async def running(env: PollWorld, clock: FakeClock) -> AsyncIterator[Live]:
    """The whole App (help and polls) on Matrix, Discord and the console, on `clock`;
    the scheduler wakes only when the test moves the clock."""
    settings = env.settings()
    console_io = ConsoleIO.open(env.output)
    matrix: list[MatrixAdapter] = []
    discord: list[DiscordAdapter] = []
    app = App(
        settings,
        [HelpPlugin, PollsPlugin],
        adapter_factories={
            "matrix": matrix_factory(settings, matrix),
            "discord": discord_factory(settings, discord),
            "console": lambda state, clock: ConsoleAdapter(
                settings.bot.name, stdin=console_io.stdin, stdout=env.output
            ),
        },
        clock=clock,
        waker=ManualWaker(),
        delivery_backoff=0.1,
    )
    task = asyncio.create_task(app.run())
    try:
        await until(
            lambda: (task.done() and task.result()) or both_ready(matrix, discord), 60, "the bot"
        )
        assert not task.done(), "the app stopped before it was ready"
        yield Live(app, clock, matrix[0], discord[0], console_io)
    finally:
        app.request_stop()
        try:
            await asyncio.wait_for(task, 40)
        finally:
            console_io.close()


def fake_now() -> FakeClock:
    """A fake clock that starts at the real now, so that the platforms' own timestamps
    (a Matrix event's, a Discord vote's) fall before the injected deadline."""
    return FakeClock(datetime.now(UTC))
