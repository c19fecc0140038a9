"""The updates tests' bot (tests/harness.py: a real App with the console adapter, a fake
clock and a manual waker: time moves only when a test says so). Feeds are built here as
RSS, Atom or JSON Feed text, so that every test states what its feed holds."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

from bot.settings import RootSettings, load_settings
from plugins.updates import UpdatesPlugin
from plugins.updates.refresh import Outcome
from plugins.updates.settings import UpdatesSettings
from tests.engines import Target
from tests.harness import Harness, database_of

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
    database: Target | None = None,
) -> RootSettings:
    """`database`: the `db_target` fixture's, to run on both engines (else a file)."""
    body = BASE_CONFIG.format(
        db=database_of(tmp_path, database),
        schedule=schedule,
        refresh=refresh,
        extra=textwrap.dedent(extra),
        allow='["127.0.0.0/8"]' if allow_loopback else "[]",
    )
    path = tmp_path / "config.toml"
    path.write_text(body + "\n" + feeds, encoding="utf-8")
    return load_settings(path, {"updates": (UpdatesSettings, UpdatesSettings)})


class Bot(Harness):
    plugins = (UpdatesPlugin,)
    settle_timeout = 10.0
    delivery_backoff = 0.05

    @property
    def plugin(self) -> UpdatesPlugin:
        return self.plugin_of(UpdatesPlugin)

    async def refresh(self) -> list[Outcome]:
        """Fetch every feed now, due or not (as if each interval had passed)."""
        for feed in await self.plugin.store.feeds():
            if feed.paused is None:
                await self.plugin.store.set_feed(feed.key, next_fetch=None)
        outcomes = await self.plugin.refresh_due()
        await self.settle()
        return outcomes
