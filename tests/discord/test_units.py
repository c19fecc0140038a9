"""Pieces of the adapter on their own: the factory, command payloads, names, splitting."""

from __future__ import annotations

import logging
from pathlib import Path

import discord
import pytest

from bot.adapters.discord import DiscordAdapter, create_adapter
from bot.adapters.discord.commands import association_choices, build_commands, parse_invocation
from bot.adapters.discord.errors import AuthBrake, convert
from bot.adapters.discord.interactions import Interactions
from bot.adapters.discord.outbound import attachments_split, part_nonce
from bot.adapters.discord.parts import fit
from bot.adapters.discord.threads import message_place, thread_name
from bot.adapters.discord.webhooks import safe_username
from bot.core.clock import SystemClock
from bot.core.commands import CommandSpec, Flag, Kind, Param
from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import Attachment
from bot.core.refs import MessageRef, RoomRef
from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.state import AdapterState
from tests.discord.botrun import World, settings_for


async def test_create_adapter_from_settings(world: World, tmp_path: Path) -> None:
    settings = settings_for(world, tmp_path)
    db = await Database.open(tmp_path / "units.db")
    try:
        await core_migrations.upgrade(db)
        adapter = create_adapter(settings, AdapterState(db, "discord"), SystemClock())
        assert isinstance(adapter, DiscordAdapter)
        assert adapter.platform == "discord" and adapter.command_prefix is None
        assert adapter.message_limit == 2000
        assert adapter.health()["connected"] == "no"
    finally:
        await db.close()


def _t(key: str, language: str, **params: object) -> str:
    return f"{language}:{key}:{params.get('name', '')}"


def test_three_word_commands_become_subcommand_groups() -> None:
    specs = [
        CommandSpec(("event", "list"), ("händelse", "lista"), "h.list"),
        CommandSpec(("event", "remove", "all"), ("händelse", "ta-bort", "alla"), "h.rm"),
        CommandSpec(
            ("event", "add"),
            ("händelse", "ny"),
            "h.add",
            params=(Param("title", sv_name="titel"), Param("when", Kind.TIME, required=False)),
            flags=(Flag("length", Kind.DURATION, sv_name="längd"),),
        ),
    ]
    [event] = build_commands(specs, _t)
    assert event["name_localizations"] == {"sv-SE": "händelse"}
    add, listing, remove = event["options"]
    assert (add["name"], listing["name"], remove["name"]) == ("add", "list", "remove")
    assert remove["type"] == 2 and remove["options"][0]["name"] == "all"
    assert remove["options"][0]["name_localizations"] == {"sv-SE": "alla"}
    assert [o["name"] for o in add["options"]] == ["title", "when", "length"]
    assert [o["required"] for o in add["options"]] == [True, False, False]
    assert add["description_localizations"] == {"sv-SE": "sv:h.add:"}

    path, args, focused = parse_invocation(
        {
            "name": "event",
            "options": [
                {
                    "type": 1,
                    "name": "add",
                    "options": [
                        {"name": "title", "value": "Möte"},
                        {"name": "length", "value": "2h"},
                    ],
                }
            ],
        },
        specs,
    )
    assert path == ("event", "add") and args == {"title": "Möte", "length": "2h"}
    assert focused is None


def test_association_autocomplete() -> None:
    known = {"falun": "Falun", "mora": "Mora", "borlange": "Borlänge"}
    assert association_choices("", known)[0] == {"name": "alla", "value": "all"}
    assert association_choices("mo", known) == [{"name": "Mora", "value": "mora"}]
    assert association_choices("falun, b", known) == [
        {"name": "Falun, Borlänge", "value": "falun,borlange"}
    ]


def test_names_nonces_attachments() -> None:
    assert safe_username("Clyde från Discord") == "C\u200blyde från D\u200biscord"
    assert len(safe_username("x" * 200)) == 80
    nonces = {part_nonce("a" * 24, i) for i in range(5)}
    assert len(nonces) == 5 and all(len(n) <= 25 for n in nonces)
    uploads, links = attachments_split(
        (
            Attachment("a.txt", data=b"hej"),
            Attachment("b.bin", data=b"x" * 20, url="https://example.org/b"),
            Attachment("c.bin"),
        ),
        limit=10,
    )
    assert [u.filename for u in uploads] == ["a.txt"]
    assert links == ["📎 b.bin: https://example.org/b", "📎 c.bin"]


def test_long_rate_limit_becomes_a_delivery_retry(caplog: pytest.LogCaptureFixture) -> None:
    # discord.py raises RateLimited for waits over max_ratelimit_timeout (at least 30 s).
    caplog.set_level(logging.WARNING)
    err = convert(discord.RateLimited(45.0))
    assert isinstance(err, TransientSendError) and err.retry_after == 45.0
    assert any("wait 45.0s" in r.getMessage() for r in caplog.records)


def test_refusals_brake() -> None:
    brake = AuthBrake(limit=2, window=60, pause=30)
    brake.record(403)
    brake.check()
    brake.record(403)
    with pytest.raises(TransientSendError):
        brake.check()
    brake.record(401)
    with pytest.raises(PermanentSendError):
        brake.check()


def test_message_place_names_the_thread_when_there_is_one() -> None:
    room = RoomRef("discord", "100")
    assert message_place(MessageRef(room, "7")) == (100, 7)
    assert message_place(MessageRef(room, "55/7")) == (55, 7)
    for bad in (
        MessageRef(room, "x"),
        MessageRef(room, "a/7"),
        MessageRef(RoomRef("matrix", "!r"), "7"),
    ):
        with pytest.raises(PermanentSendError):
            message_place(bad)


def test_thread_name_is_the_first_line_of_words() -> None:
    assert thread_name("Hej alla\nmer text", "Tråd") == "Hej alla"
    # Our reply link is not the root's words; nothing at all gives the fallback.
    assert thread_name("-# ↪ https://discord.com/channels/1/2/3\n\nSvar", "Tråd") == "Svar"
    assert thread_name("", "Tråd") == "Tråd"
    long = thread_name("ord " * 40, "Tråd")
    assert len(long) <= 60 and long.endswith("…")


def test_an_edit_fits_the_parts_a_post_has() -> None:
    sentence = "Ett möte om valet. "
    long = sentence * 300  # 5700 characters: three parts as a new post
    assert len(fit(long, 3, 2000)) == 3
    two = fit(long, 2, 2000)
    assert len(two) == 2 and all(len(p) <= 2000 for p in two)
    assert two[1].endswith("…")  # what did not fit is cut short, and says so
    assert fit("Kort.", 2, 2000) == ["Kort."]
    assert fit("  ", 1, 2000) == ["…"]


class _FlakyFollowups:
    """An interaction whose followup fails once, as when Discord's 5xx outlasts
    discord.py's own retries: the delivery then retries the whole answer."""

    def __init__(self) -> None:
        self.id = 4242
        self.channel_id = 77
        self.sent: list[str] = []
        self.failures = 1
        self.response = self
        self.followup = self

    async def send_message(self, content: str, **_: object) -> None:
        self.sent.append(content)

    async def send(self, content: str, **_: object) -> object:
        if self.failures:
            self.failures -= 1
            raise TimeoutError("Discord did not answer")
        self.sent.append(content)
        return discord.Object(id=1000 + len(self.sent))


async def test_a_retried_interaction_answer_sends_only_the_parts_not_yet_out() -> None:
    interactions = Interactions(AuthBrake(), defer_after=60)
    flaky = _FlakyFollowups()
    origin = interactions.track(flaky)  # type: ignore[arg-type]
    parts = ["del ett", "del två", "del tre"]
    with pytest.raises(TransientSendError):
        await interactions.reply(origin, parts, False, token="tok")
    assert flaky.sent == ["del ett"]
    answered = await interactions.reply(origin, parts, False, token="tok")
    assert flaky.sent == ["del ett", "del två", "del tre"]
    assert answered is not None and answered.id == "1002"
    # Another answer to the same command (another delivery) is sent whole.
    await interactions.reply(origin, ["mer"], False, token="other")
    assert flaky.sent[-1] == "mer"
    await interactions.stop()
