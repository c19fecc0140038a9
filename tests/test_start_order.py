"""The start's order: the outbox resumes while the platforms connect, so that one
platform slow to come up (a homeserver catching up a long outage) holds back its own
posts only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.app import App
from bot.core.messages import OutgoingMessage
from bot.core.platform import AdapterHost
from bot.core.refs import RoomRef
from tests.support import RecordingAdapter, settings_from

CONFIG = """
[bot]
[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "matrix:!falun:example.org"]
"""
CONSOLE = RoomRef("console", "falun")
MATRIX = RoomRef("matrix", "!falun:example.org")


@dataclass
class SlowStart(RecordingAdapter):
    """Connects only once the test lets it."""

    platform: str = "matrix"
    go: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, host: AdapterHost) -> None:
        await self.go.wait()
        await super().start(host)


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Shorter than the App's wait for each platform's first try (10 s): what is checked
    must happen before the start returns."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} in {timeout}s"
        await asyncio.sleep(0.01)


async def test_posts_go_out_while_another_platform_still_connects(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    # An earlier run left a post for each platform in the outbox (both held, then
    # stopped), as a killed bot leaves them.
    matrix_first = SlowStart()
    matrix_first.go.set()
    first = App(settings, [], adapters={"console": RecordingAdapter(), "matrix": matrix_first})
    await first.start()
    first.delivery.hold("console")
    first.delivery.hold("matrix")
    await first.delivery.send("earlier:console", CONSOLE, OutgoingMessage("från förra körningen"))
    await first.delivery.send("earlier:matrix", MATRIX, OutgoingMessage("till Matrix sedan"))
    await first.stop()

    console, matrix = RecordingAdapter(), SlowStart()
    app = App(settings, [], adapters={"console": console, "matrix": matrix})
    task = asyncio.create_task(app.run())
    try:
        # Matrix has not connected, and the App's start is still waiting for its first
        # try: the console's queued post has gone out all the same, and a new one too.
        await until(lambda: console.texts() == ["från förra körningen"], "queued post")
        await app.delivery.send("now:console", CONSOLE, OutgoingMessage("nu"))
        await app.delivery.send("now:matrix", MATRIX, OutgoingMessage("nu till Matrix"))
        await until(lambda: console.texts() == ["från förra körningen", "nu"], "new post")
        assert not app.starter.started("matrix")
        assert matrix.sent == []
        assert await app.delivery.status("earlier:matrix") == "pending"
        assert await app.delivery.status("now:matrix") == "pending"
        # Once Matrix is up, its posts follow, in the order they were queued.
        matrix.go.set()
        await until(
            lambda: matrix.texts() == ["till Matrix sedan", "nu till Matrix"], "Matrix's posts"
        )
        assert console.texts() == ["från förra körningen", "nu"]  # nothing twice
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 20)
