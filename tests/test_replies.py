"""Command replies: straight to a platform that drops a repeated token, through the
outbox wherever the direct way could break order, lose the reply or outrun the lock."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from bot.delivery import Delivery, token_for
from bot.fence import Fence
from bot.storage.database import Database
from tests.engines import Target as DbTarget
from tests.support import RecordingAdapter, open_delivery, permanent, transient, until

ROOM = RoomRef("console", "falun")


@dataclass
class Idempotent(RecordingAdapter):
    """A platform that keeps the first post of a token (a Matrix transaction id)."""

    idempotent_sends: bool = True


async def _rows(db: Database, key: str) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM outbox WHERE key = ?", (key,)))


async def _drain_lane(delivery: Delivery, adapter: RecordingAdapter, key: str = "first") -> None:
    # A lane shows it holds nothing older on its first turn in a process; until then a
    # reply goes through the outbox.
    await delivery.send(key, ROOM, OutgoingMessage("first"))
    await until(lambda: len(adapter.sent) == 1)
    assert await delivery.wait_idle(5)


async def test_a_reply_goes_straight_once_the_lane_is_clear(db_target: DbTarget) -> None:
    adapter = Idempotent()
    db, delivery = await open_delivery(db_target, adapter)
    assert await delivery.send_reply("reply:1", ROOM, OutgoingMessage("before the lane read"))
    await until(lambda: len(adapter.sent) == 1)
    assert await _rows(db, "reply:1") == 1  # the lane had not shown it was clear
    assert await delivery.send_reply("reply:2", ROOM, OutgoingMessage("svar"))
    assert adapter.texts()[-1] == "svar"  # sent before send_reply returned
    assert adapter.sent[-1].token == token_for("reply:2")
    assert await _rows(db, "reply:2") == 0  # no durable row: a replay is harmless
    await delivery.stop()
    await db.close()


async def test_a_reply_waits_behind_older_work_in_its_room(db_target: DbTarget) -> None:
    adapter = Idempotent(failures=[transient(retry_after=0.2)])
    db, delivery = await open_delivery(db_target, adapter)
    await delivery.send("older", ROOM, OutgoingMessage("older"))  # held up by a retry
    await delivery.send_reply("reply:1", ROOM, OutgoingMessage("reply"))
    await until(lambda: len(adapter.sent) == 2)
    assert adapter.texts() == ["older", "reply"]
    assert await _rows(db, "reply:1") == 1
    await delivery.stop()
    await db.close()


async def test_a_failed_direct_reply_is_kept_in_the_outbox_with_its_token(
    db_target: DbTarget,
) -> None:
    adapter = Idempotent()
    db, delivery = await open_delivery(db_target, adapter)
    await _drain_lane(delivery, adapter)
    adapter.failures.append(transient())
    assert await delivery.send_reply("reply:1", ROOM, OutgoingMessage("reply"))
    await until(lambda: len(adapter.sent) == 2)
    assert adapter.sent[-1].token == token_for("reply:1")  # the platform can dedupe it
    assert await _rows(db, "reply:1") == 1
    adapter.failures.append(permanent())
    assert not await delivery.send_reply("reply:2", ROOM, OutgoingMessage("refused"))
    assert len(adapter.sent) == 2
    await delivery.stop()
    await db.close()


async def test_a_platform_without_dedupe_and_a_closed_fence_take_the_outbox(
    db_target: DbTarget,
) -> None:
    plain = RecordingAdapter()
    db, delivery = await open_delivery(db_target, plain)
    await _drain_lane(delivery, plain)
    await delivery.send_reply("reply:1", ROOM, OutgoingMessage("durable"))
    await until(lambda: len(plain.sent) == 2)
    assert await _rows(db, "reply:1") == 1
    await delivery.stop()
    await db.close()

    adapter = Idempotent()
    db, delivery = await open_delivery(db_target, adapter)
    await _drain_lane(delivery, adapter, "first again")
    fence = Fence(grace=0)
    fence.lose()
    delivery.fence = fence
    await delivery.send_reply("reply:2", ROOM, OutgoingMessage("not from here"))
    assert adapter.texts() == ["first"]  # nothing left an instance without the lock
    assert await _rows(db, "reply:2") == 1  # queued for the instance that holds it
    await delivery.stop()
    await db.close()
