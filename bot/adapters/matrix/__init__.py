"""The Matrix adapter (matrix-nio with end-to-end encryption).

Modules by responsibility: `session` (login, store, pickle key), `syncing` (the sync
loop and its persisted position), `inbound` (events into core events), `formatting` and
`outbound` (posts, media, errors), `polls` (MSC3381), `crosssign` (the device's
cross-signature), `adapter` (wires them into the framework's `Adapter`).
"""

from __future__ import annotations

from bot.core.clock import Clock
from bot.settings import RootSettings
from bot.storage.state import AdapterState

from .adapter import MatrixAdapter


def create_adapter(settings: RootSettings, state: AdapterState, clock: Clock) -> MatrixAdapter:
    if settings.matrix is None:
        raise ValueError("the [matrix] section is missing")
    return MatrixAdapter(settings.matrix, state, clock, settings.bot.language)


__all__ = ["MatrixAdapter", "create_adapter"]
