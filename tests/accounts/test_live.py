"""Against the real Synapse and the Discord stand-in at once: Anna asks for a code on
Matrix, types it on Discord, confirms on Matrix, and her RSVP counts once whichever of
her accounts gives it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.adapters.discord import DiscordAdapter
from bot.adapters.matrix import MatrixAdapter
from bot.app import App
from bot.core.clock import FakeClock, SystemClock
from bot.scheduling import ManualWaker
from plugins.accounts import AccountsPlugin
from plugins.calendar import CalendarPlugin
from tests.accounts.support import START, code_in
from tests.discord.botrun import World
from tests.discord.standin.model import Json
from tests.factories import discord_factory, matrix_factory
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, User, from_bot
from tests.support import settings_from

CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
PICKLE_KEY = "an-accounts-test-pickle-key"


async def eventually(check: Callable[[], Awaitable[Any]], want: Any, what: str) -> None:
    deadline = time.monotonic() + 15
    got = await check()
    while got != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {got!r}, not {want!r}")
        await asyncio.sleep(0.05)
        got = await check()


async def test_a_person_links_matrix_to_discord_and_answers_once(
    synapse: Synapse, users: MakeUser, world: World, tmp_path: Path
) -> None:
    s = world.standin
    channel = world.channels[0]
    bot = synapse.register("linkbot")
    anna: User = await users("anna")
    room = await anna.create_room(invite=[bot.user_id])
    anna_discord = world.bertil  # Anna's account on Discord
    text = f"""
    [bot]
    language = "sv"
    database = "{tmp_path / "bot.db"}"
    organisers = ["matrix:{anna.user_id}"]

    [matrix]
    homeserver = "{synapse.url}"
    user_id = "{bot.user_id}"
    password = "{bot.password}"
    store_path = "{tmp_path / "matrix-store"}"
    pickle_key = "{PICKLE_KEY}"

    [discord]
    token = "{s.token}"
    guild_ids = [{world.guild_id}]
    organiser_roles = [{world.organiser_role}]
    api_base_url = "{s.api_url}"
    gateway_url = "{s.gateway_url}"

    [[associations]]
    id = "falun"
    name = "Falun"
    rooms = ["matrix:{room}", "discord:{channel.id}"]

    [calendar]
    digest = "0 8 1 1 *"
    refresh = "1d"
    """
    plugins = [CalendarPlugin, AccountsPlugin]
    settings = settings_from(tmp_path, text, list(plugins))
    matrices: list[MatrixAdapter] = []
    discords: list[DiscordAdapter] = []
    clock = FakeClock(START)
    app = App(
        settings,
        list(plugins),
        # The platforms' clock is the real one.
        adapter_factories={
            "matrix": matrix_factory(settings, matrices, clock=SystemClock()),
            "discord": discord_factory(settings, discords, clock=SystemClock()),
        },
        clock=clock,
        waker=ManualWaker(),
        delivery_backoff=0.1,
    )
    task = asyncio.create_task(app.run())
    replies = 0

    async def matrix_says(words: str) -> str:
        """Anna writes on Matrix; the bot's answer there."""
        nonlocal replies
        clock.advance(timedelta(seconds=30))
        await anna.say(room, words)
        replies += 1
        found = await anna.wait_for(from_bot(bot.user_id, room), count=replies)
        return str(found[-1]["content"]["body"])

    async def discord_invokes(name: str, options: list[Json]) -> Json:
        """Anna's Discord account invokes a slash command; the interaction's answer."""
        clock.advance(timedelta(seconds=30))
        before = len(s.recorded(CALLBACK))
        inter = await s.slash_command(channel, anna_discord, name, options)
        await s.wait_for(lambda: inter.acknowledged, 15, f"an answer to /{name}")
        await s.wait_for(lambda: len(s.recorded(CALLBACK)) > before, 15, "the callback")
        data: Json = s.recorded(CALLBACK)[-1].json["data"]
        return data

    def rsvp(answer: str) -> list[Json]:
        values: list[Json] = [
            {"type": 4, "name": "id", "value": 1},
            {"type": 3, "name": "answer", "value": answer},
        ]
        return [{"type": 1, "name": "rsvp", "options": values}]

    async def counts() -> dict[str, int]:
        store = next(p for p in app.plugins if isinstance(p, CalendarPlugin)).store
        (o,) = await store.between(START, START + timedelta(days=30))
        return await store.counts(o.uid, o.occ)

    try:
        await s.wait_for(lambda: (discords and discords[0]._ready.is_set()) or task.done(), 30)
        await anna.wait_until(
            lambda: (matrices and matrices[0].ready_seconds is not None) or task.done(), 30
        )
        assert not task.done(), task
        await anna.wait_until(lambda: bot.user_id in anna.client.rooms[room].users, 30)

        added = await matrix_says('!händelse ny "Styrelsemöte" "2026-03-10 18:00"')
        assert "Händelse 1 är tillagd" in added
        await matrix_says("!händelse svara 1 ja")
        await discord_invokes("event", rsvp("nej"))
        await eventually(counts, {"yes": 1, "no": 1}, "two accounts, two answers")

        # Matrix cannot whisper: the code is shown in the room, so it takes a second
        # code, shown on Discord to Anna alone, typed back on Matrix.
        shown = await matrix_says("!koppla")
        first = code_in(shown)
        half = await discord_invokes("link", [{"type": 3, "name": "code", "value": first}])
        assert half["flags"] & 64  # ephemeral
        second = code_in(half["content"])
        assert second != first
        done = await matrix_says(f"!koppla {second}")
        assert done.startswith("Klart: dina konton är nu kopplade")

        # One person: her latest answer (no, on Discord) stands, then either account
        # changes it and it is still one answer.
        await eventually(counts, {"no": 1}, "after the link")
        await matrix_says("!händelse svara 1 ja")
        await eventually(counts, {"yes": 1}, "an answer from Matrix")
        answered = await discord_invokes("event", rsvp("ja"))
        assert "1 kommer, 0 kommer inte" in answered["content"]
        await eventually(counts, {"yes": 1}, "the same answer from Discord")
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
