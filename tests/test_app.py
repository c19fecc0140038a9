"""The framework end to end in one process: commands, permissions, plugins, reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import App
from bot.commanding import CommandCall
from bot.core.clock import FakeClock
from bot.core.commands import Kind, Param
from bot.core.events import MessageReceived, ReactionAdded, Sender
from bot.core.messages import OutgoingMessage
from bot.core.permissions import Level
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.plugin import Plugin, command, job, on
from bot.scheduling import JobRun, ManualWaker
from plugins.help import HelpPlugin
from tests.support import RecordingAdapter, settings_from

CONFIG = """
[bot]
organisers = ["console:anna"]
organiser_rooms = ["console:styrelse"]

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "console:styrelse"]

[[associations]]
id = "mora"
name = "Mora"
language = "en"
rooms = ["console:mora"]
"""
START = datetime(2026, 12, 1, 9, tzinfo=UTC)


class Demo(Plugin):
    name = "demo"
    seen: list[str]

    async def on_start(self) -> None:
        self.seen = []

    @command("echo", sv="eko", help="help.help", params=(Param("times", Kind.INTEGER),))
    async def echo(self, call: CommandCall) -> None:
        await call.reply(" ".join(["eko"] * call.args["times"]))

    @command("secret", sv="hemlig", help="help.help", level=Level.ORGANISER)
    async def secret(self, call: CommandCall) -> None:
        await call.reply("organiser ok")

    @command("crash", sv="krasch", help="help.help")
    async def crash(self, call: CommandCall) -> None:
        raise RuntimeError("a bug of ours")

    @on(MessageReceived, ReactionAdded)
    async def watch(self, event: MessageReceived | ReactionAdded) -> None:
        self.seen.append(type(event).__name__)
        if isinstance(event, MessageReceived) and event.text == "boom":
            raise RuntimeError("handler bug")

    @job("tick")
    async def tick(self, run: JobRun) -> None:
        await self.ctx.delivery.send(
            f"tick:{run.key}", RoomRef("console", "falun"), _msg(f"tick late={run.late}")
        )


def _msg(text: str) -> OutgoingMessage:
    return OutgoingMessage(text)


counter = iter(range(10**6))


def message(room: str, user: str, text: str) -> MessageReceived:
    n = next(counter)
    r = RoomRef("console", room)
    return MessageReceived(
        event_id=f"e{n}",
        room=r,
        sender=Sender(UserRef("console", user), user),
        at=START,
        ref=MessageRef(r, f"e{n}"),
        text=text,
    )


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = settings_from(tmp_path, CONFIG)
    adapter = RecordingAdapter()
    app = App(
        settings,
        [HelpPlugin, Demo],
        adapters={"console": adapter},
        clock=FakeClock(START),
        waker=ManualWaker(),
        delivery_backoff=0.01,
    )
    await app.start()
    yield app
    await app.stop()


def adapter_of(app: App) -> RecordingAdapter:
    adapter = app.adapters["console"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter


async def say(app: App, room: str, user: str, text: str) -> list[str]:
    adapter = adapter_of(app)
    before = len(adapter.sent)
    assert adapter.host is not None
    await adapter.host.handle(message(room, user, text))
    await app.delivery.wait_idle(5)
    return [s.text for s in adapter.sent[before:]]


async def test_commands_in_both_languages(app: App) -> None:
    assert await say(app, "falun", "bo", "!eko 2") == ["eko eko"]
    assert await say(app, "mora", "bo", "!echo 1") == ["eko"]
    [sv] = await say(app, "falun", "bo", "!eko två")
    assert "heltal" in sv
    [en] = await say(app, "mora", "bo", "!echo two")
    assert "whole number" in en
    [unknown] = await say(app, "falun", "bo", "!flyg")
    assert "flyg" in unknown and "!hjälp" in unknown
    [usage] = await say(app, "falun", "bo", "!eko")
    assert "!eko <times>" in usage


async def test_organiser_levels(app: App) -> None:
    [refused] = await say(app, "falun", "bo", "!hemlig")
    assert "organisatörer" in refused
    assert await say(app, "falun", "anna", "!hemlig") == ["organiser ok"]
    adapter_of(app).organisers.add(UserRef("console", "platform-admin"))
    assert await say(app, "mora", "platform-admin", "!secret") == ["organiser ok"]


async def test_help_lists_what_the_user_may_run(app: App) -> None:
    [member] = await say(app, "falun", "bo", "!hjälp")
    assert "!eko <times>" in member and "!hemlig" not in member
    [organiser] = await say(app, "falun", "anna", "!hjälp")
    assert "!hemlig" in organiser
    [english] = await say(app, "mora", "bo", "!help echo")
    assert english.startswith("!echo <times>")


async def test_our_bugs_get_an_apology_not_a_crash(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    [sorry] = await say(app, "falun", "bo", "!krasch")
    assert "Förlåt" in sorry
    assert "a bug of ours" in caplog.text
    assert await say(app, "falun", "bo", "boom") == []
    assert "handler bug" in caplog.text
    assert await say(app, "falun", "bo", "!eko 1") == ["eko"]


async def test_plain_messages_reach_handlers_and_commands_do_not(app: App) -> None:
    demo = next(p for p in app.plugins if isinstance(p, Demo))
    await say(app, "falun", "bo", "hej")
    await say(app, "falun", "bo", "!eko 1")
    assert demo.seen == ["MessageReceived"]


async def test_missed_jobs_reach_organiser_rooms(app: App, tmp_path: Path) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    await app.scheduler.at("demo", "t1", START + timedelta(minutes=5), "tick")
    await app.scheduler.at("demo", "t2", START + timedelta(minutes=10), "tick")
    clock.advance(timedelta(minutes=30))
    await app.scheduler.run_due()
    await app.delivery.wait_idle(5)
    assert adapter_of(app).texts("console:falun") == ["tick late=True", "tick late=True"]
    await app.scheduler.at("demo", "t3", START + timedelta(hours=1), "tick")
    clock.advance(timedelta(hours=5))
    await app.scheduler.run_due()
    await app.delivery.wait_idle(5)
    [report] = adapter_of(app).texts("console:styrelse")
    assert "missades" in report and "t3" in report


async def test_registration_is_atomic(tmp_path: Path) -> None:
    class Clash(Plugin):
        name = "clash"

        @command("fine", sv="bra", help="help.help")
        async def fine(self, call: CommandCall) -> None: ...

        @command("help", sv="hjälp2", help="help.help")
        async def dup(self, call: CommandCall) -> None: ...

    settings = settings_from(tmp_path, CONFIG)
    app = App(
        settings, [HelpPlugin, Clash], adapters={"console": RecordingAdapter()}, waker=ManualWaker()
    )
    with pytest.raises(ValueError, match="taken"):
        await app.start()
    assert app.dispatcher.registry.get(["fine"]) is None
    assert app.dispatcher.registry.get(["help"]) is not None
    await app.stop()
    assert app.dispatcher.registry.get(["help"]) is None


async def test_unload_runs_even_when_on_stop_fails(tmp_path: Path) -> None:
    class Fragile(Plugin):
        name = "fragile"

        async def on_stop(self) -> None:
            raise RuntimeError("cannot stop")

        @command("fragile", sv="skör", help="help.help")
        async def run(self, call: CommandCall) -> None: ...

    settings = settings_from(tmp_path, CONFIG)
    app = App(settings, [Fragile], adapters={"console": RecordingAdapter()}, waker=ManualWaker())
    await app.start()
    assert app.dispatcher.registry.get(["skör"]) is not None
    await app.stop()
    assert app.dispatcher.registry.get(["skör"]) is None


async def test_an_event_handled_twice_replies_once(app: App) -> None:
    adapter = adapter_of(app)
    assert adapter.host is not None
    event = message("falun", "bo", "!eko 1")
    await adapter.host.handle(event)
    await adapter.host.handle(event)
    await app.delivery.wait_idle(5)
    assert adapter.texts().count("eko") == 1


async def test_keys_survive_an_app_restart(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    room = RoomRef("console", "falun")
    for text in ("first run", "second run"):
        adapter = RecordingAdapter()
        app = App(settings, [HelpPlugin], adapters={"console": adapter}, waker=ManualWaker())
        await app.start()
        await app.delivery.send("weekly:2026-49:falun", room, OutgoingMessage(text))
        await app.delivery.wait_idle(5)
        await app.stop()
        sent_now = adapter.texts()
        assert sent_now == (["first run"] if text == "first run" else [])


async def test_housekeeping_forgets_old_records(app: App) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    await app.delivery.send("old", RoomRef("console", "falun"), OutgoingMessage("x"))
    await app.delivery.wait_idle(5)
    due = [d for k, d in await app.scheduler.pending("cron:core:") if k == "cron:core:housekeeping"]
    assert due
    clock.set(due[0] + timedelta(days=59))
    await app.scheduler.run_due()
    assert await app.delivery.status("old") == "sent"
    # Days late (the bot was down): it still runs, unreported, and forgets the old row.
    next_due = next(d for k, d in await app.scheduler.pending("cron:core:"))
    clock.set(next_due + timedelta(days=3))
    await app.scheduler.run_due()
    assert await app.delivery.status("old") is None
    assert adapter_of(app).texts("console:styrelse") == []
