"""The IDENTIFY guard against the Discord stand-in: organisers told once a day however
often the bot starts, a re-identify past discord.identify_limit refused before it is
sent (the bot itself goes on), a start still at the limit not connecting at all, and a
crash loop of real `samverkan run` processes killed with SIGKILL stopped by the guard."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import discord
import pytest
from discord.gateway import KeepAliveHandler

from bot.adapters.discord.identify import warn_date
from bot.settings import RootSettings
from plugins.help import HelpPlugin
from tests.bridge.faults import BotProcess
from tests.discord.botrun import Probe, World, config_text, running_bot
from tests.discord.standin import StandIn
from tests.support import settings_from

LIMIT_LINE = "reach discord.identify_limit"
WARN_SV = "Boten har loggat in på Discord"


def guarded_config(
    world: World, tmp: Path, *, warn: int, limit: int, organisers: bool = True
) -> str:
    """The stand-in's configuration, organisers told in Falun's channel."""
    falun = world.channels[0]
    text = config_text(world, tmp)
    if organisers:
        text = text.replace("[bot]\n", f'[bot]\n    organiser_rooms = ["discord:{falun.id}"]\n', 1)
    text = text.replace(
        "[discord]\n", f"[discord]\n    identify_warn = {warn}\n    identify_limit = {limit}\n", 1
    )
    return text


def guarded(
    world: World, tmp: Path, *, warn: int, limit: int, organisers: bool = True
) -> RootSettings:
    text = guarded_config(world, tmp, warn=warn, limit=limit, organisers=organisers)
    return settings_from(tmp, text, [HelpPlugin, Probe])


def warnings_in(world: World) -> list[str]:
    falun = world.channels[0]
    texts = [str(m.data.get("content", "")) for m in world.standin.channel_messages(falun.id)]
    return [t for t in texts if WARN_SV in t]


def heartbeats(client: discord.Client) -> list[KeepAliveHandler]:
    """The client's gateway heartbeat threads still running."""
    return [
        t
        for t in threading.enumerate()
        if isinstance(t, KeepAliveHandler)
        and t.is_alive()
        and getattr(t.ws, "_connection", None) is client._connection
    ]


def identified(standin: StandIn, n: int) -> Callable[[], bool]:
    return lambda: standin.gateway.identifies == n


async def test_organisers_are_told_once_a_day_however_often_it_starts(
    world: World, tmp_path: Path
) -> None:
    settings = guarded(world, tmp_path, warn=2, limit=10)
    s = world.standin
    async with running_bot(settings):
        await asyncio.sleep(0.2)
        assert warnings_in(world) == []  # one login: below the warning
    for n in (2, 3):
        async with running_bot(settings) as run:
            await s.wait_for(lambda: len(warnings_in(world)) >= 1, what="the warning")
            await run.app.delivery.wait_idle(2)
            assert s.gateway.identifies == n
            # Keyed by the UTC day and the room: no instance or start posts it again.
            key = f"identify-warn:{warn_date(run.app.clock.now())}:discord:{world.channels[0].id}"
            assert await run.app.delivery.status(key) == "sent"
    # Told once, in Swedish, with the count of the start that crossed the threshold.
    assert len(warnings_in(world)) == 1
    assert "2 gånger" in warnings_in(world)[0] and "Vid 10" in warnings_in(world)[0]


async def test_without_organiser_rooms_the_warning_is_a_log_line(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = guarded(world, tmp_path, warn=1, limit=10, organisers=False)
    caplog.set_level(logging.WARNING)
    async with running_bot(settings) as run:
        await run.app.delivery.wait_idle(2)
    told = [r.getMessage() for r in caplog.records if r.name == "bot.notices"]
    assert [m for m in told if "logged in to Discord 1 times" in m and "organiser_rooms" in m]
    assert warnings_in(world) == []


async def test_past_the_limit_no_identify_is_sent_and_the_bot_goes_on(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = guarded(world, tmp_path, warn=1, limit=2)
    s = world.standin
    caplog.set_level(logging.ERROR, logger="bot.adapters.discord")
    async with running_bot(settings) as run:
        await s.gateway.invalidate_sessions(resumable=False)
        await s.wait_for(lambda: s.gateway.identifies == 2, what="a second identify")
        await s.wait_for(lambda: run.adapter.limited is None and run.adapter.connected())
        # The new session's READY waits out guild_ready_timeout (0.05 s) in discord.py.
        await asyncio.sleep(0.2)
        await s.gateway.invalidate_sessions(resumable=False)
        await s.wait_for(lambda: run.adapter.limited is not None, what="the guard")
        await asyncio.sleep(0.3)  # discord.py would have reconnected by now
        assert s.gateway.identifies == 2
        assert not run.adapter.connected()
        # The socket whose IDENTIFY was refused is closed, its heartbeat thread ended
        # (it heartbeated on, into the test's closed loop, at the end of the run).
        client = run.adapter.client
        assert client is not None
        await s.wait_for(
            lambda: not heartbeats(client), what="the refused socket's heartbeat to end"
        )
        health = run.adapter.health()
        assert health["connected"] == "no" and LIMIT_LINE in health["problem"]
        # The rest of the bot is still running.
        assert run.app.role == "active" and not run.app._stop.is_set()
    lines = [r for r in caplog.records if LIMIT_LINE in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and lines[0].exc_info is None
    assert "2 gateway logins" in lines[0].getMessage()
    assert "not connecting to Discord before" in lines[0].getMessage()

    # Started again while the day's logins are still at the limit: nothing at all.
    caplog.clear()
    logins_before = len(s.recorded("GET /users/@me"))
    async with running_bot(settings, expect_ready=False) as run:
        await s.wait_for(lambda: run.adapter.limited is not None, what="the refusal")
        assert LIMIT_LINE in run.adapter.health()["problem"]
    assert s.gateway.identifies == 2
    assert len(s.recorded("GET /users/@me")) == logins_before
    assert len([r for r in caplog.records if LIMIT_LINE in r.getMessage()]) == 1


async def test_a_crash_loop_of_killed_processes_is_stopped_by_the_guard(
    world: World, standin: StandIn, tmp_path: Path
) -> None:
    """warn 2, limit 4: started and killed with SIGKILL once connected, again and
    again; the fifth start refuses with the line and the stand-in sees four IDENTIFY."""
    config = tmp_path / "config.toml"
    text = guarded_config(world, tmp_path, warn=2, limit=4)
    config.write_text("[console]\nenabled = false\n" + text, encoding="utf-8")
    proc = BotProcess(config, tmp_path)
    try:
        for n in range(1, 5):
            proc.launch()
            await standin.wait_for(identified(standin, n), timeout=40, what=f"identify {n}")
            if n >= 2:
                # The warning of the start that crossed it is out before this kill.
                await standin.wait_for(lambda: warnings_in(world), timeout=20, what="warning")
            proc.kill()
            assert proc.process is not None
            proc.process.wait(10)
        for _ in range(2):  # the guard holds on every further start
            proc.launch()
            running = proc.process
            assert running is not None
            deadline = time.monotonic() + 40
            while LIMIT_LINE not in proc.log():
                assert running.poll() is None, proc.log()
                assert time.monotonic() < deadline, proc.log()[-3000:]
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert running.poll() is None  # down on Discord, the bot still runs
            proc.kill()
            running.wait(10)
        assert standin.gateway.identifies == 4
        line = next(x for x in proc.log().splitlines() if LIMIT_LINE in x)
        assert " ERROR " in line and "4 gateway logins" in line
        assert "not connecting to Discord before" in line
        assert len(warnings_in(world)) == 1
    finally:
        proc.kill()
        proc.stop()
