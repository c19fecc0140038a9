"""Two real `samverkan run` processes on one PostgreSQL database, against the real
Synapse and the Discord stand-in: only the active one answers and relays; kill -9 of the
active one in the middle of a burst, with a calendar reminder falling due just after it
dies: the standby takes over, every message is relayed once and the reminder is posted
once; a cut database connection on the active one: it stops posting before the standby
posts its first message, and exits 1.

Each instance reaches Synapse and the stand-in's REST API through a proxy of its own (a
"tap"), so every post is known by the instance that made it and when. The gateway and
the database are reached directly. The Matrix store is shared (as the issue asks: where
both instances can read it); each instance has its own working folder (`data/`).

Subprocesses cannot be given an injected clock, so the reminder is a real one: an event
added by an organiser on Matrix at a whole minute, with a reminder offset that makes it
fall due some ten to seventy seconds after the bots are up; the kill is timed to it.
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
from datetime import UTC, datetime, timedelta
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
    marks_in,
    matrix_copies,
    matrix_rooms,
)
from tests.bridge.test_bridge_faults import post_all, say_all, wait_for
from tests.discord.standin import StandIn
from tests.discord.standin.model import Channel
from tests.discord.standin.model import User as DiscordUser
from tests.engines import SERVER, postgres_database
from tests.matrix.botrun import PICKLE_KEY
from tests.matrix.synapse import REPO, Account, Synapse
from tests.matrix.users import MakeUser, User, from_bot
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


# -- the tests -------------------------------------------------------------------------


async def test_two_processes_only_the_active_one_answers_and_relays(
    synapse: Synapse, users: MakeUser, standin: StandIn, tmp_path: Path
) -> None:
    async with pair(synapse, users, standin, tmp_path) as p:
        active, standby = await started(p)
        falun = p.rooms.matrix["falun"]

        def replies() -> list[dict[str, Any]]:
            return [
                s
                for s in p.alice.found(from_bot(p.bot.user_id, falun))
                if not marks_in([str(s["content"].get("body", ""))])
            ]

        # A command on Matrix: one answer.
        before = len(replies())
        await p.alice.say(falun, "!help")
        await wait_for(lambda: len(replies()) > before, 30, "the answer on Matrix")
        # A command on Discord: one answer.
        inter = await standin.slash_command(p.channel, p.bertil, "help")
        await standin.wait_for(lambda: inter.acknowledged, what="the answer on Discord")
        # A bridged message each way: once in every other room.
        sources = {"falun": [mark("fa", 1)], "mora": [], "discord": [mark("dc", 1)]}
        await p.alice.say(falun, f"{mark('fa', 1)} hej från Matrix")
        await standin.user_message(p.channel, p.bertil, f"{mark('dc', 1)} hej från Discord")
        await all_relayed(p, sources, timeout=30)
        await asyncio.sleep(1.0)

        assert len(replies()) == before + 1
        callbacks = [
            r
            for r in standin.recorded(
                "POST /interactions/{interaction_id}/{interaction_token}/callback"
            )
            if r.path.split("/")[-3] == str(inter.id)
        ]
        assert len(callbacks) == 1, callbacks
        check_all(p, sources)
        assert await p.roles() == ["active" if i is active else "standby" for i in p.instances]
        assert standby.sends() == [], standby.sends()  # the standby posted nothing at all
        assert active.sends()
        # The standby never logged in to either platform.
        assert standby.discord_tap is not None and standby.matrix_tap is not None
        assert standby.discord_tap.calls == [] and standby.matrix_tap.calls == []
        assert "ready: adapters" not in standby.log()
        assert "standby: another samverkan is active" in standby.log()


async def test_kill_9_of_the_active_mid_burst_standby_takes_over(
    synapse: Synapse, users: MakeUser, standin: StandIn, tmp_path: Path
) -> None:
    async with pair(synapse, users, standin, tmp_path) as p:
        active, standby = await started(p)
        falun = p.rooms.matrix["falun"]
        # An organiser's event, at a whole minute, whose reminder falls due a little
        # later than the soonest moment the burst can be under way.
        now = datetime.now(UTC)
        soonest = now + timedelta(seconds=REMINDER_OFFSET + 15)
        event_at = (soonest + timedelta(minutes=1)).replace(second=0, microsecond=0)
        due = event_at - timedelta(seconds=REMINDER_OFFSET)
        when = event_at.astimezone(ZONE).strftime("%Y-%m-%d %H:%M")
        await p.alice.say(falun, f'!event add "{TITLE}" "{when}" --in all')

        def reminders() -> dict[str, int]:
            mx = {
                aid: sum(
                    REMINDER in str(s["content"].get("body", ""))
                    for s in p.alice.found(from_bot(p.bot.user_id, room))
                )
                for aid, room in p.rooms.matrix.items()
            }
            dc = sum(
                REMINDER in str(m.data) and m.webhook_id is None and m.author_id == standin.bot.id
                for m in standin.channel_messages(p.channel.id)
            )
            return {**mx, "discord": dc}

        def added() -> bool:
            return any(
                f"är tillagd: {TITLE}" in str(s["content"].get("body", ""))
                for s in p.alice.found(from_bot(p.bot.user_id, falun))
            )

        await wait_for(added, 30, "the event's confirmation")
        assert reminders() == {"falun": 0, "mora": 0, "discord": 0}

        n = 10  # 30 messages, from two Matrix users and one Discord user
        sources = sources_of(n)
        pace = 0.4  # each source's burst lasts some 4 s (longer under load)

        def until_due(before: float) -> float:
            return (due - datetime.now(UTC)).total_seconds() - before

        await asyncio.sleep(max(0.0, until_due(4.0)))
        sending = burst(p, sources, pace)
        await asyncio.sleep(max(0.0, until_due(1.5)))
        relayed_before = sum(len(v) for v in p.arrived().values())
        killed_wall = datetime.now(UTC)
        active.kill()
        killed = time.monotonic()
        assert active.process is not None
        await asyncio.to_thread(active.process.wait, 10)
        became_active = await wait_role(p, standby, "active", 60)
        await standby.ready(timeout=90)
        await sending
        await all_relayed(p, sources)
        await wait_for(lambda: sum(reminders().values()) >= 3, 60, "the reminders")
        await asyncio.sleep(2.0)
        first_post = standby.sends()[0].sent_at
        got = reminders()
        mid_burst = 0 < relayed_before < 2 * 3 * n
        assert not sending.exception()

    to_active, to_post = became_active - killed, first_post - killed
    print(
        f"\nkill -9: standby active after {to_active:.2f}s, first relayed post after "
        f"{to_post:.2f}s; {relayed_before} of {2 * 3 * n} copies were out at the kill;"
        f" reminder due {(due - killed_wall).total_seconds():.1f}s after the kill"
    )
    check_all(p, sources)
    assert got == {"falun": 1, "mora": 1, "discord": 1}, got
    assert killed_wall < due  # the reminder fell due after the kill, while no one was active
    assert mid_burst, relayed_before
    assert to_post < TAKEOVER_BOUND, to_post


async def test_cut_database_connection_old_active_stops_before_the_standby_posts(
    synapse: Synapse, users: MakeUser, standin: StandIn, tmp_path: Path
) -> None:
    async with pair(synapse, users, standin, tmp_path) as p:
        active, standby = await started(p)
        n = 10
        sources = sources_of(n)
        sending = burst(p, sources, 0.4)
        await wait_for(
            lambda: sum(len(v) for v in p.arrived().values()) >= 6, 30, "the burst under way"
        )
        admin = await asyncpg.connect(SERVER, timeout=10)
        try:
            backends = await backends_of(admin, database_name(p.url), active.pid)
            assert len(backends) >= 2, backends  # the lock's connection and the database's
            cut = time.monotonic()
            await admin.execute("SELECT pg_terminate_backend(b) FROM unnest($1::int[]) b", backends)
        finally:
            await admin.close()
        relayed_at_cut = sum(len(v) for v in p.arrived().values())
        assert active.process is not None
        code = await asyncio.to_thread(active.process.wait, 30)
        exited = time.monotonic()
        became_active = await wait_role(p, standby, "active", 60)
        await standby.ready(timeout=90)
        await sending
        await all_relayed(p, sources)
        old, new = active.sends(), standby.sends()
        old_log = active.log()

    assert code == 1, old_log[-3000:]
    assert "lost the database's instance lock" in old_log
    assert old and new
    last_old = max(c.answered_at for c in old)
    first_new = min(c.sent_at for c in new)
    print(
        f"\ncut connection: old active's last post {last_old - cut:+.2f}s after the cut, "
        f"it exited at {exited - cut:+.2f}s; standby active at {became_active - cut:+.2f}s, "
        f"its first post at {first_new - cut:+.2f}s ({first_new - last_old:.2f}s after the "
        f"old one's last); {relayed_at_cut} of {2 * 3 * n} copies were out at the cut"
    )
    # Nothing from the old active once the standby posts, nor once it has exited.
    assert last_old < first_new
    assert all(c.sent_at < exited for c in old)
    check_all(p, sources)
    assert 0 < relayed_at_cut < 2 * 3 * n
    assert first_new - cut < TAKEOVER_BOUND
