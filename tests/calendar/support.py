"""A real App with the console adapter, a fake clock and a manual waker, for the
calendar tests: time moves only when a test says so, and due jobs run when it asks."""

from __future__ import annotations

import io
import itertools
import shutil
import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.adapters.console import ConsoleAdapter
from bot.app import App
from bot.core.clock import FakeClock
from bot.core.events import InboundEvent, MessageReceived, Sender
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.scheduling import ManualWaker
from bot.settings import RootSettings, load_settings
from plugins.calendar import CalendarPlugin
from plugins.calendar.settings import CalendarSettings

FIXTURES = Path(__file__).parent / "fixtures"

BASE_CONFIG = """
[bot]
database = "{db}"
organisers = ["console:anna"]
organiser_rooms = ["console:styrelse"]
late_grace = "1h"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "console:falun2"]

[[associations]]
id = "mora"
name = "Mora"
language = "en"
rooms = ["console:mora"]

[calendar]
reminders = [{reminders}]
digest = "{digest}"
refresh = "{refresh}"
{extra}
"""


def fixture_copy(tmp_path: Path, name: str) -> Path:
    """A copy a test may change, as organisers change their calendar."""
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return target


def feed_toml(url: str | Path, associations: list[str], **more: str) -> str:
    lines = ["[[calendar.feeds]]", f'url = "{url}"', f"associations = {associations!r}"]
    lines += [f'{key} = "{value}"' for key, value in more.items()]
    return "\n".join(lines).replace("'", '"') + "\n"


def make_settings(
    tmp_path: Path,
    feeds: str = "",
    *,
    digest: str = "0 8 1 1 *",
    refresh: str = "1d",
    reminders: str = '"7d", "1d", "1h"',
    extra: str = "",
    allow: tuple[str, ...] = (),
) -> RootSettings:
    """`allow`: networks for `[fetching] allow` (a feed on a loopback server needs it)."""
    body = BASE_CONFIG.format(
        db=tmp_path / "bot.db",
        digest=digest,
        refresh=refresh,
        reminders=reminders,
        extra=textwrap.dedent(extra),
    )
    body += "\n" + feeds
    if allow:
        body += "\n[fetching]\nallow = [" + ", ".join(f'"{net}"' for net in allow) + "]\n"
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path, {"calendar": (CalendarSettings, CalendarSettings)})


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
    waker: ManualWaker = field(default_factory=ManualWaker)
    app: App | None = None

    async def start(self) -> Bot:
        self.waker = ManualWaker()
        console = ConsoleAdapter("Samverkan", stdin=io.StringIO(), stdout=self.out)
        self.app = App(
            self.settings,
            [CalendarPlugin],
            adapters={"console": console},
            clock=self.clock,
            waker=self.waker,
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

    @property
    def plugin(self) -> CalendarPlugin:
        found = [p for p in self.running.plugins if isinstance(p, CalendarPlugin)]
        return found[0]

    async def settle(self) -> None:
        assert await self.running.delivery.wait_idle(5), "deliveries did not finish"

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

    async def refresh(self) -> None:
        await self.plugin.refresh_feeds()
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

    async def pending(self) -> dict[str, datetime]:
        return dict(await self.running.scheduler.pending("calendar:reminder:"))


def vevent(*lines: str) -> str:
    """One VEVENT of the given content lines."""
    return "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + "END:VEVENT\r\n"


def vcalendar(*parts: str, header: tuple[str, ...] = ()) -> str:
    """A calendar of the given components (text), with optional calendar properties."""
    head = "".join(
        f"{line}\r\n" for line in ("VERSION:2.0", "PRODID:-//Samverkan tests//SV", *header)
    )
    return "BEGIN:VCALENDAR\r\n" + head + "".join(parts) + "END:VCALENDAR\r\n"


def line_of(text: str, needle: str) -> int:
    """The line (from 1) on which the VEVENT holding the line `needle` begins."""
    lines = text.split("\r\n")
    at = next(i for i, line in enumerate(lines) if line == needle)
    return max(i for i in range(at + 1) if lines[i] == "BEGIN:VEVENT") + 1
