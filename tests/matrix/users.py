"""Real Matrix users for the tests: nio clients that send events and watch rooms."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    Event,
    MegolmEvent,
    RoomCreateResponse,
    RoomSendResponse,
    UploadResponse,
)

from tests import log_watch
from tests.matrix.synapse import Account, Synapse

Predicate = Callable[[str, dict[str, Any]], bool]

MARK_EVENT = "org.samverkan.test.mark"

_FILTER = {
    "presence": {"not_types": ["*"]},
    "room": {"timeline": {"limit": 500}, "ephemeral": {"not_types": ["*"]}},
}


class User:
    """One user's client, syncing in the background and keeping every timeline event."""

    def __init__(self, synapse: Synapse, account: Account, store: Path | None = None) -> None:
        self.account = account
        self.user_id = account.user_id
        config = AsyncClientConfig(
            encryption_enabled=store is not None,
            store_sync_tokens=False,
            pickle_key="test-user-pickle",
            max_limit_exceeded=0,
        )
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(
            synapse.url, account.user_id, store_path=str(store or ""), config=config
        )
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.undecryptable: list[tuple[str, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> User:
        self.client.restore_login(self.user_id, self.account.device_id, self.account.access_token)
        self.client.add_event_callback(self._record, (Event,))
        await self.client.sync(timeout=0, sync_filter=_FILTER, full_state=True)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        self._task = asyncio.create_task(self.client.sync_forever(timeout=500, sync_filter=_FILTER))
        return self

    async def caught_up(self, room_id: str, timeout: float = 15.0) -> None:
        """Wait until this client has received every event the homeserver had accepted by
        now, in any of its rooms. Synapse orders all events in one stream and a sync
        returns everything up to its position, so once a marker sent now comes back,
        everything accepted before it has too. The marker's type is one no client shows."""
        mark = f"{self.user_id}-{time.monotonic_ns()}"
        await self.send(room_id, {"mark": mark}, event_type=MARK_EVENT)
        await self.wait_until(
            lambda: any(
                src.get("type") == MARK_EVENT and src.get("content", {}).get("mark") == mark
                for _, src in self.events
            ),
            timeout,
        )

    async def _record(self, room: Any, event: Any) -> None:
        if isinstance(event, MegolmEvent):
            self.undecryptable.append((room.room_id, event.source))
        else:
            self.events.append((room.room_id, event.source))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    # -- acting ----------------------------------------------------------------------

    async def create_room(
        self,
        invite: list[str] = (),  # type: ignore[assignment]
        *,
        encrypted: bool = False,
        power: dict[str, int] | None = None,
        alias: str | None = None,
        is_direct: bool = False,
    ) -> str:
        initial: list[dict[str, Any]] = []
        if encrypted:
            initial.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
        answer = await self.client.room_create(
            invite=list(invite),
            alias=alias,
            is_direct=is_direct,  # the invites say so, as Element's "start chat" does
            initial_state=initial,
            # Room version 12: the creator's power is implicit and must not be listed.
            power_level_override={"users": dict(power)} if power else None,
        )
        assert isinstance(answer, RoomCreateResponse), answer
        return str(answer.room_id)

    def sees_joined(self, room_id: str, user_id: str) -> bool:
        """Whether this user's client has seen `user_id` join (not just be invited)."""
        room = self.client.rooms.get(room_id)
        return room is not None and user_id in room.users and user_id not in room.invited_users

    async def wait_joined(self, room_id: str, user_id: str) -> None:
        await self.wait_until(lambda: self.sees_joined(room_id, user_id))

    async def join(self, room_id: str) -> None:
        await self.client.join(room_id)
        await self.wait_until(lambda: room_id in self.client.rooms)

    async def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        log_watch.said(content.get("body"))
        answer = await self.client.room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        assert isinstance(answer, RoomSendResponse), answer
        return str(answer.event_id)

    async def say(self, room_id: str, text: str, **extra: Any) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": text, **extra})

    async def upload(self, data: bytes, content_type: str, filename: str) -> str:
        answer, _ = await self.client.upload(
            io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data)
        )
        assert isinstance(answer, UploadResponse), answer
        return str(answer.content_uri)

    # -- watching --------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.02)

    def found(self, pred: Predicate) -> list[dict[str, Any]]:
        return [src for room, src in self.events if pred(room, src)]

    async def wait_for(
        self, pred: Predicate, count: int = 1, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        try:
            await self.wait_until(lambda: len(self.found(pred)) >= count, timeout)
        except TimeoutError:
            got = len(self.found(pred))
            raise AssertionError(f"{self.user_id} saw {got} of {count} expected events") from None
        return self.found(pred)


def from_bot(bot_id: str, room_id: str, event_type: str = "m.room.message") -> Predicate:
    return lambda room, src: (
        room == room_id and src.get("sender") == bot_id and src.get("type") == event_type
    )


# The `users` fixture: a new user by name, with a started client.
MakeUser = Callable[..., Awaitable[User]]
