"""Where the data is: every namespace's migrations and lifetimes, the audit recorder.

Shared by the app (the daily purge, the plugins' contexts) and the operator's commands
(`samverkan privacy ...`, `samverkan audit verify`), so both see the same tables.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from bot.audit import AuditLog, audit_migrations
from bot.core.associations import Directory
from bot.core.clock import Clock
from bot.core.refs import RoomRef, UserRef
from bot.lifetimes import Lifetime
from bot.storage.core_schema import core_migrations
from bot.storage.migrations import Migrations
from bot.storage.people_schema import people_migrations

log = logging.getLogger(__name__)


def framework_namespaces() -> list[Migrations]:
    """The framework's namespaces, in the order they are migrated."""
    return [core_migrations, people_migrations, audit_migrations]


def all_lifetimes(plugin_migrations: Sequence[Migrations | None]) -> list[Lifetime]:
    found: list[Lifetime] = []
    for namespace in [*framework_namespaces(), *plugin_migrations]:
        if namespace is not None:
            found.extend(namespace.lifetimes)
    return found


def audit_recorder(
    audit: AuditLog, directory: Directory, clock: Clock
) -> Callable[[UserRef | None, str, RoomRef | None, Mapping[str, Any] | None], Awaitable[None]]:
    """`ctx.audit(actor, action, room, detail)`: filed under the room's association."""

    async def record(
        actor: UserRef | None, action: str, room: RoomRef | None, detail: Mapping[str, Any] | None
    ) -> None:
        found = directory.of_room(room) if room is not None else None
        try:
            await audit.record(actor, action, found.id if found else "", detail, clock.now())
        except Exception:
            # The action itself is done; a lost entry is told to the operator.
            log.exception("could not write the audit entry for %s", action)

    return record
