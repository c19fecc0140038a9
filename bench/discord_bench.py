"""Discord figures, against the wire-level stand-in (tests/discord/standin), in-process.

1. Round trips: a slash command (INTERACTION_CREATE out of the gateway to the callback
   request in) and a text message (MESSAGE_CREATE out to the reply's POST in), p50 and
   p99 over sequential trials, through the whole App (adapter, dispatcher, delivery).
2. CPU time per handled message (process time over a batch of text round trips).
   Floor and bot are measured in turn, ROUNDS times; the medians are printed, and the
   ratio of each round.
3. Memory attributed to the bot's and discord.py's code (tracemalloc) in 20 channels,
   after start and after 20 messages in each channel.

Floor, measured in the same run: a bare discord.py client that answers the same
messages and interactions directly, without our adapter or framework. Both include the
stand-in's own work (same process), so the difference is what we add.

Prints figures; asserts nothing. Run `make bench` or `python bench/discord_bench.py`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import discord

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.adapters.discord.connection import configure_urls  # noqa: E402
from plugins.help import HelpPlugin  # noqa: E402
from tests.discord.botrun import FAST, Probe, running_bot  # noqa: E402
from tests.discord.standin import Recorded, StandIn  # noqa: E402
from tests.discord.standin.model import Channel, User  # noqa: E402
from tests.support import settings_from  # noqa: E402

TRIALS = 200
CPU_BATCH = 2000
ROUNDS = 5
CHANNELS = 20
CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
POST = "POST /channels/{channel_id}/messages"


class Waiter:
    """Futures resolved by the stand-in when a request with a given text arrives."""

    def __init__(self, standin: StandIn) -> None:
        self.pending: dict[str, asyncio.Future[float]] = {}
        standin.listeners.append(self._seen)

    def _seen(self, rec: Recorded) -> None:
        body = rec.json if isinstance(rec.json, dict) else {}
        text = body.get("content") or (body.get("data") or {}).get("content")
        future = self.pending.pop(str(text), None) if text else None
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    def expect(self, text: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.pending[text] = future
        return future


async def round_trips(
    waiter: Waiter, trials: int, send: Callable[[int], Awaitable[Any]], answer: Callable[[int], str]
) -> list[float]:
    out = []
    for n in range(trials):
        done = waiter.expect(answer(n))
        start = time.perf_counter()
        await send(n)
        out.append((await asyncio.wait_for(done, 10)) - start)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


async def measure(
    s: StandIn, waiter: Waiter, channel: Channel, user: User, label: str
) -> dict[str, float]:
    async def slash(n: int) -> None:
        await s.slash_command(
            channel, user, "echo", [{"type": 3, "name": "text", "value": f"s{n}"}]
        )

    async def text(n: int) -> None:
        await s.user_message(channel, user, f"ping {label}{n}")

    slash_rtt = await round_trips(waiter, TRIALS, slash, lambda n: f"s{n}")
    text_rtt = await round_trips(waiter, TRIALS, text, lambda n: f"pong {label}{n}")
    cpu_start = time.process_time()
    await round_trips(
        waiter, CPU_BATCH, lambda n: text(n + 10_000), lambda n: f"pong {label}{n + 10_000}"
    )
    cpu = (time.process_time() - cpu_start) / CPU_BATCH
    return {
        "slash_p50": pct(slash_rtt, 50),
        "slash_p99": pct(slash_rtt, 99),
        "text_p50": pct(text_rtt, 50),
        "text_p99": pct(text_rtt, 99),
        "cpu_ms": cpu * 1000,
    }


class BareClient(discord.Client):
    async def on_message(self, message: discord.Message) -> None:
        if message.content.startswith("ping "):
            await message.channel.send("pong " + message.content[5:], reference=message)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        data: Any = interaction.data or {}
        await interaction.response.send_message(str(data["options"][0]["value"]))


async def floor(s: StandIn, waiter: Waiter, channel: Channel, user: User) -> dict[str, float]:
    configure_urls(s.api_url, s.gateway_url)
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.message_content = True
    client = BareClient(intents=intents, guild_ready_timeout=0.05)
    await client.login(s.token)
    task = asyncio.create_task(client.connect())
    await client.wait_until_ready()
    try:
        return await measure(s, waiter, channel, user, "bare")
    finally:
        await client.close()
        await asyncio.gather(task, return_exceptions=True)


def settings_text(s: StandIn, guild_id: int, channels: list[Channel], tmp: Path) -> str:
    assocs = "\n".join(
        f'[[associations]]\nid = "a{n}"\nname = "Förening {n}"\nrooms = ["discord:{c.id}"]\n'
        for n, c in enumerate(channels)
    )
    return f"""
[bot]
database = "{tmp / "bench.db"}"
[discord]
token = "{s.token}"
guild_ids = [{guild_id}]
api_base_url = "{s.api_url}"
gateway_url = "{s.gateway_url}"
{assocs}
"""


def attributed_kib() -> float:
    gc.collect()  # what is still alive, not what awaits the cycle collector
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, f"{ROOT}/bot/*"),
            tracemalloc.Filter(True, f"{ROOT}/plugins/*"),
            tracemalloc.Filter(True, "*/site-packages/discord/*"),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename")) / 1024


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    s = StandIn()
    guild = s.add_guild()
    channels = [s.add_channel(guild, f"forening-{n}") for n in range(CHANNELS)]
    user = s.add_user("anna")
    # Discord's real buckets (5 posts in 5 s per channel) would time the waits, not us.
    s.limiter.limit = 1_000_000
    await s.start()
    waiter = Waiter(s)
    # The modules and the stand-in, shared by both measures, are out of the cycle
    # collector's full passes for both (our App freezes what its start built, as
    # `samverkan run` does; a bare client does not).
    gc.collect()
    gc.freeze()
    bases: list[dict[str, float]] = []
    ourses: list[dict[str, float]] = []
    try:
        for _ in range(ROUNDS):  # alternated: a drift of the machine meets both
            bases.append(await floor(s, waiter, channels[0], user))
            with tempfile.TemporaryDirectory() as tmp:
                settings = settings_from(
                    Path(tmp), settings_text(s, guild.id, channels, Path(tmp)), [HelpPlugin, Probe]
                )
                # As `samverkan run` does: what the start built is frozen out of the cycle
                # collector's passes (the process's shared part was frozen before).
                async with running_bot(settings, own_process=True):
                    ourses.append(await measure(s, waiter, channels[0], user, "bot"))
        with tempfile.TemporaryDirectory() as tmp:
            settings = settings_from(
                Path(tmp), settings_text(s, guild.id, channels, Path(tmp)), [HelpPlugin, Probe]
            )
            tracemalloc.start()
            async with running_bot(settings) as run:
                started = attributed_kib()
                for n in range(20):
                    for channel in channels:
                        await s.user_message(channel, user, f"hej {n}")
                await s.wait_for(lambda: run.adapter.inbound.handled >= 20 * CHANNELS, 60)
                await run.adapter.inbound.drain(30)
                await run.app.db.behind.flush()  # the positions written behind, too
                Probe.events.clear()  # the test plugin keeps every event; the bot does not
                after = attributed_kib()
                if "--top" in sys.argv:
                    snap = tracemalloc.take_snapshot()
                    snap = snap.filter_traces([tracemalloc.Filter(False, "*/tests/*")])
                    for stat in snap.statistics("lineno")[:12]:
                        print(stat)
            tracemalloc.stop()
    finally:
        await s.stop()

    print(
        f"Discord adapter against the stand-in ({TRIALS} trials each, CPU over {CPU_BATCH}"
        f" messages; {ROUNDS} rounds, medians; {FAST=})"
    )
    print(f"{'':28}{'bare discord.py':>18}{'our bot':>12}{'ratio':>8}   ratios by round")
    for key, label in (
        ("slash_p50", "slash command p50 (ms)"),
        ("slash_p99", "slash command p99 (ms)"),
        ("text_p50", "text message p50 (ms)"),
        ("text_p99", "text message p99 (ms)"),
        ("cpu_ms", "CPU per message (ms)"),
    ):
        base = statistics.median(b[key] for b in bases)
        ours = statistics.median(o[key] for o in ourses)
        ratios = [o[key] / b[key] for b, o in zip(bases, ourses, strict=True)]
        each = " ".join(f"{r:.2f}" for r in ratios)
        print(f"{label:28}{base:>18.2f}{ours:>12.2f}{statistics.median(ratios):>8.2f}   {each}")
    print(
        f"memory of bot + discord.py code in {CHANNELS} channels: {started:,.0f} KiB after start,"
    )
    print(f"  {after:,.0f} KiB after {20 * CHANNELS} handled messages (tracemalloc, by file)")


if __name__ == "__main__":
    asyncio.run(main())
