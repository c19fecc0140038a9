"""Delivery: a key is posted once, retries keep order, a restart resumes the outbox."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.clock import FakeClock
from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from bot.delivery import Delivery, Target, token_for
from bot.outbox import Entry
from bot.storage.core_schema import core_migrations
from bot.storage.engines import open_database
from tests.engines import Target as DbTarget
from tests.support import RecordingAdapter, open_delivery, permanent, transient, until

ROOM = RoomRef("console", "falun")
OTHER = RoomRef("console", "mora")


async def test_a_key_is_sent_once_even_across_restart(db_target: DbTarget) -> None:
    adapter = RecordingAdapter()
    db, delivery = await open_delivery(db_target, adapter)
    assert await delivery.send("k1", ROOM, OutgoingMessage("hello"))
    assert not await delivery.send("k1", ROOM, OutgoingMessage("hello again"))
    assert await delivery.wait_idle(5)
    await delivery.stop()
    await db.close()

    db, delivery = await open_delivery(db_target, adapter)
    assert not await delivery.send("k1", ROOM, OutgoingMessage("after restart"))
    assert await delivery.wait_idle(5)
    assert adapter.texts() == ["hello"]
    ref = await delivery.message_ref("k1")
    assert ref is not None and ref.room == ROOM
    assert await delivery.key_for(ref) == "k1"
    # Sent text is not kept once it is delivered.
    assert await db.fetchval("SELECT payload FROM outbox WHERE key = 'k1'") is None
    await delivery.stop()
    await db.close()


async def test_transient_failure_is_retried_in_order(db_target: DbTarget) -> None:
    adapter = RecordingAdapter(failures=[transient(), transient()])
    db, delivery = await open_delivery(db_target, adapter)
    for i in range(5):
        await delivery.send(f"k{i}", ROOM, OutgoingMessage(f"m{i}"))
    assert await until_sent(adapter, 5)
    assert adapter.texts() == [f"m{i}" for i in range(5)]
    # The retried send carried the same token as the failed attempt would have.
    assert adapter.sent[0].token == token_for("k0")
    await delivery.stop()
    await db.close()


async def until_sent(adapter: RecordingAdapter, count: int) -> bool:
    await until(lambda: len(adapter.sent) >= count)
    return True


async def test_a_stuck_lane_does_not_hold_up_others(db_target: DbTarget) -> None:
    adapter = RecordingAdapter(failures=[transient(retry_after=0.3)])
    db, delivery = await open_delivery(db_target, adapter)
    await delivery.send("a1", ROOM, OutgoingMessage("falun 1"))
    await delivery.send("a2", ROOM, OutgoingMessage("falun 2"))
    await delivery.send("b1", OTHER, OutgoingMessage("mora 1"))
    await until(lambda: "mora 1" in adapter.texts())
    assert "falun 1" not in adapter.texts()
    await until(lambda: len(adapter.sent) == 3)
    assert adapter.texts(str(ROOM)) == ["falun 1", "falun 2"]
    health = await delivery.health()
    assert health == []
    await delivery.stop()
    await db.close()


async def test_permanent_failure_is_not_retried(db_target: DbTarget) -> None:
    adapter = RecordingAdapter(failures=[permanent()])
    db, delivery = await open_delivery(db_target, adapter)
    await delivery.send("bad", ROOM, OutgoingMessage("rejected"))
    await delivery.send("good", ROOM, OutgoingMessage("accepted"))
    await until(lambda: len(adapter.sent) == 1)
    assert await delivery.wait_idle(5)
    assert await delivery.status("bad") == "failed"
    assert adapter.texts() == ["accepted"]
    await delivery.stop()
    await db.close()


async def test_pending_work_resumes_after_restart(db_target: DbTarget) -> None:
    down = RecordingAdapter(failures=[transient(retry_after=60)])
    db, delivery = await open_delivery(db_target, down)
    await delivery.send("late1", ROOM, OutgoingMessage("one"))
    await delivery.send("late2", ROOM, OutgoingMessage("two"))
    await until(lambda: not down.failures)
    assert [h.backlog for h in await delivery.health()] == [2]
    await delivery.stop()  # the bot goes down with work pending
    await db.close()

    up = RecordingAdapter()
    db, delivery = await open_delivery(db_target, up)
    # A restarted bot tries pending work at once, whatever the old retry time was, and
    # what is queued after the restart goes behind it.
    await delivery.send("late3", ROOM, OutgoingMessage("three"))
    await until(lambda: len(up.sent) == 3)
    assert up.texts() == ["one", "two", "three"]
    await delivery.send("late4", ROOM, OutgoingMessage("four"))
    await until(lambda: len(up.sent) == 4)
    await delivery.stop()
    await db.close()


async def test_edit_waits_for_the_message_it_targets(db_target: DbTarget) -> None:
    adapter = RecordingAdapter(failures=[transient()])
    db, delivery = await open_delivery(db_target, adapter)
    await delivery.send("orig", ROOM, OutgoingMessage("first"))
    await delivery.edit("orig:edit", Target(key="orig"), ROOM, OutgoingMessage("second"))
    await delivery.delete("orig:del", Target(key="orig"), ROOM)
    await until(lambda: len(adapter.sent) == 3)
    send, edit, delete = adapter.sent
    assert (send.action, edit.action, delete.action) == ("send", "edit", "delete")
    posted = await delivery.message_ref("orig")
    assert edit.target == posted and delete.target == posted
    await delivery.stop()
    await db.close()


async def test_disabled_platform_fails_cleanly(db_target: DbTarget) -> None:
    adapter = RecordingAdapter()
    db, delivery = await open_delivery(db_target, adapter)
    await delivery.send("mx", RoomRef("matrix", "!x:example.org"), OutgoingMessage("hi"))
    assert await delivery.wait_idle(5)
    assert await delivery.status("mx") == "failed"
    await delivery.stop()
    await db.close()


async def test_reply_and_thread_by_key_wait_for_their_target(db_target: DbTarget) -> None:
    adapter = RecordingAdapter(failures=[transient()])
    db, delivery = await open_delivery(db_target, adapter)
    other_lane = "elsewhere"
    await delivery.send("orig", ROOM, OutgoingMessage("question"))
    await delivery.send(
        "ans", ROOM, OutgoingMessage("answer", reply_to_key="orig"), lane=other_lane
    )
    await delivery.send("lost", ROOM, OutgoingMessage("to nothing", reply_to_key="never"))
    # A thread's root by key too, through the outbox's JSON and back.
    await delivery.send(
        "in-thread", ROOM, OutgoingMessage("in it", thread_key="orig"), lane=other_lane
    )
    await delivery.send("no-root", ROOM, OutgoingMessage("rootless", thread_key="never"))
    await until(lambda: len(adapter.sent) == 5)
    by_text = {s.text: s.message for s in adapter.sent}
    answer = by_text["answer"]
    assert answer is not None and answer.reply_to == await delivery.message_ref("orig")
    lost = by_text["to nothing"]
    assert lost is not None and lost.reply_to is None
    in_thread = by_text["in it"]
    assert in_thread is not None and in_thread.thread == await delivery.message_ref("orig")
    assert in_thread.thread_key is None
    rootless = by_text["rootless"]
    assert rootless is not None and rootless.thread is None and rootless.thread_key is None
    await delivery.stop()
    await db.close()


async def test_rows_left_by_a_crash_go_before_rows_queued_while_starting(
    db_target: DbTarget,
) -> None:
    down = RecordingAdapter(failures=[transient(retry_after=60)])
    db, delivery = await open_delivery(db_target, down)
    await delivery.send("old1", ROOM, OutgoingMessage("old one"))
    await delivery.send("old2", ROOM, OutgoingMessage("old two"))
    await until(lambda: not down.failures)
    await delivery.stop()
    await db.close()

    # A new process: adapters catch up and plugins queue work before delivery starts.
    up = RecordingAdapter()
    db = await open_database(db_target)
    clock = FakeClock(datetime(2026, 12, 1, 13, tzinfo=UTC))
    delivery = Delivery(db, clock, {"console": up}, backoff_base=0.01)
    await delivery.send("new1", ROOM, OutgoingMessage("new one"))
    await delivery.start()
    await delivery.send("new2", ROOM, OutgoingMessage("new two"))
    await until(lambda: len(up.sent) == 4)
    assert up.texts() == ["old one", "old two", "new one", "new two"]
    await delivery.stop()
    await db.close()


async def test_a_platform_back_is_retried_at_once_but_rate_limits_are_kept(
    db_target: DbTarget,
) -> None:
    adapter = RecordingAdapter(failures=[transient()])
    db = await open_database(db_target)
    await core_migrations.upgrade(db)
    clock = FakeClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    # A backoff far longer than the test: only retry_now can get the post out in time.
    delivery = Delivery(db, clock, {"console": adapter}, backoff_base=600, backoff_max=600)
    await delivery.start()
    await delivery.send("k", ROOM, OutgoingMessage("after the outage"))
    await until(lambda: not adapter.failures)
    assert delivery.retry_now("matrix") == 0
    assert delivery.retry_now("console") == 1
    await until(lambda: adapter.texts() == ["after the outage"])

    adapter.failures.append(transient(retry_after=600))
    await delivery.send("k2", ROOM, OutgoingMessage("rate limited"))
    await until(lambda: not adapter.failures)
    assert delivery.retry_now("console") == 0
    assert adapter.texts() == ["after the outage"]
    await delivery.stop()
    await db.close()


async def test_rows_another_process_queued_are_taken_up_while_running(
    db_target: DbTarget,
) -> None:
    # The operator's `privacy erase` writes deletions into the outbox beside a running
    # bot, whose lane for that room has already shown it holds nothing older.
    adapter = RecordingAdapter()
    db = await open_database(db_target)
    await core_migrations.upgrade(db)
    clock = FakeClock(datetime(2026, 12, 1, 12, tzinfo=UTC))
    delivery = Delivery(db, clock, {"console": adapter}, sweep_every=0.05)
    await delivery.start()
    await delivery.send("mine", ROOM, OutgoingMessage("first"))
    assert await until_sent(adapter, 1)
    other = Delivery(db, clock, {}, sweep_every=0)  # never started: it only writes
    now = clock.now().timestamp()
    async with db.transaction():
        rows = await other._outbox.insert_many(
            [Entry("theirs", str(ROOM), "send", ROOM, None, OutgoingMessage("queued").to_json())],
            now,
            now,
        )
        await other._outbox.release_own()  # no claim kept, as the CLI writes
    assert len(rows) == 1
    assert await until_sent(adapter, 2)  # no restart, no new submission here
    assert adapter.texts() == ["first", "queued"]
    assert await delivery.sweep() == 0  # taken: nothing foreign is left
    await delivery.stop()
    await db.close()
