"""The sync loop leaves the homeserver to its readers for a moment after a post of ours.

A stand-in client records when each sync is asked for; what the wait is for (a member's
sync served before our long poll's first look) is measured in bench/matrix_bench.py
against a real Synapse, not here. Only lower bounds on time are asserted, and generous
upper ones: a slow machine makes the wait longer, never shorter.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import pytest
from nio import SyncResponse, UploadFilterResponse

from bot.adapters.matrix import syncing
from bot.adapters.matrix.syncing import POST_LINGER, SyncLoop


class Client:
    user_id = "@bot:example.org"
    should_upload_keys = should_query_keys = should_claim_keys = False

    def __init__(self, wanted: int = 0) -> None:
        self.outgoing_to_device_messages: list[Any] = []
        self.asked: list[tuple[float, int]] = []  # (when, timeout)
        self.wanted = wanted  # syncs asked for, after which `enough` is set
        self.enough = asyncio.Event()

    async def upload_filter(self, **_: Any) -> UploadFilterResponse:
        return UploadFilterResponse("f1")

    async def sync(self, *, timeout: int, **_: Any) -> SyncResponse:
        self.asked.append((time.monotonic(), timeout))
        if len(self.asked) >= self.wanted:
            self.enough.set()
        answer = SyncResponse.from_dict({"next_batch": f"s{len(self.asked)}"})
        assert isinstance(answer, SyncResponse)
        if timeout and len(self.asked) > 2:  # the second long poll: held until stopped
            await asyncio.sleep(3600)
        return answer


class State:
    def __init__(self) -> None:
        self.saved: dict[str, str] = {"sync_token": "s0"}

    async def get(self, key: str) -> str | None:
        return self.saved.get(key)

    async def set(self, key: str, value: str) -> None:
        self.saved[key] = value


async def no_event(room_id: str, event: Any, maybe_repeat: bool, mark: bool) -> bool:
    return False


async def no_invite(room_id: str, info: Any) -> None:
    return None


async def long_polls(last_post: float, wanted: int = 2) -> tuple[Client, float]:
    """Run the loop until it has asked for `wanted` long polls; when it started."""
    client = Client(1 + wanted)
    loop = SyncLoop(
        client,
        State(),  # type: ignore[arg-type]
        no_event,
        no_invite,
        last_post=lambda: last_post,
    )
    await loop.prepare()
    stopped = asyncio.Event()
    began = time.monotonic()
    task = asyncio.create_task(loop.run(stopped))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.enough.wait(), 10)
    stopped.set()
    await asyncio.wait_for(task, 10)
    return client, began


async def test_the_next_long_poll_waits_after_a_post() -> None:
    posted = time.monotonic()
    client, _ = await long_polls(posted)
    assert [timeout for _, timeout in client.asked] == [0, 30_000, 30_000]
    assert client.asked[1][0] >= posted + POST_LINGER * 0.9


async def test_without_a_recent_post_the_long_poll_follows_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wait of a minute, were there one, would outlast the 10 s the helper allows.
    monkeypatch.setattr(syncing, "POST_LINGER", 60.0)
    client, _ = await long_polls(-math.inf)
    assert [timeout for _, timeout in client.asked] == [0, 30_000, 30_000]


async def test_a_stop_during_the_wait_ends_the_loop_without_a_long_poll() -> None:
    client = Client()
    loop = SyncLoop(
        client,
        State(),  # type: ignore[arg-type]
        no_event,
        no_invite,
        last_post=lambda: time.monotonic() + 3600,  # would wait an hour
    )
    await loop.prepare()
    stopped = asyncio.Event()
    task = asyncio.create_task(loop.run(stopped))
    await asyncio.sleep(0.05)
    stopped.set()
    await asyncio.wait_for(task, 5)
    assert [timeout for _, timeout in client.asked] == [0]  # the start's sync only
