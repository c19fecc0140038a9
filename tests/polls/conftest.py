"""Fixtures of the polls tests: a started bot on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.clock import FakeClock
from tests.engines import Target
from tests.polls.support import Bot, make_settings

START = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture
async def bot(tmp_path: Path, db_target: Target) -> AsyncIterator[Bot]:
    running = await Bot(make_settings(tmp_path, database=db_target), FakeClock(START)).start()
    try:
        yield running
    finally:
        await running.stop()
