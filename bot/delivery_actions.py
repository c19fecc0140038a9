"""One attempt of one outbox row: the adapter call its action names.

Apart from `bot.delivery` so that the lanes (order, claims, retries) and what an attempt
does with a platform can be read each on their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import OutgoingMessage
from bot.core.platform import Adapter
from bot.core.refs import RoomRef
from bot.outbox import Outbox, Row, Target, token_for
from bot.storage.health import StorageUnavailable

# (platform, outcome, seconds the adapter took), outcome one of sent, transient,
# permanent, unexpected: for metrics.
AttemptObserver = Callable[[str, str, float], None]


async def observed(
    outbox: Outbox, adapter: Adapter, row: Row, room: RoomRef, observer: AttemptObserver | None
) -> str | None:
    """`perform`, its outcome and time told to `observer` (a database that could not
    be read is no attempt: nothing went to the platform)."""
    began = time.perf_counter()
    outcome: str | None = "unexpected"
    try:
        result = await perform(outbox, adapter, row, room)
        outcome = "sent"
        return result
    except StorageUnavailable:
        outcome = None
        raise
    except TransientSendError:
        outcome = "transient"
        raise
    except PermanentSendError:
        outcome = "permanent"
        raise
    finally:
        if observer is not None and outcome is not None:
            observer(room.platform, outcome, time.perf_counter() - began)


def _message(row: Row) -> OutgoingMessage:
    return row.message or OutgoingMessage.from_json(row.payload or "{}")


async def perform(outbox: Outbox, adapter: Adapter, row: Row, room: RoomRef) -> str | None:
    """Carry out `row` through `adapter`; the platform message id to record, if any.
    Raises the adapter's send errors (transient while a target is not sent yet)."""
    token = token_for(row.key)
    action, payload = row.action, row.payload
    if action == "send":
        message = await outbox.with_reply(_message(row))
        ref = await adapter.send(room, message, token)
        return ref.id
    target = await outbox.resolve(Target.decode(row.target or ""))
    if action == "edit":
        await adapter.edit(target, _message(row), token)
        return target.id
    if action == "delete":
        await adapter.delete(target, token)
        return target.id
    if action == "react":
        reaction = await adapter.react(target, payload or "", token)
        return reaction.id if reaction else None
    if action == "close_poll":
        ended = await adapter.close_poll(target, _message(row), token)
        return ended.id if ended else None
    raise PermanentSendError(f"unknown delivery action {action!r}")
