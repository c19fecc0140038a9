"""Adapters built by the App itself (`App(adapter_factories=...)`), on its own database,
as `samverkan run` builds them, and kept for the test to reach: Discord with the short
timings of tests/discord/botrun.py, Matrix as configured."""

from __future__ import annotations

from collections.abc import Callable

from bot.adapters.discord import DiscordAdapter
from bot.adapters.matrix import MatrixAdapter, create_adapter
from bot.core.clock import Clock
from bot.settings import RootSettings
from bot.storage.state import AdapterState
from tests.discord.botrun import discord_factory


def matrix_factory(
    settings: RootSettings, built: list[MatrixAdapter], *, clock: Clock | None = None
) -> Callable[[AdapterState, Clock], MatrixAdapter]:
    def build(state: AdapterState, app_clock: Clock) -> MatrixAdapter:
        adapter = create_adapter(settings, state, clock or app_clock)
        built.append(adapter)
        return adapter

    return build


def both_ready(matrix: list[MatrixAdapter], discord: list[DiscordAdapter]) -> bool:
    """Both built, Matrix synced once and Discord past READY."""
    return (
        bool(matrix)
        and matrix[-1].ready_seconds is not None
        and bool(discord)
        and discord[-1]._ready.is_set()
    )


__all__ = ["both_ready", "discord_factory", "matrix_factory"]
