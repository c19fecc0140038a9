"""Two real `samverkan run` processes on one PostgreSQL database, against the real
Synapse and the Discord stand-in: the harness of tests/bridge/test_standby_processes.py
(an instance, its taps, the pair and its world, the checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from bot.storage.target import DatabaseUrl
from tests.bridge.faults import (
    BotProcess,
    Rooms,
    check_arrivals,
    discord_copies,
    mark,
    matrix_copies,
    matrix_rooms,
)
from tests.bridge.test_bridge_faults import post_all, say_all, wait_for
from tests.discord.standin import StandIn
from tests.discord.standin.model import Channel
from tests.discord.standin.model import User as DiscordUser
from tests.engines import postgres_database
from tests.matrix.botrun import PICKLE_KEY
from tests.matrix.synapse import REPO, Account, Synapse
from tests.matrix.users import MakeUser, User
from tests.proxy import ReverseProxy

# The bound: the standby takes over within 15 s.
TAKEOVER_BOUND = 15.0
TITLE = "Styrelsemöte"
REMINDER = f"Påminnelse: {TITLE}"
REMINDER_OFFSET = 20  # seconds before the event
ZONE = ZoneInfo("Europe/Stockholm")
# Posts into a room: Matrix sends (messages, reactions) and Discord's message posts,
# webhook executions, reactions and interaction answers.
_MATRIX_SEND = re.compile(r"/rooms/[^/]+/send/")
_DISCORD_SEND = re.compile(
    r"^/api/v\d+/(webhooks/\d+/[^/]+|channels/\d+/messages(/\d+/reactions/.*)?"
    r"|interactions/\d+/[^/]+/callback)$"
)


# -- a proxy per instance and peer -----------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    status: int
    sent_at: float  # monotonic: when the request reached the proxy
    answered_at: float  # when the peer's answer was passed back


class Tap(ReverseProxy):
    """A reverse proxy that passes every request and every header through, and records
    each call with its times."""

    def __init__(self, upstream: str, name: str) -> None:
        super().__init__(upstream)
        self.name = name
        self.calls: list[Call] = []

    def answered(
        self, request: web.Request, body: bytes, status: int, data: bytes, sent_at: float
    ) -> None:
        self.calls.append(Call(request.method, request.path, status, sent_at, time.monotonic()))

    def sends(self) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method in ("PUT", "POST")
            and (_MATRIX_SEND.search(c.path) or _DISCORD_SEND.match(c.path))
        ]


# -- one instance ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance(BotProcess):
    """One `samverkan run` in a working folder of its own, with its own taps and health
    port."""

    name: str = ""
    workdir: Path = Path()
    matrix_tap: Tap | None = None
    discord_tap: Tap | None = None
    http_port: int = 0
    exits: list[tuple[float, int]] = field(default_factory=list)

    def launch(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("SAMVERKAN_CONFIG", None)
        self.runs += 1
        log = self.log_path(self.runs).open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(self.config)],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def sends(self) -> list[Call]:
        assert self.matrix_tap is not None and self.discord_tap is not None
        return sorted(self.matrix_tap.sends() + self.discord_tap.sends(), key=lambda c: c.sent_at)

    async def role(self, session: ClientSession) -> str | None:
        """The role on the health endpoint, or None while it does not answer."""
        try:
            async with session.get(f"http://127.0.0.1:{self.http_port}/live") as answer:
                data = await answer.json()
                return str(data.get("role"))
        except (ClientError, OSError, ValueError, TimeoutError):
            return None


def instance_config(
    *,
    url: DatabaseUrl,
    bot: Account,
    standin: StandIn,
    rooms: Rooms,
    shared: Path,
    instance: Instance,
    organiser: str,
) -> str:
    assert instance.matrix_tap is not None and instance.discord_tap is not None
    assocs = "".join(
        f'[[associations]]\nid = "{aid}"\nname = "{aid.capitalize()}"\nrooms = ["matrix:{rid}"]\n'
        for aid, rid in rooms.matrix.items()
    )
    assocs += (
        f'[[associations]]\nid = "borlange"\nname = "Borlänge"\n'
        f'rooms = ["discord:{rooms.channel.id}"]\n'
    )
    refs = ", ".join(f'"{r}"' for r in rooms.refs())
    return f"""
[bot]
language = "sv"
timezone = "Europe/Stockholm"
database = "{url.dsn()}"
plugins = ["plugins.help", "plugins.bridge", "plugins.calendar"]
organisers = ["{organiser}"]

[matrix]
homeserver = "{instance.matrix_tap.url}"
user_id = "{bot.user_id}"
password = "{bot.password}"
store_path = "{shared / "matrix-store"}"
pickle_key = "{PICKLE_KEY}"

[discord]
token = "{standin.token}"
guild_ids = [{rooms.guild_id}]
api_base_url = "{instance.discord_tap.url}/api/v10"
gateway_url = "{standin.gateway_url}"

[http]
listen = "127.0.0.1:{instance.http_port}"

[calendar]
reminders = ["{REMINDER_OFFSET}s"]
digest = "0 8 1 1 *"

{assocs}
[[bridges]]
id = "samverkan"
rooms = [{refs}]
"""


# -- the world of a pair ---------------------------------------------------------------


@dataclass
class Pair:
    synapse: Synapse
    standin: StandIn
    bot: Account
    alice: User
    bea: User
    bertil: DiscordUser
    channel: Channel
    rooms: Rooms
    url: DatabaseUrl
    instances: list[Instance]
    http: ClientSession

    async def roles(self) -> list[str | None]:
        return list(await asyncio.gather(*(i.role(self.http) for i in self.instances)))

    async def sorted_roles(self, timeout: float = 90.0) -> tuple[Instance, Instance]:
        """(active, standby), once one says active and the other standby."""
        deadline = time.monotonic() + timeout
        while True:
            roles = await self.roles()
            if sorted(r or "" for r in roles) == ["active", "standby"]:
                a, b = self.instances
                return (a, b) if roles[0] == "active" else (b, a)
            for i in self.instances:
                assert i.process is not None and i.process.poll() is None, i.log()[-3000:]
            assert time.monotonic() < deadline, f"roles {roles}"
            await asyncio.sleep(0.1)

    def arrived(self) -> dict[str, list[str]]:
        return {
            "falun": matrix_copies(self.alice, self.rooms.matrix["falun"], self.bot.user_id),
            "mora": matrix_copies(self.alice, self.rooms.matrix["mora"], self.bot.user_id),
            "discord": discord_copies(self.standin, self.channel.id),
        }

    async def wait_joined(self) -> None:
        for room in self.rooms.matrix.values():
            await self.alice.wait_until(
                lambda room=room: self.alice.sees_joined(room, self.bot.user_id),  # type: ignore[misc]
                timeout=60,
            )


@contextlib.asynccontextmanager
async def pair(
    synapse: Synapse, users: MakeUser, standin: StandIn, tmp_path: Path
) -> AsyncIterator[Pair]:
    """Both instances configured (not started) on a new PostgreSQL database."""
    bot = synapse.register("bot")
    alice, bea = await users("alice"), await users("bea")
    rooms_mx = await matrix_rooms(alice, bot, [bea], ["falun", "mora"])
    guild = standin.add_guild()
    channel = standin.add_channel(guild, "samverkan")
    bertil = standin.add_user("bertil")
    rooms = Rooms(rooms_mx, channel, guild.id)
    shared = tmp_path / "shared"
    shared.mkdir()
    taps: list[Tap] = []
    instances: list[Instance] = []
    async with (
        postgres_database("samverkan_pair") as url,
        ClientSession(timeout=ClientTimeout(total=2)) as http,
    ):
        try:
            for name in ("a", "b"):
                work = tmp_path / name
                work.mkdir()
                mtap, dtap = Tap(synapse.url, f"{name}-matrix"), Tap(standin.url, f"{name}-discord")
                for tap in (mtap, dtap):
                    await tap.start()
                    taps.append(tap)
                inst = Instance(
                    work / "config.toml",
                    work,
                    name=name,
                    workdir=work,
                    matrix_tap=mtap,
                    discord_tap=dtap,
                    http_port=free_port(),
                )
                inst.config.write_text(
                    instance_config(
                        url=url,
                        bot=bot,
                        standin=standin,
                        rooms=rooms,
                        shared=shared,
                        instance=inst,
                        organiser=f"matrix:{alice.user_id}",
                    ),
                    encoding="utf-8",
                )
                instances.append(inst)
            yield Pair(
                synapse, standin, bot, alice, bea, bertil, channel, rooms, url, instances, http
            )
        finally:
            for inst in instances:
                inst.kill()
                if inst.process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        await asyncio.to_thread(inst.process.wait, 20)
            for tap in taps:
                await tap.stop()


# -- helpers ---------------------------------------------------------------------------


def burst(p: Pair, sources: dict[str, list[str]], pace: float) -> asyncio.Future[Any]:
    return asyncio.gather(
        say_all(p.alice, p.rooms.matrix["falun"], sources["falun"], pace),
        say_all(p.bea, p.rooms.matrix["mora"], sources["mora"], pace),
        post_all(p.standin, p.channel, p.bertil, sources["discord"], pace),
    )


def sources_of(n: int) -> dict[str, list[str]]:
    return {
        "falun": [mark("fa", i) for i in range(n)],
        "mora": [mark("mo", i) for i in range(n)],
        "discord": [mark("dc", i) for i in range(n)],
    }


def check_all(p: Pair, sources: dict[str, list[str]]) -> None:
    for room, copies in p.arrived().items():
        check_arrivals(room, copies, {s: m for s, m in sources.items() if s != room})


async def all_relayed(p: Pair, sources: dict[str, list[str]], timeout: float = 90.0) -> None:
    expected = 2 * sum(len(v) for v in sources.values())
    try:
        await wait_for(
            lambda: sum(len(v) for v in p.arrived().values()) >= expected, timeout, "copies"
        )
    except AssertionError:
        check_all(p, sources)  # says what is missing
        raise
    await asyncio.sleep(2.0)  # a doubled copy would have shown up by now


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds open."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


async def backends_of(admin: asyncpg.Connection, database: str, pid: int) -> list[int]:
    """The server processes serving the connections of process `pid` to `database`."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND client_port = ANY($2::int[])",
        database,
        sorted(local_ports(pid)),
    )
    return [int(r["pid"]) for r in rows]


def database_name(url: DatabaseUrl) -> str:
    return url.dsn().rsplit("/", 1)[1].split("?", 1)[0]


async def wait_role(p: Pair, inst: Instance, role: str, timeout: float) -> float:
    """When `inst` first says `role` on its health endpoint (monotonic)."""
    deadline = time.monotonic() + timeout
    while await inst.role(p.http) != role:
        assert time.monotonic() < deadline, f"{inst.name} never said {role}:\n{inst.log()[-3000:]}"
        await asyncio.sleep(0.05)
    return time.monotonic()


async def started(p: Pair) -> tuple[Instance, Instance]:
    """Both launched at once; (active, standby) once the active one is ready and in the
    rooms."""
    for inst in p.instances:
        inst.launch()
    active, standby = await p.sorted_roles()
    await active.ready(timeout=90)
    await p.wait_joined()
    return active, standby
