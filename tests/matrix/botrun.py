"""Running the whole bot (bot.app.App) against the test Synapse."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from bot.adapters.matrix import MatrixAdapter
from bot.app import App
from bot.commanding import CommandCall
from bot.core.commands import Param
from bot.core.events import (
    InboundEvent,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PollVoteReceived,
    ReactionAdded,
    ReactionRemoved,
)
from bot.core.messages import OutgoingMessage, Poll, PollAnswer
from bot.core.permissions import Level
from bot.delivery import Target
from bot.plugin import Plugin, command, on
from bot.settings import RootSettings
from plugins.help import HelpPlugin
from tests.matrix.synapse import Account, Synapse
from tests.support import settings_from

PICKLE_KEY = "a-test-pickle-key-not-the-default"


class Recorder(Plugin):
    """A small test plugin: an organiser-only command, polls, and every event it sees."""

    name = "recorder"
    events: ClassVar[list[InboundEvent]] = []

    @command("guarded", sv="skyddad", help="recorder.guarded", level=Level.ORGANISER)
    async def guarded(self, call: CommandCall) -> None:
        await call.reply("granted")

    @command("ask", sv="fråga", help="recorder.ask", params=(Param("question"),))
    async def ask(self, call: CommandCall) -> None:
        poll = Poll(
            question=str(call.args["question"]),
            answers=(PollAnswer("yes", "Ja"), PollAnswer("no", "Nej")),
        )
        key = f"poll:{call.event_id}"
        await self.ctx.delivery.send(key, call.room, OutgoingMessage(text="", poll=poll))

    @command("close", sv="stäng", help="recorder.close", params=(Param("event"),))
    async def close(self, call: CommandCall) -> None:
        key = f"poll:{call.args['event']}"
        message = OutgoingMessage(text="Resultat: Ja 1, Nej 0")
        await self.ctx.delivery.close_poll(f"end:{key}", Target(key=key), call.room, message)

    @on(
        MessageReceived,
        MessageEdited,
        MessageDeleted,
        ReactionAdded,
        ReactionRemoved,
        PollVoteReceived,
    )
    async def record(self, event: InboundEvent) -> None:
        Recorder.events.append(event)


def config_text(
    synapse: Synapse,
    bot: Account,
    tmp: Path,
    rooms: Sequence[str],
    *,
    organisers: Sequence[str] = (),
) -> str:
    room_list = ", ".join(f'"matrix:{r}"' for r in rooms)
    org_list = ", ".join(f'"{o}"' for o in organisers)
    return f"""
[bot]
language = "sv"
database = "{tmp / "bot.db"}"
organisers = [{org_list}]

[matrix]
homeserver = "{synapse.url}"
user_id = "{bot.user_id}"
password = "{bot.password}"
store_path = "{tmp / "matrix-store"}"
pickle_key = "{PICKLE_KEY}"

[[associations]]
id = "falun"
name = "Falun"
rooms = [{room_list}]
"""


def bot_settings(
    synapse: Synapse,
    bot: Account,
    tmp: Path,
    rooms: Sequence[str],
    *,
    organisers: Sequence[str] = (),
) -> RootSettings:
    text = config_text(synapse, bot, tmp, rooms, organisers=organisers)
    return settings_from(tmp, text, [HelpPlugin, Recorder])


async def wait_until(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_bot(settings: RootSettings) -> AsyncIterator[App]:
    """The whole App with the help and recorder plugins, until the block ends."""
    Recorder.events.clear()
    async with running_app(App(settings, [HelpPlugin, Recorder], delivery_backoff=0.2)) as app:
        yield app


@contextlib.asynccontextmanager
async def running_app(app: App) -> AsyncIterator[App]:
    """Run `app` until the block ends, once its Matrix adapter is ready."""
    task = asyncio.create_task(app.run())

    def ready() -> bool:
        if task.done():
            task.result()  # raises what made the bot fail to start
        adapter = app.adapters.get("matrix")
        return isinstance(adapter, MatrixAdapter) and adapter.ready_seconds is not None

    await wait_until(ready, 30)
    try:
        yield app
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)


def matrix_adapter(app: App) -> MatrixAdapter:
    adapter = app.adapters["matrix"]
    assert isinstance(adapter, MatrixAdapter)
    return adapter
