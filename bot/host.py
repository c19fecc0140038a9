"""The framework as one adapter sees it: the one way in for every inbound event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.core.commands import CommandSpec
from bot.core.events import InboundEvent
from bot.core.platform import Adapter
from bot.core.refs import RoomRef
from bot.core.text import clean_event

if TYPE_CHECKING:
    from bot.app import App


class AppHost:
    """The framework as one adapter sees it."""

    def __init__(self, app: App, adapter: Adapter) -> None:
        self._app = app
        self._adapter = adapter

    async def handle(self, event: InboundEvent) -> None:
        # The one way in for every adapter: text is cleaned and capped here, once.
        limit = int(getattr(self._adapter, "inbound_limit", self._adapter.message_limit))
        self._app.metrics.event_in(self._adapter.platform)
        await self._app.dispatcher.handle(clean_event(event, limit), self._adapter.command_prefix)

    def commands(self) -> Sequence[CommandSpec]:
        return self._app.dispatcher.registry.specs()

    def rooms(self, platform: str) -> Sequence[RoomRef]:
        return [r for r in self._app.settings.all_rooms() if r.platform == platform]

    def t(self, key: str, language: str | None = None, /, **params: object) -> str:
        return self._app.translator.t(key, language, **params)

    def language_for(self, room: RoomRef) -> str:
        return self._app.directory.language_for(room)

    def connection_restored(self) -> None:
        self._app.delivery.retry_now(self._adapter.platform)

    async def alert(self, key: str, text_key: str, /, **params: object) -> int:
        return await self._app.notices.alert(key, text_key, **params)
