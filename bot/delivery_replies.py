"""Command replies: straight to a platform that drops a repeated token, else the outbox.

Apart from `bot.delivery` so that the lanes read on their own; `Delivery` takes this in
as it takes `DeliveryApi`. What it reads of the lanes (drained, fresh, held platforms,
the fence) decides whether the direct way keeps the order and the lock's promise.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.messages import OutgoingMessage
from bot.core.platform import Adapter
from bot.core.refs import RoomRef
from bot.delivery_actions import AttemptObserver
from bot.fence import Fence
from bot.outbox import Row, token_for
from bot.storage.database import Database

log = logging.getLogger(__name__)


class DirectReplies:
    _adapters: Mapping[str, Adapter]
    _db: Database
    _held_platforms: set[str]
    _drained: set[str]
    _fresh: dict[str, deque[Row]]
    _stopping: bool
    fence: Fence
    on_attempt: AttemptObserver | None

    if TYPE_CHECKING:  # `DeliveryApi.send`, beside this in `Delivery`

        async def send(
            self, key: str, room: RoomRef, message: OutgoingMessage, *, lane: str | None = None
        ) -> bool: ...

    async def send_reply(self, key: str, room: RoomRef, message: OutgoingMessage) -> bool:
        """A command's reply: sent at once, without the outbox, where the adapter makes a
        replay harmless (`idempotent_sends`: the token from `key`, derived from the
        inbound event, is deduplicated by the platform); otherwise, and whenever the
        direct way cannot keep order or must wait, through the outbox like any post.

        Why no durable row is needed: the adapter saves its inbound position only after
        the event is handled. If the process dies before the reply goes, the event is
        handed over again and answered then; if it dies after the reply went but before
        the position is saved, the replayed answer carries the same token and the
        platform keeps the first one (Matrix: the same transaction id on the same device).
        """
        adapter = self._adapters.get(room.platform)
        lane = str(room)
        if (
            adapter is None
            or not getattr(adapter, "idempotent_sends", False)
            or self._db.in_transaction()  # the reply must not outrun a rollback
            or room.platform in self._held_platforms
            or lane not in self._drained  # the lane has not shown it holds nothing older
            or self._fresh.get(lane)  # work queued before it: order is kept
            or self._stopping
            # Nothing leaves an instance without the lock (bot.fence): queued instead,
            # for whichever instance may post.
            or not self.fence.may_send()
        ):
            return await self.send(key, room, message)
        began = time.perf_counter()
        try:
            await adapter.send(room, message, token_for(key))
        except TransientSendError as exc:
            self._observe(room.platform, "transient", began)
            # Retried from the outbox with the same token: a send that did reach the
            # platform before failing is recognised there.
            log.info("reply %s failed (%s); queued in the outbox", key, exc)
            return await self.send(key, room, message)
        except PermanentSendError as exc:
            self._observe(room.platform, "permanent", began)
            log.warning("reply %s to %s failed for good: %s", key, room, exc)
            return False
        except Exception:
            self._observe(room.platform, "unexpected", began)
            log.exception("reply %s to %s raised unexpectedly; queued in the outbox", key, room)
            return await self.send(key, room, message)
        self._observe(room.platform, "sent", began)
        return True

    def _observe(self, platform: str, outcome: str, began: float) -> None:
        if self.on_attempt is not None:
            self.on_attempt(platform, outcome, time.perf_counter() - began)
