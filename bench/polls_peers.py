"""Helpers of the polls benchmark: a bare consumer of the same vote events, the
organiser's client, raw Matrix calls for many accounts, the ledger of votes cast, the
bot's configuration, and the tally measured in process."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from nio import AsyncClient

from bench.bridge_bench import FILTER
from bench.matrix_bench import cpu_seconds
from bot.core.refs import RoomRef
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from plugins.polls.schema import migrations
from plugins.polls.storage import Store, split
from plugins.polls.tally import count
from tests.discord.standin import StandIn
from tests.matrix.synapse import Account, Synapse

BARE = r"""
import asyncio, json, sys
import discord, yarl
from discord.gateway import DiscordWebSocket
from nio import AsyncClient, UnknownEvent

async def main() -> None:
    hs, user, token, device, api, gateway, dtoken = sys.argv[1:8]
    discord.http.Route.BASE = api
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    counts = {"matrix": 0, "discord": 0}
    client = AsyncClient(hs, user)
    client.restore_login(user, device, token)
    first = await client.sync(timeout=0, full_state=True)

    async def on_unknown(room, event) -> None:
        if event.type in ("org.matrix.msc3381.poll.response", "m.poll.response"):
            counts["matrix"] += 1

    client.add_event_callback(on_unknown, UnknownEvent)
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.guild_polls = True
    bot = discord.Client(intents=intents, max_messages=None, chunk_guilds_at_startup=False,
                         member_cache_flags=discord.MemberCacheFlags.none())

    @bot.event
    async def on_raw_poll_vote_add(payload) -> None:
        counts["discord"] += 1

    @bot.event
    async def on_raw_poll_vote_remove(payload) -> None:
        counts["discord"] += 1

    @bot.event
    async def on_ready() -> None:
        print("ready", flush=True)

    async def report() -> None:
        while True:
            await asyncio.sleep(0.2)
            print(json.dumps(counts), flush=True)

    await asyncio.gather(client.sync_forever(timeout=30000, since=first.next_batch),
                         bot.start(dtoken), report())

asyncio.run(main())
"""


class Owner:
    """The organiser's client: records what the bot posts, per room, with arrival times."""

    def __init__(self, synapse: Synapse, account: Account, bot_id: str) -> None:
        self.client = AsyncClient(synapse.url, account.user_id)
        self.client.restore_login(account.user_id, account.device_id, account.access_token)
        self.bot_id = bot_id
        self.posts: list[tuple[str, str, str, dict[str, Any], float]] = []
        self.task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        first = await self.client.sync(timeout=0, full_state=True, sync_filter=FILTER)
        self.task = asyncio.create_task(
            self.client.sync_forever(timeout=30000, sync_filter=FILTER, since=first.next_batch)
        )

        async def on_event(room: Any, event: Any) -> None:
            src = event.source
            if src.get("sender") == self.bot_id:
                body = str(src.get("content", {}).get("body", ""))
                self.posts.append((room.room_id, src["type"], body, src, time.perf_counter()))

        from nio import Event

        self.client.add_event_callback(on_event, (Event,))

    def found(self, event_type: str, text: str) -> dict[str, tuple[dict[str, Any], float]]:
        return {
            r: (src, t) for r, ty, body, src, t in self.posts if ty == event_type and text in body
        }

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.close()


async def until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)
    return value


class Matrix:
    """Raw client-server calls (many accounts, no client state)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url, self._txn = http, url, 0

    async def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as r:
            data = await r.json(content_type=None)
            assert r.status == 200, (path, r.status, data)
            return data

    async def send(self, account: Account, room: str, event_type: str, content: Any) -> None:
        self._txn += 1
        path = f"/_matrix/client/v3/rooms/{room}/send/{event_type}/b{self._txn}"
        await self.call("PUT", path, account.access_token, content)

    async def vote(self, account: Account, room: str, start: str, answers: list[str]) -> None:
        rel = {"rel_type": "m.reference", "event_id": start}
        if self._txn % 2:
            await self.send(
                account, room, "m.poll.response", {"m.relates_to": rel, "m.selections": answers}
            )
        else:
            body = {"m.relates_to": rel, "org.matrix.msc3381.poll.response": {"answers": answers}}
            await self.send(account, room, "org.matrix.msc3381.poll.response", body)


class Ledger:
    def __init__(self) -> None:
        self.last: dict[str, list[str]] = {}
        self.cast = 0

    def vote(self, person: str, answers: list[str]) -> None:
        self.cast += 1
        if answers:
            self.last[person] = answers
        else:
            self.last.pop(person, None)

    def counts(self) -> dict[str, int]:
        counted = Counter(a for chosen in self.last.values() for a in chosen)
        return {n: counted.get(n, 0) for n in ("1", "2", "3")}


def config_text(synapse: Synapse, ours: Account, owner: Account, s: StandIn, guild: int,
                rooms: list[str], channels: list[int], work: Path) -> str:  # fmt: skip
    assocs = [
        f'[[associations]]\nid = "m{i}"\nname = "M{i}"\nrooms = ["matrix:{r}"]\n'
        for i, r in enumerate(rooms)
    ]
    assocs += [
        f'[[associations]]\nid = "d{i}"\nname = "D{i}"\nrooms = ["discord:{c}"]\n'
        for i, c in enumerate(channels)
    ]
    return f"""
[bot]
database = "{work / "bot.db"}"
organisers = ["matrix:{owner.user_id}"]
plugins = ["plugins.help", "plugins.polls"]
[console]
enabled = false
[matrix]
homeserver = "{synapse.url}"
user_id = "{ours.user_id}"
password = "{ours.password}"
store_path = "{work / "store"}"
pickle_key = "bench-pickle-key"
[discord]
token = "{s.token}"
guild_ids = [{guild}]
api_base_url = "{s.api_url}"
gateway_url = "{s.gateway_url}"
[polls]
settle = "1s"
{"".join(assocs)}
"""


async def idle_cpu(pid: int) -> float:
    """The process's CPU time once it has stopped working (two quiet half-seconds)."""
    quiet, last = 0, cpu_seconds(pid)
    while quiet < 2:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.01 else 0
        last = now
    return last


async def tally_figures(work: Path, votes: int = 5000, rounds: int = 20) -> tuple[float, float]:
    """Median seconds of the plugin's tally of `votes` stored votes, and of a bare one."""
    db = await Database.open(str(work / "tally.db"))
    try:
        await core_migrations.upgrade(db)
        await migrations.upgrade(db)
        store = Store(db)
        now = datetime.now(UTC)
        assocs = [f"a{i}" for i in range(20)]
        poll_id = await store.create(
            question="Q", answers=["Ja", "Nej", "Avstår"], max_selections=1, secret=False,
            creator="bench", now=now, closes_at=now + timedelta(hours=1), associations=assocs,
            rooms=[RoomRef("console", a) for a in assocs],
        )  # fmt: skip
        async with db.transaction():
            for n in range(votes):
                await store.put_vote(poll_id, f"p{n}", assocs[n % 20], [str(n % 3 + 1)], "b", now)
        poll = await store.get(poll_id)
        assert poll is not None
        ours, bare = [], []
        for _ in range(rounds):
            began = time.perf_counter()
            count(await store.ballots(poll), poll.answer_ids, poll.associations, 3)
            ours.append(time.perf_counter() - began)
            began = time.perf_counter()
            rows = await db.fetchall(
                "SELECT answers FROM polls_votes WHERE poll_id = ?", (poll_id,)
            )
            Counter(a for (raw,) in rows for a in split(raw))
            bare.append(time.perf_counter() - began)
        return statistics.median(ours), statistics.median(bare)
    finally:
        await db.close()
