"""Fixtures shared by every test folder: the session's one Synapse and its users, and a
Discord stand-in with a guild."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import discord
import pytest
from discord.gateway import DiscordWebSocket

# The log check is a plugin (below) that the fixtures' modules import first: marked
# before they do, so that its asserts are rewritten like any test's.
pytest.register_assert_rewrite("tests.log_watch")

from bot.storage.core_schema import core_migrations
from bot.storage.database import Database
from bot.storage.engines import open_database
from tests.discord.botrun import World, build_world
from tests.discord.standin import StandIn
from tests.engines import ENGINES, Target, database_target
from tests.matrix.synapse import Synapse, SynapseMissing, synapse_python
from tests.matrix.users import User

# The log check over the whole run (tests/log_watch.py).
pytest_plugins = ["tests.log_watch"]


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    try:
        synapse_python()
    except SynapseMissing as exc:
        # Never a skip: a missing peer is a failure, in CI (CI=true) and outside it.
        ci = " (CI=true)" if os.environ.get("CI") == "true" else ""
        pytest.fail(f"Synapse is required for the Matrix tests{ci}: {exc}")
    server = Synapse(Path(tmp_path_factory.mktemp("synapse")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def users(synapse: Synapse) -> AsyncIterator[Callable[..., Awaitable[User]]]:
    """Make started user clients; all are closed when the test ends."""
    made: list[User] = []

    async def make(prefix: str = "user", store: Path | None = None) -> User:
        user = await User(synapse, synapse.register(prefix), store).start()
        made.append(user)
        return user

    yield make
    for user in made:
        await user.close()


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


@pytest.fixture(params=ENGINES)
async def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """A database on each engine (SQLite, PostgreSQL), empty: open it with
    `bot.storage.engines.open_database` (as often as a test restarts)."""
    async with database_target(str(request.param), tmp_path) as target:
        yield target


@pytest.fixture
async def db(db_target: Target) -> AsyncIterator[Database]:
    """An open database on each engine with the core schema; a test folder that needs
    more schemas defines its own `db`."""
    database = await open_database(db_target)
    await core_migrations.upgrade(database)
    try:
        yield database
    finally:
        await database.close()
