"""Helpers shared by the framework tests: a recording adapter and settings from text."""

from __future__ import annotations

import asyncio
import itertools
import json
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import plugin_settings_fields
from bot.core.clock import FakeClock
from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import OutgoingMessage
from bot.core.platform import AdapterHost
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.delivery import Delivery
from bot.plugin import Plugin
from bot.settings import RootSettings, load_settings
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.engines import open_database
from bot.storage.target import DatabaseUrl


def settings_from(
    tmp_path: Path,
    text: str,
    plugins: list[type[Plugin]] | None = None,
    database: Path | DatabaseUrl | None = None,
) -> RootSettings:
    """Settings from TOML text; the database goes under tmp_path unless the text says,
    or to `database` (the `db_target` fixture's, to run on both engines)."""
    body = textwrap.dedent(text)
    if "database" not in body:
        where = database.dsn() if isinstance(database, DatabaseUrl) else database
        line = f"database = {json.dumps(str(where or tmp_path / 'bot.db'))}"
        body = body.replace("[bot]", f"[bot]\n{line}", 1)
        if "[bot]" not in body:
            body = f"[bot]\n{line}\n" + body
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path, plugin_settings_fields(plugins or []))


@dataclass
class Sent:
    action: str
    room: RoomRef
    text: str
    token: str
    target: MessageRef | None = None
    message: OutgoingMessage | None = None


@dataclass
class RecordingAdapter:
    """An adapter that records every call; failures can be queued per call."""

    platform: str = "console"
    command_prefix: str | None = "!"
    message_limit: int = 4000
    organisers: set[UserRef] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    tokens_seen: set[str] = field(default_factory=set)
    host: AdapterHost | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, host: AdapterHost) -> None:
        self.host = host

    async def run(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        self._stop.set()

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        self._maybe_fail()
        self.tokens_seen.add(token)
        self.sent.append(Sent("send", room, message.text, token, message=message))
        return MessageRef(room, f"m{next(self._ids)}")

    async def edit(self, target: MessageRef, message: OutgoingMessage, token: str) -> None:
        self._maybe_fail()
        self.sent.append(Sent("edit", target.room, message.text, token, target, message))

    async def delete(self, target: MessageRef, token: str) -> None:
        self._maybe_fail()
        self.sent.append(Sent("delete", target.room, "", token, target))

    async def react(self, target: MessageRef, key: str, token: str) -> MessageRef | None:
        self._maybe_fail()
        self.sent.append(Sent("react", target.room, key, token, target))
        return MessageRef(target.room, f"r{next(self._ids)}")

    async def close_poll(
        self, target: MessageRef, message: OutgoingMessage, token: str
    ) -> MessageRef | None:
        self._maybe_fail()
        self.sent.append(Sent("close_poll", target.room, message.text, token, target, message))
        return None

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        return user in self.organisers

    def health(self) -> dict[str, str]:
        return {"sent": str(len(self.sent))}

    def texts(self, room: str | None = None) -> list[str]:
        return [s.text for s in self.sent if room is None or str(s.room) == room]


def transient(retry_after: float | None = None) -> TransientSendError:
    return TransientSendError("simulated outage", retry_after=retry_after)


def permanent() -> PermanentSendError:
    return PermanentSendError("simulated rejection")


async def serve_on_loopback(
    app: web.Application, **runner_options: Any
) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1 on a port the system picks; the runner (to clean up) and
    the port. Every server a test starts goes through here, so none binds elsewhere."""
    runner = web.AppRunner(app, handle_signals=False, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    return runner, port


async def open_delivery(
    target: Path | DatabaseUrl, adapter: RecordingAdapter
) -> tuple[Database, Delivery]:
    """A started Delivery on a database with the core schema, sending to `adapter` as the
    console, on a fake clock, with short backoffs."""
    db = await open_database(target)
    await core_migrations.upgrade(db)
    clock = FakeClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    delivery = Delivery(db, clock, {"console": adapter}, backoff_base=0.01, backoff_max=0.05)
    await delivery.start()
    return db, delivery


async def until(predicate: Any, timeout: float = 5.0, interval: float = 0.005) -> None:
    """Wait for a condition that other tasks bring about; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)
