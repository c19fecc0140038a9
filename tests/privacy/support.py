"""A real App with every built-in plugin for the privacy tests: the console (recording
what it posts and deletes), a recording Matrix stand-in bridged to it, a fake clock and a
manual waker. Time moves only when a test says so."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bot.app import App, read_settings
from bot.core.clock import FakeClock
from bot.core.events import InboundEvent, MessageReceived, Sender
from bot.core.platform import Adapter
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.plugin import Plugin
from bot.scheduling import ManualWaker
from bot.settings import RootSettings
from tests.polls.support import RecordingConsole
from tests.support import RecordingAdapter

CONFIG = """
[bot]
database = "{db}"
organisers = ["console:anna"]
late_grace = "1h"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "matrix:!falun:example.org"]

[[associations]]
id = "mora"
name = "Mora"
rooms = ["console:mora"]

[[bridges]]
id = "samverkan"
rooms = ["console:falun", "console:mora", "matrix:!falun:example.org"]

[polls]
default_duration = "3d"
{extra}
"""

START = datetime.fromisoformat("2025-03-03T09:00:00+00:00")
_ids = itertools.count(1)


def make_settings(tmp_path: Path, extra: str = "") -> tuple[RootSettings, list[type[Plugin]]]:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(db=tmp_path / "bot.db", extra=extra), encoding="utf-8")
    return read_settings(path)


@dataclass
class Bot:
    settings: RootSettings
    classes: list[type[Plugin]]
    clock: FakeClock = field(default_factory=lambda: FakeClock(START))
    out: io.StringIO = field(default_factory=io.StringIO)
    matrix: RecordingAdapter = field(default_factory=lambda: RecordingAdapter(platform="matrix"))
    app: App | None = None
    console: RecordingConsole | None = None

    async def start(self) -> Bot:
        self.console = RecordingConsole(self.out, {})
        adapters: dict[str, Adapter] = {"console": self.console, "matrix": self.matrix}
        self.app = App(
            self.settings, self.classes, adapters=adapters, clock=self.clock, waker=ManualWaker()
        )
        await self.app.start()
        await self.settle()
        return self

    async def stop(self) -> None:
        if self.app is not None:
            await self.settle()
            await self.app.stop()
            self.app = None

    @property
    def running(self) -> App:
        assert self.app is not None, "start() first"
        return self.app

    async def settle(self) -> None:
        assert await self.running.delivery.wait_idle(5), "deliveries did not finish"

    async def say(self, room: RoomRef | str, user: UserRef | str, text: str) -> MessageRef:
        where = room if isinstance(room, RoomRef) else RoomRef("console", room)
        who = user if isinstance(user, UserRef) else UserRef("console", user)
        event_id = f"t{next(_ids)}"
        ref = MessageRef(where, event_id)
        await self.inject(
            MessageReceived(
                event_id=event_id,
                room=where,
                sender=Sender(who, who.id),
                at=self.clock.now(),
                ref=ref,
                text=text,
            )
        )
        return ref

    async def inject(self, event: InboundEvent) -> None:
        await self.running.dispatcher.handle(event, "!")
        await self.settle()

    async def advance(self, delta: timedelta) -> None:
        when = self.clock.now() + delta
        while True:
            due = await self.running.scheduler.next_due()
            if due is None or due > when:
                break
            self.clock.set(max(due, self.clock.now()))
            await self.running.scheduler.run_due()
            await self.settle()
        self.clock.set(when)
        await self.running.scheduler.run_due()
        await self.settle()

    def texts(self, room: str) -> list[str]:
        assert self.console is not None
        return [m.text for r, m in self.console.messages if r == RoomRef("console", room)]

    def last(self, room: str) -> str:
        texts = self.texts(room)
        assert texts, f"nothing was posted in #{room}"
        return texts[-1]


def number_in(text: str, after: str) -> int:
    """The first whole number in `text` after the word `after`."""
    rest = text.split(after, 1)[1]
    digits = ""
    for ch in rest:
        if ch.isdigit():
            digits += ch
        elif digits:
            break
    return int(digits)
