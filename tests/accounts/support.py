"""An App with recording Matrix and Discord adapters, the calendar and the accounts
plugins, a fake clock: commands arrive as each platform delivers them (Matrix as `!`
text, Discord as native commands), and replies are read from what each adapter got."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import App
from bot.core.clock import FakeClock
from bot.core.events import CommandInvoked, MessageReceived, Sender
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.fence import Fence
from bot.scheduling import ManualWaker
from plugins.accounts import AccountsPlugin
from plugins.calendar import CalendarPlugin
from tests.engines import Target
from tests.support import RecordingAdapter, Sent, settings_from

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}\b")
FALUN_M = RoomRef("matrix", "!falun:example.org")
FALUN_D = RoomRef("discord", "2001")
MORA_M = RoomRef("matrix", "!mora:example.org")  # an English-speaking association
ANNA_M = UserRef("matrix", "@anna:example.org")
ANNA_D = UserRef("discord", "1001")
CECILIA_D = UserRef("discord", "1003")

CONFIG = f"""
[bot]
organisers = ["{ANNA_M}"]

[[associations]]
id = "falun"
name = "Falun"
rooms = ["{FALUN_M}", "{FALUN_D}"]

[[associations]]
id = "mora"
name = "Mora"
language = "en"
rooms = ["{MORA_M}"]

[calendar]
digest = "0 8 1 1 *"
refresh = "1d"
"""

_ids = itertools.count(1)


def code_in(text: str) -> str:
    found = CODE.search(text)
    assert found is not None, text
    return found.group(0)


@dataclass
class Bot:
    app: App
    clock: FakeClock
    matrix: RecordingAdapter
    discord: RecordingAdapter

    @property
    def calendar(self) -> CalendarPlugin:
        return next(p for p in self.app.plugins if isinstance(p, CalendarPlugin))

    async def say(self, user: UserRef, room: RoomRef, text: str) -> Sent:
        """`user` writes `text` in a Matrix room; the bot's answer."""
        event_id = f"$e{next(_ids)}"
        event = MessageReceived(
            event_id=event_id,
            room=room,
            sender=Sender(user, user.id),
            at=self.clock.now(),
            ref=MessageRef(room, event_id),
            text=text,
        )
        return await self._answer(self.matrix, event)

    async def slash(self, user: UserRef, room: RoomRef, path: tuple[str, ...], **args: Any) -> Sent:
        """`user` invokes a slash command on Discord; the bot's answer."""
        event_id = f"i{next(_ids)}"
        event = CommandInvoked(
            event_id=event_id,
            room=room,
            sender=Sender(user, user.id),
            at=self.clock.now(),
            path=path,
            args=args,
            origin=MessageRef(room, f"interaction:{event_id}"),
        )
        return await self._answer(self.discord, event)

    async def _answer(self, adapter: RecordingAdapter, event: Any) -> Sent:
        before = len(adapter.sent)
        assert adapter.host is not None
        await adapter.host.handle(event)
        assert await self.app.delivery.wait_idle(5), "deliveries did not finish"
        (answer,) = adapter.sent[before:]
        self.clock.advance(timedelta(seconds=30))  # each step a little later
        return answer

    async def rsvp_counts(self) -> dict[str, int]:
        (o,) = await self.calendar.store.between(START, START + timedelta(days=30))
        return await self.calendar.store.counts(o.uid, o.occ)


async def start_bot(tmp_path: Path, database: Target | None = None) -> Bot:
    """`database`: the `db_target` fixture's, to run on both engines (else a file)."""
    settings = settings_from(tmp_path, CONFIG, [CalendarPlugin, AccountsPlugin], database)
    matrix = RecordingAdapter(platform="matrix")
    discord = RecordingAdapter(platform="discord", command_prefix=None)
    clock = FakeClock(START)
    app = App(
        settings,
        [CalendarPlugin, AccountsPlugin],
        adapters={"matrix": matrix, "discord": discord},
        clock=clock,
        waker=ManualWaker(),
        fence=Fence(grace=0),  # one instance on its database: no holder to wait out
    )
    await app.start()
    return Bot(app, clock, matrix, discord)
