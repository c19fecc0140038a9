"""Connections that drop, sessions that cannot be resumed, restarts, refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from tests.discord.botrun import Probe, World, messages_received, running_bot, settings_for

POST = "POST /channels/{channel_id}/messages"


def _texts() -> list[str]:
    return [m.text for m in messages_received()]


async def test_dropped_connection_resumed_with_replay(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path)) as run:
        await s.user_message(falun, world.bertil, "före")
        await s.wait_for(lambda: _texts() == ["före"], what="the first message")
        await s.gateway.drop_connections()
        # Sent while the bot is away: replayed on RESUME, handled once.
        await s.user_message(falun, world.bertil, "under")
        await s.wait_for(lambda: s.gateway.resumes == 1, what="a resume")
        await s.user_message(falun, world.bertil, "efter")
        await s.wait_for(lambda: len(_texts()) == 3, what="all three")
        await run.adapter.inbound.drain()
        assert _texts() == ["före", "under", "efter"]
        assert s.gateway.identifies == 1
        resume = [f for f in s.frames if f.direction == "in" and f.op == 6]
        assert len(resume) == 1 and resume[0].d["session_id"]


async def test_invalid_session_reidentifies_and_catches_up(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path)) as run:
        await s.user_message(falun, world.bertil, "ett")
        await s.wait_for(lambda: _texts() == ["ett"])
        await s.gateway.invalidate_sessions(resumable=False)
        # No session gets this one: only the channel's history has it.
        await s.user_message(falun, world.bertil, "två")
        await s.wait_for(lambda: s.gateway.identifies == 2, what="a second IDENTIFY")
        await s.wait_for(lambda: len(_texts()) == 2, what="the missed message")
        await s.user_message(falun, world.bertil, "tre")
        await s.wait_for(lambda: len(_texts()) == 3)
        await run.adapter.inbound.drain()
        assert _texts() == ["ett", "två", "tre"]
        assert run.adapter.receiver.ready_count == 2


async def test_restart_catches_up_on_history_without_repeats(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun, mora, _ = world.channels
    settings = settings_for(world, tmp_path)
    Probe.events.clear()
    async with running_bot(settings) as run:
        for text in ("a1", "a2"):
            await s.user_message(falun, world.bertil, text)
        await s.user_message(mora, world.anna, "b1")
        await s.wait_for(lambda: len(_texts()) == 3)
        await run.adapter.inbound.drain()
    # Posted while the bot is down, in both channels.
    for text in ("a3", "a4"):
        await s.user_message(falun, world.bertil, text)
    await s.user_message(mora, world.anna, "b2")
    async with running_bot(settings) as run:
        await s.wait_for(lambda: len(_texts()) == 6, what="the catch-up")
        await s.user_message(falun, world.bertil, "a5")
        await s.wait_for(lambda: len(_texts()) == 7)
        await run.adapter.inbound.drain()
        # a3, a4 and b2 came from history (a5 too, if it landed while the catch-up
        # was still reading).
        assert run.adapter.inbound.caught_up in (3, 4)
    texts = _texts()
    assert sorted(texts) == ["a1", "a2", "a3", "a4", "a5", "b1", "b2"]
    assert [t for t in texts if t.startswith("a")] == ["a1", "a2", "a3", "a4", "a5"]
    history = [r for r in s.recorded("GET /channels/{channel_id}/messages")]
    assert history and all("after" in r.query for r in history)


async def test_missing_intent_reported_without_traceback(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = world.standin
    s.gateway.disallowed_intents = 1 << 15  # message content
    caplog.set_level(logging.ERROR)
    async with running_bot(settings_for(world, tmp_path), expect_ready=False) as run:
        await s.wait_for(lambda: run.adapter.problem, what="the problem reported")
        assert run.adapter.health()["problem"] == "the Message Content intent is not enabled"
    [record] = [r for r in caplog.records if "4014" in r.getMessage()]
    assert "Message Content Intent" in record.getMessage() and record.exc_info is None


async def test_refusal_storm_stops_calling(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    async with running_bot(settings_for(world, tmp_path)) as run:
        run.adapter.brake.limit = 3
        s.inject(POST, status=403, code=50013, count=100)
        for n in range(6):
            await run.app.delivery.send(f"refused:{n}", room, OutgoingMessage(f"nr {n}"))
        await s.wait_for(lambda: len(s.recorded(POST)) >= 3)
        await run.app.delivery.wait_idle(2)
        statuses = {await run.app.delivery.status(f"refused:{n}") for n in range(6)}
        assert len(s.recorded(POST)) == 3  # then the brake holds every call
        assert statuses == {"failed", "pending"}


async def test_crash_loop_waits_before_identifying_again(world: World, tmp_path: Path) -> None:
    settings = settings_for(world, tmp_path)
    async with running_bot(settings) as run:
        guard = run.adapter.guard
        assert await guard.startup_delay() == 0.0
        for _ in range(guard.burst + 1):
            await guard.take()  # as if the process had restarted that often
        # Past the burst each start waits longer, up to the cap.
        assert await guard.startup_delay() == guard.backoff * 2**2
        assert world.standin.gateway.identifies == 1


async def test_retried_send_with_same_nonce_posts_once(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    room = RoomRef("discord", str(falun.id))
    async with running_bot(settings_for(world, tmp_path)) as run:
        message = OutgoingMessage("bara en gång")
        first = await run.adapter.send(room, message, "0123456789abcdef01234567")
        again = await run.adapter.send(room, message, "0123456789abcdef01234567")
        assert first == again
        assert [m.data["content"] for m in s.channel_messages(falun.id)] == ["bara en gång"]


async def test_reconnect_request_resumes(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path)) as run:
        await s.gateway.send_reconnect()  # op 7
        await s.wait_for(lambda: s.gateway.resumes == 1, what="a resume after op 7")
        await s.user_message(falun, world.bertil, "efter op 7")
        await s.wait_for(lambda: _texts() == ["efter op 7"])
        assert s.gateway.identifies == 1 and run.adapter.receiver.ready_count == 1


async def test_live_message_right_after_ready_waits_for_the_catch_up(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    falun = world.channels[0]
    settings = settings_for(world, tmp_path)
    Probe.events.clear()
    async with running_bot(settings):
        await s.user_message(falun, world.bertil, "1")
        await s.wait_for(lambda: _texts() == ["1"])
    await s.user_message(falun, world.bertil, "2", dispatch=False)  # while down
    live = await s.user_message(falun, world.bertil, "3", dispatch=False)
    s.gateway.after_ready.append(("MESSAGE_CREATE", live.data))
    async with running_bot(settings) as run:
        await s.wait_for(lambda: len(_texts()) == 3, what="all three")
        await run.adapter.inbound.drain()
    assert _texts() == ["1", "2", "3"]
