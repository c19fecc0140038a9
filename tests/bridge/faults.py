"""Helpers of the bridge's fault tests and benchmark: a bridge over Matrix rooms, a
Discord channel of the stand-in and maybe a console room; the bot run in this process or
as a subprocess that can be killed; a homeserver that can be stopped and started again on
its port; and what each room received, read back by the marker each message carries."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.adapters.console import ConsoleAdapter
from bot.adapters.discord import DiscordAdapter
from bot.adapters.matrix import MatrixAdapter
from bot.app import App
from bot.settings import RootSettings
from plugins.bridge import BridgePlugin
from tests.discord.standin import StandIn
from tests.discord.standin.model import Channel
from tests.factories import both_ready, discord_factory, matrix_factory
from tests.matrix.botrun import PICKLE_KEY
from tests.matrix.synapse import REPO, Account, Synapse
from tests.matrix.users import User, from_bot
from tests.support import settings_from

# Every test message carries a marker: its source (two letters) and its number.
MARK = re.compile(r"\b([a-z]{2}-\d{3})\b")
WEBHOOK_POST = "POST /webhooks/{webhook_id}/{webhook_token}"


def mark(source: str, n: int) -> str:
    return f"{source}-{n:03d}"


def marks_in(texts: Sequence[str]) -> list[str]:
    return [m[1] for t in texts if (m := MARK.search(t))]


# -- the bridge's rooms and settings ---------------------------------------------------


@dataclass
class Rooms:
    """The rooms of one bridge: Matrix rooms by association, a Discord channel, and an
    optional console room."""

    matrix: dict[str, str]  # association id -> Matrix room id
    channel: Channel
    guild_id: int
    console: str | None = None

    def refs(self) -> list[str]:
        refs = [f"matrix:{r}" for r in self.matrix.values()] + [f"discord:{self.channel.id}"]
        if self.console is not None:
            refs.append(f"console:{self.console}")
        return refs


def config_text(
    synapse: Synapse,
    bot: Account,
    standin: StandIn,
    rooms: Rooms,
    tmp: Path,
    *,
    extra_bridges: Sequence[Sequence[str]] = (),
    homeserver: str | None = None,
) -> str:
    """A whole bot configuration with only the bridge plugin: Matrix, Discord (the
    stand-in), maybe the console, one association per room and the bridge over them."""
    assocs = [
        f'[[associations]]\nid = "{aid}"\nname = "{aid.capitalize()}"\nrooms = ["matrix:{rid}"]\n'
        for aid, rid in rooms.matrix.items()
    ]
    assocs.append(
        f'[[associations]]\nid = "borlange"\nname = "Borlänge"\n'
        f'rooms = ["discord:{rooms.channel.id}"]\n'
    )
    console = "[console]\nenabled = true\n" if rooms.console is not None else ""
    bridges = [rooms.refs(), *extra_bridges]
    bridge_text = "".join(
        f'[[bridges]]\nid = "b{n}"\nrooms = {json.dumps(list(b))}\n' for n, b in enumerate(bridges)
    )
    return f"""
[bot]
language = "sv"
database = "{tmp / "bot.db"}"
plugins = ["plugins.bridge"]

[matrix]
homeserver = "{homeserver or synapse.url}"
user_id = "{bot.user_id}"
password = "{bot.password}"
store_path = "{tmp / "matrix-store"}"
pickle_key = "{PICKLE_KEY}"

[discord]
token = "{standin.token}"
guild_ids = [{rooms.guild_id}]
api_base_url = "{standin.api_url}"
gateway_url = "{standin.gateway_url}"

{console}
{"".join(assocs)}
{bridge_text}
"""


def bridge_settings(text: str, tmp: Path) -> RootSettings:
    return settings_from(tmp, text, [BridgePlugin])


async def matrix_rooms(
    owner: User, bot: Account, others: Sequence[User], names: Sequence[str]
) -> dict[str, str]:
    """Rooms made by `owner`, with the bot and `others` invited and the others joined."""
    made: dict[str, str] = {}
    for name in names:
        room = await owner.create_room(invite=[bot.user_id, *(o.user_id for o in others)])
        for other in others:
            await other.join(room)
        made[name] = room
    return made


# -- the bot in this process -----------------------------------------------------------


class ConsoleLog(io.StringIO):
    """The console adapter's output, line by line, with when each line came."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        now = time.monotonic()
        self.lines.extend((now, line) for line in text.splitlines() if line.strip())
        return len(text)


@dataclass
class Running:
    app: App
    matrix: MatrixAdapter
    discord: DiscordAdapter
    console: ConsoleLog | None = None


@contextlib.asynccontextmanager
async def running_bridge(
    settings: RootSettings, *, delivery_backoff: float = 0.1
) -> AsyncIterator[Running]:
    """The App with the bridge plugin and real adapters (Discord with short timings),
    until the block ends; the adapters' state lives in the App's database file."""
    matrix: list[MatrixAdapter] = []
    discord: list[DiscordAdapter] = []
    console: ConsoleLog | None = ConsoleLog() if settings.console.enabled else None
    app = App(
        settings,
        [BridgePlugin],
        adapter_factories={
            "matrix": matrix_factory(settings, matrix),
            "discord": discord_factory(settings, discord),
            "console": lambda state, clock: ConsoleAdapter(
                settings.bot.name, stdin=io.StringIO(), stdout=console
            ),
        },
        delivery_backoff=delivery_backoff,
    )
    task = asyncio.create_task(app.run())
    try:
        deadline = time.monotonic() + 30
        while not both_ready(matrix, discord):
            if task.done():
                task.result()
                raise AssertionError("the bot stopped before it was ready")
            assert time.monotonic() < deadline, "the bot did not become ready"
            await asyncio.sleep(0.02)
        yield Running(app, matrix[0], discord[0], console)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 40)


# -- the bot as a process --------------------------------------------------------------


@dataclass
class BotProcess:
    """`python -m bot run --config <toml>`, started, killed and started again; each run
    logs to its own file."""

    config: Path
    logs: Path
    runs: int = 0
    process: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    def launch(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("SAMVERKAN_CONFIG", None)
        self.runs += 1
        log = self.log_path(self.runs).open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(self.config), *self.args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def log_path(self, run: int) -> Path:
        return self.logs / f"bot{run}.log"

    def log(self, run: int | None = None) -> str:
        return self.log_path(run or self.runs).read_text(errors="replace")

    async def ready(self, timeout: float = 40.0, *, unless: asyncio.Event | None = None) -> None:
        """Until this run says it is ready (or `unless` is set: killed on purpose)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while "ready: adapters" not in self.log():
            if unless is not None and unless.is_set():
                return
            assert self.process.poll() is None, self.log()[-3000:]
            assert time.monotonic() < deadline, "the bot did not become ready"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, nothing saved that was not saved already."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.process = None


# -- what arrived ----------------------------------------------------------------------


def matrix_copies(user: User, room: str, bot_id: str) -> list[str]:
    """The markers of what the bot posted into `room`, in timeline order."""
    return marks_in([str(s["content"].get("body", "")) for s in user.found(from_bot(bot_id, room))])


def discord_copies(standin: StandIn, channel_id: int) -> list[str]:
    """The markers of the webhook posts stored in the channel, in channel order."""
    return marks_in(
        [
            str(m.data["content"])
            for m in standin.channel_messages(channel_id)
            if m.webhook_id is not None
        ]
    )


def check_arrivals(where: str, got: list[str], sources: dict[str, list[str]]) -> None:
    """`got` (what one room received) holds every message of `sources` once, each
    source's in its order (sources interleave freely), and nothing else; or says why."""
    owner = {m: src for src, msgs in sources.items() for m in msgs}
    counts = Counter(got)
    problems: list[str] = []
    missing = [m for msgs in sources.values() for m in msgs if m not in counts]
    doubled = sorted(m for m, n in counts.items() if n > 1)
    unknown = sorted(m for m in counts if m not in owner)
    if missing:
        problems.append(f"missing {missing}")
    if doubled:
        problems.append(f"doubled {doubled}")
    if unknown:
        problems.append(f"not expected here {unknown}")
    for src, msgs in sources.items():
        arrived = [m for m in got if owner.get(m) == src]
        if not missing and not doubled and arrived != msgs:
            problems.append(f"out of order from {src}: {arrived}")
    if problems:
        raise AssertionError(f"{where}: {len(got)} copies; " + "; ".join(problems))


__all__ = [
    "MARK",
    "WEBHOOK_POST",
    "BotProcess",
    "ConsoleLog",
    "Rooms",
    "Running",
    "bridge_settings",
    "check_arrivals",
    "config_text",
    "discord_copies",
    "mark",
    "marks_in",
    "matrix_copies",
    "matrix_rooms",
    "running_bridge",
]
