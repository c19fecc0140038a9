"""A Discord token the gateway's REST side refuses (401) stops the bot: `App.run` ends
with StartRefused (one line and exit code 2 from `samverkan run`), never a bot that runs
on without Discord while looking started."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.adapters.discord import DiscordAdapter
from bot.app import App
from bot.core.errors import StartRefused
from plugins.help import HelpPlugin
from tests.discord.botrun import discord_factory
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
    discord_settings = settings.discord
    assert discord_settings is not None
    built: list[DiscordAdapter] = []
    app = App(
        settings, [HelpPlugin], adapter_factories={"discord": discord_factory(settings, built)}
    )
    with pytest.raises(StartRefused, match="Discord refused the bot token"):
        await asyncio.wait_for(app.run(), 30)
    assert discord_settings.token.get_secret_value() not in str(built[0].refused)
    assert standin.recorded("GET /users/@me")
