"""The bot stopped by SIGTERM and SIGHUP in the middle of a bridged burst, again and
again, and started each time: every stop is graceful (the message in hand is finished,
exit code 0), and after the last start every message is in every other room exactly
once, each source's in its order."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

from tests.bridge.faults import (
    WEBHOOK_POST,
    BotProcess,
    Rooms,
    check_arrivals,
    config_text,
    discord_copies,
    mark,
    matrix_copies,
    matrix_rooms,
)
from tests.bridge.test_bridge_faults import discord_room, post_all, say_all, wait_for
from tests.discord.standin import Recorded, StandIn
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser

STOPS = (signal.SIGTERM, signal.SIGHUP, signal.SIGTERM, signal.SIGHUP)


async def test_sigterm_and_sighup_mid_burst_lose_and_double_nothing(
    synapse: Synapse, users: MakeUser, standin: StandIn, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice, bea = await users("alice"), await users("bea")
    rooms_mx = await matrix_rooms(alice, bot, [bea], ["falun", "mora"])
    channel, bertil, guild_id = discord_room(standin)
    rooms = Rooms(rooms_mx, channel, guild_id)
    config = tmp_path / "config.toml"
    config.write_text(config_text(synapse, bot, standin, rooms, tmp_path), encoding="utf-8")
    proc = BotProcess(config, tmp_path)

    n = 40
    sources = {
        "falun": [mark("fa", i) for i in range(n)],
        "mora": [mark("mo", i) for i in range(n)],
        "discord": [mark("dc", i) for i in range(n)],
    }
    # Each run is stopped the moment Discord has stored its third webhook post: in the
    # middle of relaying, with copies of one message still on the way to the other
    # rooms. The burst is paced to outlast every run.
    stop_after = 3
    stopped = [asyncio.Event() for _ in STOPS]
    posts_by_run: Counter[int] = Counter()

    def on_webhook(rec: Recorded) -> None:
        if rec.route != WEBHOOK_POST or rec.status != 200:
            return
        run = proc.runs - 1
        posts_by_run[run] += 1
        if run < len(STOPS) and posts_by_run[run] == stop_after:
            assert proc.process is not None
            proc.process.send_signal(STOPS[run])
            stopped[run].set()

    standin.listeners.append(on_webhook)

    def arrived() -> dict[str, list[str]]:
        return {
            "falun": matrix_copies(alice, rooms_mx["falun"], bot.user_id),
            "mora": matrix_copies(alice, rooms_mx["mora"], bot.user_id),
            "discord": discord_copies(standin, channel.id),
        }

    exits: list[int | None] = []
    proc.launch()
    try:
        await proc.ready()
        for room in rooms_mx.values():
            await alice.wait_joined(room, bot.user_id)
        burst = asyncio.gather(
            say_all(alice, rooms_mx["falun"], sources["falun"], 0.35),
            say_all(bea, rooms_mx["mora"], sources["mora"], 0.35),
            post_all(standin, channel, bertil, sources["discord"], 0.35),
        )
        for i, sig in enumerate(STOPS):
            await asyncio.wait_for(stopped[i].wait(), 90)
            assert proc.process is not None
            exits.append(await asyncio.to_thread(proc.process.wait, 40))
            assert f"stopping on {sig.name}" in proc.log(), proc.log()[-2000:]
            proc.launch()
            await proc.ready()
        await burst
        expected = 2 * 3 * n
        await wait_for(
            lambda: sum(len(v) for v in arrived().values()) >= expected, 90, "every copy"
        )
        await asyncio.sleep(1.5)  # a doubled copy would have shown up by now
    finally:
        proc.stop()
    assert exits == [0] * len(STOPS), [proc.log(r)[-1500:] for r in range(1, len(STOPS) + 1)]
    for run in range(1, len(STOPS) + 1):
        assert "Traceback" not in proc.log(run), proc.log(run)[-3000:]
    got = arrived()
    for room, copies in got.items():
        check_arrivals(room, copies, {s: m for s, m in sources.items() if s != room})
    assert len([r for r in standin.recorded(WEBHOOK_POST) if r.status == 200]) == 2 * n
