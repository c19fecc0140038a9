"""Fixtures: a started stand-in with a guild, and discord.py's URLs put back after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
from discord.gateway import DiscordWebSocket

from tests.discord.botrun import World, build_world
from tests.discord.standin import StandIn


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    server = StandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        # The adapter sets these process-wide: leave them as they were.
        discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
def world(standin: StandIn) -> World:
    return build_world(standin)
