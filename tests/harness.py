"""The one in-process bot of the feature tests: a real App with the console adapter
(recording what it is handed), a recording Matrix stand-in where a feature needs a second
platform, a fake clock and a manual waker. Time moves only when a test says so, and due
jobs run when it asks.

The database is where the test says (`database_of`): a SQLite file under tmp_path by
default, or the `db_target` fixture's, which runs the test on SQLite and on a
PostgreSQL database of its own (tests/engines.py). Each feature's support.py subclasses
`Harness` with its plugins, its configuration and its own helpers.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar, Self, TypeVar

from bot.adapters.console import ConsoleAdapter
from bot.app import App
from bot.core.clock import FakeClock
from bot.core.events import InboundEvent, MessageReceived, Sender
from bot.core.messages import OutgoingMessage
from bot.core.platform import Adapter
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.fence import Fence
from bot.plugin import Plugin
from bot.scheduling import ManualWaker
from bot.settings import RootSettings
from bot.storage.target import DatabaseUrl
from tests.engines import Target
from tests.support import RecordingAdapter

P = TypeVar("P", bound=Plugin)
_ids = itertools.count(1)


def database_of(tmp_path: Path, database: Target | None = None) -> str:
    """`bot.database` as written in a test's TOML file: `database` (a file, or a
    PostgreSQL URL with whatever password it carries), else bot.db under tmp_path."""
    if isinstance(database, DatabaseUrl):
        return database.dsn()
    return str(database if database is not None else tmp_path / "bot.db")


class RecordingConsole(ConsoleAdapter):
    """The console, keeping each message it posts and each it deletes; `members`
    answers `rooms_of_member` as Matrix does for a direct message's sender."""

    def __init__(self, out: io.StringIO, members: dict[UserRef, list[RoomRef]]) -> None:
        super().__init__("Samverkan", stdin=io.StringIO(), stdout=out)
        self.messages: list[tuple[RoomRef, OutgoingMessage]] = []
        self.deleted: list[MessageRef] = []
        self.members = members

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        ref = await super().send(room, message, token)
        self.messages.append((room, message))
        return ref

    async def delete(self, target: MessageRef, token: str) -> None:
        await super().delete(target, token)
        self.deleted.append(target)

    async def rooms_of_member(self, user: UserRef) -> list[RoomRef]:
        return list(self.members.get(user, []))


@dataclass
class Post:
    room: str
    text: str


class Harness:
    """A bot on `settings` with `plugins`, on `clock`. `start()` again after `stop()` is
    a restart on the same database; `restart()` also forgets what was printed."""

    plugins: ClassVar[Sequence[type[Plugin]]] = ()
    with_matrix: ClassVar[bool] = False  # a recording Matrix adapter beside the console
    settle_timeout: ClassVar[float] = 5.0
    delivery_backoff: ClassVar[float] = 1.0

    def __init__(
        self,
        settings: RootSettings,
        clock: FakeClock,
        plugins: Sequence[type[Plugin]] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.classes = list(plugins if plugins is not None else self.plugins)
        self.out = io.StringIO()
        self.members: dict[UserRef, list[RoomRef]] = {}
        self.matrix = RecordingAdapter(platform="matrix")
        self.waker = ManualWaker()
        self.app: App | None = None
        self.console: RecordingConsole | None = None

    async def start(self) -> Self:
        self.waker = ManualWaker()
        self.console = RecordingConsole(self.out, self.members)
        adapters: dict[str, Adapter] = {"console": self.console}
        if self.with_matrix:
            adapters["matrix"] = self.matrix
        self.app = App(
            self.settings,
            self.classes,
            adapters=adapters,
            clock=self.clock,
            waker=self.waker,
            delivery_backoff=self.delivery_backoff,
            # One instance on a database of its own: no earlier holder of the lock to
            # wait out (bot.fence), which would hold a PostgreSQL run's posts 4 s.
            fence=Fence(grace=0),
        )
        await self.app.start()
        await self.settle()
        return self

    async def stop(self) -> None:
        if self.app is not None:
            await self.settle()
            await self.app.stop()
            self.app = None

    async def restart(self) -> None:
        await self.stop()
        self.out = io.StringIO()
        await self.start()

    @property
    def running(self) -> App:
        assert self.app is not None, "start() first"
        return self.app

    def plugin_of(self, kind: type[P]) -> P:
        return next(p for p in self.running.plugins if isinstance(p, kind))

    async def settle(self) -> None:
        assert await self.running.delivery.wait_idle(self.settle_timeout), (
            "deliveries did not finish"
        )

    async def advance(self, delta: timedelta) -> None:
        await self.advance_to(self.clock.now() + delta)

    async def advance_to(self, when: datetime) -> None:
        """Move the clock as a running bot lives through it: every wake-up on time."""
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

    async def say(self, room: RoomRef | str, user: UserRef | str, text: str) -> MessageRef:
        """`user` writes `text` in `room` (names are the console's); the message's ref."""
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

    def posts(self, room: str | None = None) -> list[Post]:
        """What the console printed (since the last `restart`), in order."""
        found: list[Post] = []
        for line in self.out.getvalue().splitlines():
            if line.startswith("[#"):
                name, _, rest = line[2:].partition("] ")
                found.append(Post(name, rest.partition(": ")[2]))
            elif line.startswith("  ") and found:
                found[-1].text += "\n" + line[2:]
        return [p for p in found if room is None or p.room == room]

    def texts(self, room: str | None = None) -> list[str]:
        return [p.text for p in self.posts(room)]

    def last(self, room: str) -> str:
        texts = self.texts(room)
        assert texts, f"nothing was posted in #{room}"
        return texts[-1]

    def messages(self, room: str) -> list[OutgoingMessage]:
        """What the console was handed for `room` (attachments included)."""
        assert self.console is not None
        return [m for r, m in self.console.messages if r == RoomRef("console", room)]
