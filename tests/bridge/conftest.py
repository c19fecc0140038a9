"""Fixtures of the bridge's live tests: Synapse users and rooms, the Discord stand-in's
world and a CDN, combined into one `BridgeEnv` (see live.py). Names are stable: the
fault tests use them too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.bridge.live import BridgeEnv, Cdn, make_env
from tests.discord.botrun import World
from tests.discord.standin import StandIn
from tests.matrix.synapse import Synapse
from tests.matrix.users import User


@pytest.fixture
async def cdn() -> AsyncIterator[Cdn]:
    server = Cdn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def bridge_env(
    synapse: Synapse,
    users: Callable[..., Awaitable[User]],
    standin: StandIn,
    world: World,
    cdn: Cdn,
    tmp_path: Path,
) -> BridgeEnv:
    """The world of one bridge: Matrix rooms Falun and Ludvika (Anna's, the bot
    invited), Discord channel Mora, console room Borlänge. Start the App on it with
    `running_app(env)`."""
    return await make_env(synapse, users, standin, world, cdn, tmp_path)
