"""The Discord adapter (discord.py): slash commands, webhooks for attributed posts,
native polls or buttons, and catch-up from channel history after downtime."""

from __future__ import annotations

from bot.adapters.discord.adapter import DiscordAdapter
from bot.core.clock import Clock
from bot.settings import RootSettings
from bot.storage.state import AdapterState


def create_adapter(settings: RootSettings, state: AdapterState, clock: Clock) -> DiscordAdapter:
    if settings.discord is None:
        raise ValueError("the [discord] section is missing")
    return DiscordAdapter(
        settings.discord,
        state,
        clock,
        bot_name=settings.bot.name,
        associations={a.id: a.name for a in settings.associations},
        language=settings.bot.language,
    )


__all__ = ["DiscordAdapter", "create_adapter"]
