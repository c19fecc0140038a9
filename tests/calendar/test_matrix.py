"""Against the real Synapse: a reminder arrives in every room of the association, and
RSVP reactions on it are counted, across rooms and people."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.app import App
from bot.core.clock import FakeClock
from bot.scheduling import ManualWaker
from plugins.calendar import CalendarPlugin
from tests.calendar.support import feed_toml, fixture_copy
from tests.matrix.botrun import config_text, running_app
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot
from tests.support import settings_from

START = datetime(2026, 11, 25, 12, tzinfo=UTC)
WEEK_BEFORE = datetime(2026, 12, 1, 17, tzinfo=UTC)  # single.ics: 8 December 18.00


async def test_reminders_reach_matrix_rooms_and_reactions_are_counted(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("calbot")
    alice = await users("alice")
    bob = await users("bob")
    first = await alice.create_room(invite=[bot.user_id, bob.user_id])
    second = await alice.create_room(invite=[bot.user_id, bob.user_id])
    await bob.join(first)
    await bob.join(second)
    feed = fixture_copy(tmp_path, "single.ics")
    text = config_text(synapse, bot, tmp_path, [first, second])
    text += '\n[calendar]\ndigest = "0 8 1 1 *"\nrefresh = "1d"\n' + feed_toml(feed, ["falun"])
    settings = settings_from(tmp_path, text, [CalendarPlugin])
    clock = FakeClock(START)
    app = App(settings, [CalendarPlugin], clock=clock, waker=ManualWaker(), delivery_backoff=0.2)
    async with running_app(app):

        def joined() -> bool:
            return all(bot.user_id in alice.client.rooms[r].users for r in (first, second))

        await alice.wait_until(joined)
        # Live through the days to the reminder, each wake-up on time.
        while (due := await app.scheduler.next_due()) is not None and due <= WEEK_BEFORE:
            clock.set(due)
            await app.scheduler.run_due()
        assert await app.scheduler.pending("calendar:reminder:") != []
        reminders = {}
        for room in (first, second):
            (event,) = await alice.wait_for(from_bot(bot.user_id, room))
            body = event["content"]["body"]
            assert "Påminnelse: Styrelsemöte" in body
            assert "tisdag 8 december kl. 18.00–20.00" in body
            reminders[room] = event["event_id"]
            # The answers are offered as reactions, placed by the bot: one tap answers.
            offered = await alice.wait_for(from_bot(bot.user_id, room, "m.reaction"), count=2)
            relations = [e["content"]["m.relates_to"] for e in offered]
            assert [r["key"] for r in relations] == ["👍", "👎"]
            assert {r["event_id"] for r in relations} == {event["event_id"]}

        def react(room: str, key: str) -> dict[str, object]:
            relates = {"rel_type": "m.annotation", "event_id": reminders[room], "key": key}
            return {"m.relates_to": relates}

        await alice.send(first, react(first, "👍"), "m.reaction")
        await bob.send(second, react(second, "👎"), "m.reaction")
        await bob.send(first, react(first, "🎉"), "m.reaction")  # not an answer
        store = next(p for p in app.plugins if isinstance(p, CalendarPlugin)).store
        deadline = time.monotonic() + 15
        counts: dict[str, int] = {}
        while counts != {"yes": 1, "no": 1} and time.monotonic() < deadline:
            counts = await store.counts("single-1@test.example", "20261208T170000Z")
            await asyncio.sleep(0.05)
        assert counts == {"yes": 1, "no": 1}
        # Bob changes his mind in the other room: still one answer per person.
        await bob.send(first, react(first, "👍"), "m.reaction")
        while counts != {"yes": 2} and time.monotonic() < deadline + 15:
            counts = await store.counts("single-1@test.example", "20261208T170000Z")
            await asyncio.sleep(0.05)
        assert counts == {"yes": 2}
        await alice.say(first, "!händelse lista")
        replies = await alice.wait_for(from_bot(bot.user_id, first), count=2)
        assert "Svar: 2 kommer, 0 kommer inte" in replies[-1]["content"]["body"]
