"""A real App with the updates plugin, the console adapter (or a recording one), a fake
clock and a manual waker: time moves only when a test says so. Feeds are built here as
RSS, Atom or JSON Feed text, so that every test states what its feed holds."""

from __future__ import annotations

import io
import itertools
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

from bot.adapters.console import ConsoleAdapter
from bot.app import App
from bot.core.clock import FakeClock
from bot.core.events import MessageReceived, Sender
from bot.core.platform import Adapter
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.scheduling import ManualWaker
from bot.settings import RootSettings, load_settings
from plugins.updates import UpdatesPlugin
from plugins.updates.refresh import Outcome
from plugins.updates.settings import UpdatesSettings

BASE_CONFIG = """
[bot]
database = "{db}"
organisers = ["console:anna"]
organiser_rooms = ["console:styrelse"]
late_grace = "1h"

[fetching]
allow = {allow}

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "console:falun2"]

[[associations]]
id = "mora"
name = "Mora"
language = "en"
rooms = ["console:mora"]

[updates]
schedule = "{schedule}"
refresh = "{refresh}"
{extra}
"""


@dataclass(frozen=True)
class Item:
    """One entry of a test feed."""

    title: str
    guid: str | None = None
    link: str | None = None
    summary: str = ""
    published: datetime | None = None


def rss(items: Sequence[Item], title: str = "Regionen") -> bytes:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://region.example/</link>",
    ]
    for item in items:
        out.append("<item>")
        out.append(f"<title>{escape(item.title)}</title>")
        if item.guid is not None:
            out.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.link is not None:
            out.append(f"<link>{escape(item.link)}</link>")
        if item.summary:
            out.append(f"<description>{escape(item.summary)}</description>")
        if item.published is not None:
            out.append(f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate>")
        out.append("</item>")
    out.append("</channel></rss>")
    return "\n".join(out).encode()


def atom(items: Sequence[Item], title: str = "Regionen") -> bytes:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title><id>urn:test:feed</id>",
        "<updated>2026-11-01T00:00:00Z</updated>",
    ]
    for item in items:
        out.append("<entry>")
        out.append(f"<title>{escape(item.title)}</title>")
        if item.guid is not None:
            out.append(f"<id>{escape(item.guid)}</id>")
        if item.link is not None:
            out.append(f'<link href="{escape(item.link)}"/>')
        if item.summary:
            out.append(f'<summary type="html">{escape(item.summary)}</summary>')
        if item.published is not None:
            out.append(f"<updated>{item.published.isoformat()}</updated>")
        out.append("</entry>")
    out.append("</feed>")
    return "\n".join(out).encode()


def json_feed(items: Sequence[Item], title: str = "Regionen") -> bytes:
    data = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "items": [
            {
                k: v
                for k, v in {
                    "id": item.guid,
                    "url": item.link,
                    "title": item.title,
                    "content_html": item.summary or None,
                    "date_published": item.published.isoformat() if item.published else None,
                }.items()
                if v is not None
            }
            for item in items
        ],
    }
    return json.dumps(data, ensure_ascii=False).encode()


def feed_toml(url: str | Path, associations: Sequence[str] = ("*",), **more: object) -> str:
    lines = ["[[updates.feeds]]", f"url = {json.dumps(str(url))}"]
    lines.append(f"associations = {json.dumps(list(associations))}")
    lines += [f"{key} = {json.dumps(value)}" for key, value in more.items()]
    return "\n".join(lines) + "\n"


def make_settings(
    tmp_path: Path,
    feeds: str = "",
    *,
    schedule: str = "0 8 * * mon-fri",
    refresh: str = "15m",
    extra: str = "",
    allow_loopback: bool = True,
) -> RootSettings:
    body = BASE_CONFIG.format(
        db=tmp_path / "bot.db",
        schedule=schedule,
        refresh=refresh,
        extra=textwrap.dedent(extra),
        allow='["127.0.0.0/8"]' if allow_loopback else "[]",
    )
    path = tmp_path / "config.toml"
    path.write_text(body + "\n" + feeds, encoding="utf-8")
    return load_settings(path, {"updates": (UpdatesSettings, UpdatesSettings)})


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
    adapter: Adapter | None = None
    waker: ManualWaker = field(default_factory=ManualWaker)
    app: App | None = None

    async def start(self) -> Bot:
        self.waker = ManualWaker()
        adapter = self.adapter or ConsoleAdapter("Samverkan", stdin=io.StringIO(), stdout=self.out)
        self.app = App(
            self.settings,
            [UpdatesPlugin],
            adapters={adapter.platform: adapter},
            clock=self.clock,
            waker=self.waker,
            delivery_backoff=0.05,
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
    def plugin(self) -> UpdatesPlugin:
        return next(p for p in self.running.plugins if isinstance(p, UpdatesPlugin))

    async def settle(self) -> None:
        assert await self.running.delivery.wait_idle(10), "deliveries did not finish"

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

    async def refresh(self) -> list[Outcome]:
        """Fetch every feed now, due or not (as if each interval had passed)."""
        for feed in await self.plugin.store.feeds():
            if feed.paused is None:
                await self.plugin.store.set_feed(feed.key, next_fetch=None)
        outcomes = await self.plugin.refresh_due()
        await self.settle()
        return outcomes

    async def say(self, room: str, user: str, text: str) -> None:
        ref = RoomRef("console", room)
        event_id = f"t{next(_ids)}"
        event = MessageReceived(
            event_id=event_id,
            room=ref,
            sender=Sender(UserRef("console", user), user),
            at=self.clock.now(),
            ref=MessageRef(ref, event_id),
            text=text,
        )
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
