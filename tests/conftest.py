"""Fixtures shared by every test folder: the session's one Synapse and its users."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.matrix.synapse import Synapse, SynapseMissing, synapse_python
from tests.matrix.users import User


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
