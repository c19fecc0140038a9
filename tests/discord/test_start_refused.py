"""A Discord token the gateway's REST side refuses (401) stops the bot: `App.run` ends
with StartRefused (one line and exit code 2 from `samverkan run`), never a bot that runs
on without Discord while looking started."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.adapters.discord import DiscordAdapter
from bot.app import App
from bot.core.clock import SystemClock
from bot.core.errors import StartRefused
from bot.storage.core_schema import core_migrations
from bot.storage.engines import open_database
from bot.storage.state import AdapterState
from plugins.help import HelpPlugin
from tests.discord.botrun import FAST
from tests.discord.standin import StandIn
from tests.support import settings_from


async def test_a_refused_token_stops_the_bot(standin: StandIn, tmp_path: Path) -> None:
    guild = standin.add_guild()
    standin.add_channel(guild, "samverkan")
    settings = settings_from(
        tmp_path,
        f"""
        [discord]
        token = "not-{standin.token}"
        guild_ids = [{guild.id}]
        api_base_url = "{standin.api_url}"
        gateway_url = "{standin.gateway_url}"
        """,
    )
    assert settings.discord is not None
    db = await open_database(settings.bot.database)
    await core_migrations.upgrade(db)
    adapter = DiscordAdapter(settings.discord, AdapterState(db, "discord"), SystemClock(), **FAST)
    app = App(settings, [HelpPlugin], adapters={"discord": adapter})
    try:
        with pytest.raises(StartRefused, match="Discord refused the bot token"):
            await asyncio.wait_for(app.run(), 30)
    finally:
        await db.close()
    assert settings.discord.token.get_secret_value() not in str(adapter.refused)
    assert standin.recorded("GET /users/@me")
