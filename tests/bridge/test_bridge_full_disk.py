"""The bridge on a full disk: the database on a small tmpfs that a ballast file fills in
the middle of a burst from two Matrix rooms and a Discord channel. While SQLite cannot
write, nothing is relayed and nothing is counted as handled; once the ballast is gone,
every message (those sent while the disk was full too) arrives in every other room of
the bridge once and in order, and the organisers are told once.

Needs root (the test mounts and unmounts the tmpfs), as CI has."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tests.bridge.faults import (
    Rooms,
    bridge_settings,
    check_arrivals,
    config_text,
    discord_copies,
    mark,
    marks_in,
    matrix_copies,
    matrix_rooms,
    running_bridge,
)
from tests.bridge.test_bridge_faults import discord_room, post_all, say_all, wait_for
from tests.discord.standin import StandIn
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser

log = logging.getLogger(__name__)

TMPFS_SIZE = "16m"
ORGANISERS = "styrelse"


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write zeros to `path` until the filesystem is full; the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as fh:
        while True:
            try:
                written += fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        # The last pages too: a small write may still fit where a chunk did not.
        while True:
            try:
                written += fh.write(b"\0" * 512)
            except OSError:
                break
    return written


async def test_full_disk_mid_burst_loses_and_doubles_nothing(
    synapse: Synapse, users: MakeUser, standin: StandIn, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice, bea = await users("alice"), await users("bea")
    rooms_mx = await matrix_rooms(alice, bot, [bea], ["falun", "mora"])
    channel, bertil, guild_id = discord_room(standin)
    rooms = Rooms(rooms_mx, channel, guild_id)
    with tmpfs(tmp_path / "disk", TMPFS_SIZE) as disk:
        text = config_text(synapse, bot, standin, rooms, tmp_path)
        # Only the database (and its heartbeat and lock) on the small disk; the Matrix
        # store stays where it was. Organisers hear of the outage in a console room.
        text = text.replace(
            f'database = "{tmp_path / "bot.db"}"', f'database = "{disk / "bot.db"}"'
        )
        text = (
            text.replace("[bot]\n", f'[bot]\norganiser_rooms = ["console:{ORGANISERS}"]\n', 1)
            + "\n[console]\nenabled = true\n"
        )
        settings = bridge_settings(text, tmp_path)
        before, during = 12, 10
        sources = {
            "falun": [mark("fa", i) for i in range(before + during)],
            "mora": [mark("mo", i) for i in range(before + during)],
            "discord": [mark("dc", i) for i in range(before + during)],
        }

        def arrived() -> dict[str, list[str]]:
            return {
                "falun": matrix_copies(alice, rooms_mx["falun"], bot.user_id),
                "mora": matrix_copies(alice, rooms_mx["mora"], bot.user_id),
                "discord": discord_copies(standin, channel.id),
            }

        async with running_bridge(settings) as run:
            assert run.console is not None
            console_log = run.console
            health = run.app.db.health
            for room in rooms_mx.values():
                await alice.wait_joined(room, bot.user_id)

            async def burst(first: int, last: int, pace: float) -> None:
                await asyncio.gather(
                    say_all(alice, rooms_mx["falun"], sources["falun"][first:last], pace),
                    say_all(bea, rooms_mx["mora"], sources["mora"][first:last], pace),
                    post_all(standin, channel, bertil, sources["discord"][first:last], pace),
                )

            # The ballast fills the disk while the first part of the burst is relayed.
            ballast = disk / "ballast"
            first_part = asyncio.create_task(burst(0, before, 0.05))
            await asyncio.sleep(0.8)
            filled = await asyncio.to_thread(fill, ballast)
            await first_part
            await wait_for(lambda: not health.writable, 20, "a write to fail on the full disk")
            # Sent while the disk is certainly full: none of them can be relayed yet.
            await burst(before, before + during, 0.02)
            await asyncio.sleep(5.0)  # several rounds of retries against the full disk
            assert not health.writable
            held = {room: list(got) for room, got in arrived().items()}
            late = {m for msgs in sources.values() for m in msgs[before:]}
            assert not any(m in late for got in held.values() for m in got), held
            relayed_before = sum(len(got) for got in held.values())

            ballast.unlink()
            log.info("ballast removed")
            expected = 2 * len(sources) * (before + during)
            await wait_for(
                lambda: sum(len(v) for v in arrived().values()) >= expected, 60, "every copy"
            )
            await wait_for(
                lambda: any(f"[#{ORGANISERS}]" in line for _, line in console_log.lines),
                30,
                "the organisers' notice",
            )
            await asyncio.sleep(1.5)  # a doubled copy or a second notice would show by now
            console = [line for _, line in console_log.lines]
    got = arrived()
    lost = doubled = 0
    for room, copies in got.items():
        wanted = [m for src, msgs in sources.items() if src != room for m in msgs]
        counts = Counter(copies)
        lost += sum(1 for m in wanted if counts[m] == 0)
        doubled += sum(n - 1 for n in counts.values() if n > 1)
    log.info(
        "full disk (%d bytes of ballast): %d copies relayed before it filled, "
        "%d expected in all; lost %d, doubled %d",
        filled, relayed_before, expected, lost, doubled,
    )  # fmt: skip
    assert (lost, doubled) == (0, 0)
    for room, copies in got.items():
        check_arrivals(room, copies, {s: m for s, m in sources.items() if s != room})
    notices = [line for line in console if line.startswith(f"[#{ORGANISERS}]")]
    assert len(notices) == 1, notices
    assert "Databasen gick inte att skriva" in notices[0]
    # The console room of the organisers is in no bridge: it got nothing else.
    assert not marks_in(notices)
