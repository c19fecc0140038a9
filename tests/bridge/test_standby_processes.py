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
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from tests.bridge.faults import (
    mark,
    marks_in,
)
from tests.bridge.standby import (
    REMINDER,
    REMINDER_OFFSET,
    TAKEOVER_BOUND,
    TITLE,
    ZONE,
    all_relayed,
    backends_of,
    burst,
    check_all,
    database_name,
    pair,
    sources_of,
    started,
    wait_role,
)
from tests.bridge.test_bridge_faults import wait_for
from tests.discord.standin import StandIn
from tests.engines import SERVER
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot

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
