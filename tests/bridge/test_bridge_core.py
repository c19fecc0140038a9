"""The bridge's logic through the real App, with recording adapters on three platforms.

Wire-level behaviour (Synapse, the Discord stand-in) is tested in test_bridge_live.py;
here the adapters only record, so what is checked is what the bridge asks for: which
copies, with which keys, in which order, pointing at which messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.core.clock import FakeClock
from bot.core.events import (
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    ReactionAdded,
    ReactionRemoved,
    Sender,
)
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.fence import Fence
from bot.scheduling import ManualWaker
from plugins.bridge import BridgePlugin
from plugins.help import HelpPlugin
from tests.engines import Target
from tests.support import RecordingAdapter, settings_from, transient, until

CONFIG = """
[bot]
organisers = ["console:anna"]

[[associations]]
id = "falun"
name = "Falun"
rooms = ["matrix:!falun:example.org"]

[[associations]]
id = "mora"
name = "Mora"
rooms = ["discord:2222"]

[[associations]]
id = "borlange"
name = "Borlänge"
rooms = ["console:borlange"]

[[bridges]]
id = "samverkan"
rooms = ["matrix:!falun:example.org", "discord:2222", "console:borlange"]
"""
MX = RoomRef("matrix", "!falun:example.org")
DC = RoomRef("discord", "2222")
CO = RoomRef("console", "borlange")
START = datetime(2026, 12, 1, 9, tzinfo=UTC)
_ids = iter(range(10**9))


def adapters() -> dict[str, RecordingAdapter]:
    return {p: RecordingAdapter(platform=p) for p in ("matrix", "discord", "console")}


async def make_app(
    tmp_path: Path, recs: dict[str, RecordingAdapter], database: Target | None = None
) -> App:
    settings = settings_from(tmp_path, CONFIG, [BridgePlugin], database)
    app = App(
        settings,
        [HelpPlugin, BridgePlugin],
        adapters=dict(recs),
        clock=FakeClock(START),
        waker=ManualWaker(),
        delivery_backoff=0.01,
        fence=Fence(grace=0),  # one instance on its database: no holder to wait out
    )
    await app.start()
    return app


@pytest.fixture
async def env(
    tmp_path: Path, db_target: Target
) -> AsyncIterator[tuple[App, dict[str, RecordingAdapter]]]:
    recs = adapters()
    app = await make_app(tmp_path, recs, database=db_target)
    yield app, recs
    await app.stop()


def sender(name: str, room: RoomRef) -> Sender:
    ident = {"matrix": f"@{name}:example.org", "discord": "42", "console": name}[room.platform]
    return Sender(UserRef(room.platform, ident), name.capitalize())


def received(room: RoomRef, text: str, **kw: Any) -> MessageReceived:
    n = next(_ids)
    return MessageReceived(
        event_id=f"ev{n}",
        room=room,
        sender=kw.pop("sender", sender("anna", room)),
        at=START,
        ref=MessageRef(room, f"m{n}"),
        text=text,
        **kw,
    )


async def feed(app: App, recs: dict[str, RecordingAdapter], event: Any) -> None:
    host = recs[event.room.platform].host
    assert host is not None
    await host.handle(event)
    await app.delivery.wait_idle(5)


async def posted_ref(app: App, origin: MessageRef, room: RoomRef) -> MessageRef:
    ref = await app.delivery.message_ref(f"bridge:{origin}:{room}")
    assert ref is not None
    return ref


async def test_a_message_reaches_every_other_room_attributed(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    app, recs = env
    await feed(app, recs, received(MX, "Hej från Falun"))
    assert recs["matrix"].sent == []
    for platform in ("discord", "console"):
        [copy] = recs[platform].sent
        assert copy.text == "Hej från Falun"
        assert copy.message is not None and copy.message.attribution is not None
        assert copy.message.attribution.label == "Anna (Falun)"
        assert copy.message.notice is False


async def test_matrix_html_becomes_harmless_markdown(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    app, recs = env
    html = '<b>Viktigt</b> <a href="javascript:alert(1)">klick</a><script>alert(2)</script> @room'
    await feed(app, recs, received(MX, "Viktigt klick @room", html=html))
    [copy] = recs["discord"].sent
    assert copy.text == "**Viktigt** klick @room"
    assert "script" not in copy.text and "javascript" not in copy.text


async def test_edits_deletions_and_replies_follow(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    app, recs = env
    original = received(DC, "Möte på torsdag")
    await feed(app, recs, original)
    mx_copy = await posted_ref(app, original.ref, MX)
    co_copy = await posted_ref(app, original.ref, CO)

    edit = MessageEdited(
        event_id="edit1",
        room=DC,
        sender=original.sender,
        at=START,
        ref=original.ref,
        text="Möte på fredag",
    )
    await feed(app, recs, edit)
    assert [(s.action, s.target, s.text) for s in recs["matrix"].sent[1:]] == [
        ("edit", mx_copy, "Möte på fredag")
    ]

    # A reply in Matrix to the copy there answers the original on Discord and the copy
    # in the console.
    reply = received(MX, "Jag kommer", reply_to=mx_copy, sender=sender("bo", MX))
    await feed(app, recs, reply)
    dc_reply = recs["discord"].sent[-1].message
    co_reply = recs["console"].sent[-1].message
    assert dc_reply is not None and dc_reply.reply_to == original.ref
    assert co_reply is not None and co_reply.reply_to == co_copy

    deletion = MessageDeleted(
        event_id="del1", room=DC, sender=original.sender, at=START, ref=original.ref
    )
    await feed(app, recs, deletion)
    assert recs["matrix"].sent[-1].action == "delete"
    assert recs["matrix"].sent[-1].target == mx_copy
    assert recs["console"].sent[-1].target == co_copy


async def test_reply_to_an_unbridged_message_is_quoted(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    app, recs = env
    old = MessageRef(MX, "$before-the-bridge")
    reply = received(MX, "Håller med", reply_to=old, reply_quote="Bo: Vi borde ses oftare")
    await feed(app, recs, reply)
    [copy] = recs["discord"].sent
    assert copy.text == "> Bo: Vi borde ses oftare\nHåller med"
    assert copy.message is not None and copy.message.reply_to is None


async def test_reactions_follow_and_are_removed(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    app, recs = env
    original = received(CO, "Vem tar med fika?")
    await feed(app, recs, original)
    dc_copy = await posted_ref(app, original.ref, DC)
    mx_copy = await posted_ref(app, original.ref, MX)
    bo = sender("bo", DC)
    react = ReactionAdded(
        event_id="r1",
        room=DC,
        sender=bo,
        at=START,
        ref=MessageRef(DC, "r1"),
        target=dc_copy,
        key="👍",
    )
    await feed(app, recs, react)
    assert [(s.action, s.target, s.text) for s in recs["matrix"].sent if s.action == "react"] == [
        ("react", mx_copy, "👍")
    ]
    assert [(s.action, s.target) for s in recs["console"].sent if s.action == "react"] == [
        ("react", original.ref)
    ]
    removal = ReactionRemoved(
        event_id="r1-", room=DC, sender=bo, at=START, target=dc_copy, key="👍"
    )
    await feed(app, recs, removal)
    assert recs["matrix"].sent[-1].action == "delete"
    assert recs["console"].sent[-1].action == "delete"


async def test_commands_are_not_relayed(env: tuple[App, dict[str, RecordingAdapter]]) -> None:
    app, recs = env
    await feed(app, recs, received(CO, "!hjälp"))
    assert recs["matrix"].sent == recs["discord"].sent == []
    assert len(recs["console"].sent) == 1


async def test_a_room_that_is_down_gets_its_messages_late_in_order(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    _, recs = env
    recs["discord"].failures.extend(transient(retry_after=0.2) for _ in range(3))
    for i in range(20):
        host = recs["matrix"].host
        assert host is not None
        await host.handle(received(MX, f"meddelande {i}"))
    # The console is not held up by Discord being down.
    await until(lambda: len(recs["console"].sent) == 20)
    assert len(recs["discord"].sent) < 20
    await until(lambda: len(recs["discord"].sent) == 20, timeout=10)
    expected = [f"meddelande {i}" for i in range(20)]
    assert recs["discord"].texts() == expected
    assert recs["console"].texts() == expected


async def test_burst_from_two_rooms_arrives_once_in_order(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    app, recs = env
    for i in range(150):
        for room in (MX, DC):
            host = recs[room.platform].host
            assert host is not None
            await host.handle(received(room, f"{room.platform} {i}"))
    await app.delivery.wait_idle(20)
    console = recs["console"].texts()
    assert len(console) == 300 and len(set(console)) == 300
    assert [t for t in console if t.startswith("matrix")] == [f"matrix {i}" for i in range(150)]
    assert [t for t in console if t.startswith("discord")] == [f"discord {i}" for i in range(150)]
    assert recs["discord"].texts() == [f"matrix {i}" for i in range(150)]


async def test_map_survives_restart(tmp_path: Path, db_target: Target) -> None:
    recs = adapters()
    app = await make_app(tmp_path, recs, database=db_target)
    original = received(MX, "Före omstart")
    await feed(app, recs, original)
    dc_copy = await posted_ref(app, original.ref, DC)
    await app.stop()

    recs2 = adapters()
    app2 = await make_app(tmp_path, recs2, database=db_target)
    try:
        edit = MessageEdited(
            event_id="e-after",
            room=MX,
            sender=original.sender,
            at=START,
            ref=original.ref,
            text="Efter omstart",
        )
        await feed(app2, recs2, edit)
        assert [(s.action, s.target, s.text) for s in recs2["discord"].sent] == [
            ("edit", dc_copy, "Efter omstart")
        ]
        # The original message is not relayed again after the restart.
        await feed(app2, recs2, original)
        assert [s.action for s in recs2["discord"].sent] == ["edit"]
    finally:
        await app2.stop()


async def test_status_for_organisers(env: tuple[App, dict[str, RecordingAdapter]]) -> None:
    app, recs = env
    await feed(app, recs, received(MX, "hej"))
    await feed(
        app, recs, received(CO, "!brygga status", sender=Sender(UserRef("console", "bo"), "Bo"))
    )
    assert "organisatörer" in recs["console"].sent[-1].text
    await feed(
        app, recs, received(CO, "!brygga status", sender=Sender(UserRef("console", "anna"), "Anna"))
    )
    status = recs["console"].sent[-1].text
    assert status.startswith("Brygga samverkan (3 rum):")
    assert "discord:2222 (Mora): fungerar; senast tisdag 1 december kl. 10.00; kö 0" in status
    assert "matrix:!falun:example.org (Falun): fungerar; senast aldrig; kö 0" in status


async def test_a_redacted_reaction_is_removed_from_the_copies(
    env: tuple[App, dict[str, RecordingAdapter]],
) -> None:
    app, recs = env
    original = received(DC, "Ses vi i morgon?")
    await feed(app, recs, original)
    mx_copy = await posted_ref(app, original.ref, MX)
    anna = sender("anna", MX)
    reaction = MessageRef(MX, "$reaction")
    added = ReactionAdded(
        event_id="$reaction", room=MX, sender=anna, at=START, ref=reaction, target=mx_copy, key="👍"
    )
    await feed(app, recs, added)
    [dc_react] = [s for s in recs["discord"].sent if s.action == "react"]
    assert dc_react.target == original.ref
    # Matrix takes a reaction back by redacting the reaction event.
    redacted = MessageDeleted(event_id="$redaction", room=MX, sender=anna, at=START, ref=reaction)
    await feed(app, recs, redacted)
    removal = recs["discord"].sent[-1]
    assert removal.action == "delete"
    react_key = f"bridge-react:$reaction:{DC}"
    assert removal.target == await app.delivery.message_ref(react_key)
    assert recs["console"].sent[-1].action == "delete"
