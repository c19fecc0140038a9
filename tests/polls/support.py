"""A real App for the polls tests: the console adapter (recording what it is handed, so
that attachments can be checked), a second platform where a test needs one, a fake
clock and a manual waker. Time moves only when a test says so."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bot.adapters.console import ConsoleAdapter
from bot.app import App
from bot.core.clock import FakeClock
from bot.core.events import InboundEvent, MessageReceived, PollVoteReceived, Sender
from bot.core.messages import OutgoingMessage
from bot.core.platform import Adapter
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.scheduling import ManualWaker
from bot.settings import RootSettings, load_settings
from plugins.polls import PollsPlugin
from plugins.polls.model import start_key
from plugins.polls.settings import PollsSettings
from tests.support import RecordingAdapter

CONFIG = """
[bot]
database = "{db}"
organisers = ["console:anna"]
organiser_rooms = ["console:styrelse", "console:dm"]
late_grace = "1h"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "console:falun2", "matrix:!falun:example.org"]

[[associations]]
id = "mora"
name = "Mora"
rooms = ["console:mora"]

[[associations]]
id = "leksand"
name = "Leksand"
language = "en"
rooms = ["console:leksand"]

[[associations]]
id = "rattvik"
name = "Rättvik"
rooms = ["console:rattvik"]

[polls]
default_duration = "3d"
settle = "5s"
{extra}
"""

ROOMS = ("falun", "falun2", "mora", "leksand", "rattvik", "styrelse", "dm")


def make_settings(tmp_path: Path, extra: str = "") -> RootSettings:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(db=tmp_path / "bot.db", extra=extra), encoding="utf-8")
    return load_settings(path, {"polls": (PollsSettings, PollsSettings)})


class RecordingConsole(ConsoleAdapter):
    """The console, keeping each message it posts; `members` answers `rooms_of_member`
    as Matrix does for a direct message's sender."""

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


_ids = itertools.count(1)


@dataclass
class Bot:
    settings: RootSettings
    clock: FakeClock
    out: io.StringIO = field(default_factory=io.StringIO)
    members: dict[UserRef, list[RoomRef]] = field(default_factory=dict)
    matrix: RecordingAdapter = field(default_factory=lambda: RecordingAdapter(platform="matrix"))
    app: App | None = None
    console: RecordingConsole | None = None

    async def start(self) -> Bot:
        self.console = RecordingConsole(self.out, self.members)
        adapters: dict[str, Adapter] = {"console": self.console, "matrix": self.matrix}
        self.app = App(
            self.settings, [PollsPlugin], adapters=adapters, clock=self.clock, waker=ManualWaker()
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

    @property
    def plugin(self) -> PollsPlugin:
        return next(p for p in self.running.plugins if isinstance(p, PollsPlugin))

    async def settle(self) -> None:
        assert await self.running.delivery.wait_idle(5), "deliveries did not finish"

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

    async def say(self, room: str, user: str, text: str) -> None:
        ref = RoomRef("console", room)
        event_id = f"t{next(_ids)}"
        await self.inject(
            MessageReceived(
                event_id=event_id,
                room=ref,
                sender=Sender(UserRef("console", user), user),
                at=self.clock.now(),
                ref=MessageRef(ref, event_id),
                text=text,
            )
        )

    async def inject(self, event: InboundEvent) -> None:
        await self.running.dispatcher.handle(event, "!")
        await self.settle()

    async def post_of(self, poll_id: int, room: str | RoomRef) -> MessageRef:
        ref = room if isinstance(room, RoomRef) else RoomRef("console", room)
        found = await self.running.delivery.message_ref(start_key(poll_id, ref))
        assert found is not None, f"poll {poll_id} was not posted in {ref}"
        return found

    async def native_vote(
        self,
        poll_id: int,
        room: str | RoomRef,
        user: str | UserRef,
        answers: Sequence[str],
        *,
        toggle: bool = False,
        origin: bool = False,
    ) -> None:
        """A vote as an adapter hands it over (a Matrix response, a Discord button)."""
        post = await self.post_of(poll_id, room)
        who = user if isinstance(user, UserRef) else UserRef("console", user)
        event_id = f"v{next(_ids)}"
        await self.inject(
            PollVoteReceived(
                event_id=event_id,
                room=post.room,
                sender=Sender(who, who.id),
                at=self.clock.now(),
                poll=post,
                answers=tuple(answers),
                toggle=toggle,
                origin=MessageRef(post.room, f"i{event_id}") if origin else None,
            )
        )

    def posts(self, room: str | None = None) -> list[Post]:
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
        assert self.console is not None
        return [m for r, m in self.console.messages if r == RoomRef("console", room)]


def poll_id_of(reply: str) -> int:
    """The id in `poll new`'s answer ("Omröstning 3 är skapad ...")."""
    return int(reply.split()[1])
