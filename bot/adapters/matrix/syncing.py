"""The sync loop: our own position, saved only after a batch is handled; `limited`
timelines backfilled; a fresh store starts from now instead of replaying history.

nio saves its sync token before callbacks run, so a crash inside one loses events: we
call `AsyncClient.sync` ourselves and keep the position in AdapterState.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
from nio import (
    AsyncClient,
    MessageDirection,
    RoomMessagesResponse,
    SyncResponse,
    UploadFilterResponse,
)

from bot.storage.health import StorageUnavailable
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

SYNC_RETRY_MAX: Final = 10.0
# How soon a batch the database could not take is tried again.
STORAGE_RETRY: Final = 2.0

TOKEN_KEY: Final = "sync_token"
TIMELINE_LIMIT: Final = 200
LONG_POLL_MS: Final = 30_000
BACKFILL_PAGE: Final = 100
BACKFILL_MAX_PAGES: Final = 50
SAVE_EVERY: Final = 50  # batches; an idle position is saved now and then all the same
# How long after a post of ours the next long poll waits. The homeserver is then busy
# waking the members who read the post, and a long poll arriving meanwhile has its first
# look at the timeline (our own echo, filtered out: nothing to answer) served between
# theirs: on one Synapse process with one SQLite connection that costs each reader 1-3
# ms. Nothing is lost by waiting, the position is unchanged and the next sync brings
# what came meanwhile, and what does come waits at most this long.
POST_LINGER: Final = 0.02


def sync_filter(own_user: str, timeline_limit: int = TIMELINE_LIMIT) -> dict[str, Any]:
    """Lean: no presence, typing, receipts or account data; members lazy-loaded; and
    not our own posts, so that the echo of each reply does not wake a sync of its own
    (about half the syncs of a bot that answers commands)."""
    return {
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "room": {
            "timeline": {
                "limit": timeline_limit,
                "lazy_load_members": True,
                "not_senders": [own_user],
            },
            "state": {"lazy_load_members": True},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        },
    }


# (room id, event, may be a repeat, mark it as handled) -> whether it was news to us
EventHandler = Callable[[str, Any, bool, bool], Awaitable[bool]]
# (room id, the invited room's info from the sync: who invited, whether as a direct chat)
InviteHandler = Callable[[str, Any], Awaitable[None]]


class SyncError(RuntimeError):
    pass


class SyncLoop:
    def __init__(
        self,
        client: AsyncClient,
        state: AdapterState,
        on_event: EventHandler,
        on_invite: InviteHandler,
        on_recovered: Callable[[], None] = lambda: None,
        invited_counts: Callable[[str], bool] = lambda room_id: False,
        last_post: Callable[[], float] = lambda: -math.inf,
    ) -> None:
        self._client = client
        self._last_post = last_post  # monotonic time of our latest post
        # Rooms where what was sent while the bot was only invited is news (direct chats).
        self._invited_counts = invited_counts
        self._state = state
        self._on_event = on_event
        self._on_invite = on_invite
        self._on_recovered = on_recovered
        self._filter = sync_filter(client.user_id)
        self._known_rooms: set[str] = set()
        self._filter_id: str | None = None
        self._token: str | None = None
        self._pending: SyncResponse | None = None
        self.batches = 0
        self._idle_batches = 0  # handled batches whose position is not saved yet
        self._save_due = False
        # Repeats are possible only when catching up from a saved position (and in
        # backfills); then every event is looked up among those already handled.
        self._catching_up = False
        self.last_error: str | None = None

    async def prepare(self) -> None:
        """The first sync, at start: room state for sending, and the catch-up batch.

        With a saved position the answer holds everything since (handled in `run`);
        without one this is a fresh store, and the rooms' history is not replayed."""
        self._token = await self._state.get(TOKEN_KEY)
        fresh = self._token is None
        # Uploaded once: the server then neither parses nor validates it on every sync.
        uploaded = await self._client.upload_filter(**self._filter)
        if isinstance(uploaded, UploadFilterResponse):
            self._filter_id = str(uploaded.filter_id)
        else:
            log.warning("could not upload the sync filter (%s); sending it inline", uploaded)
        answer = await self._sync(
            since=self._token,
            full_state=True,
            timeout=0,
            sync_filter=sync_filter(self._client.user_id, 1) if fresh else self._filter,
        )
        self._known_rooms = set(answer.rooms.join)
        if fresh:
            log.info("fresh Matrix store: starting from now, history is not replayed")
            self._token = str(answer.next_batch)
            await self._state.set(TOKEN_KEY, self._token)
            await self._invites(answer)
        else:
            self._pending = answer
            self._catching_up = True

    async def _sync(
        self,
        *,
        since: str | None,
        timeout: int,
        full_state: bool = False,
        sync_filter: dict[str, Any] | None = None,
    ) -> Any:
        answer = await self._client.sync(
            timeout=timeout,
            sync_filter=sync_filter or self._filter_id or self._filter,
            since=since,
            full_state=full_state or None,
        )
        if not isinstance(answer, SyncResponse):
            raise SyncError(str(answer))
        return answer

    async def run(self, stopped: asyncio.Event) -> None:
        failures = 0
        stop_wait = asyncio.ensure_future(stopped.wait())
        request: asyncio.Future[Any] | None = None
        try:
            while not stopped.is_set():
                answer = self._pending
                self._pending = None
                if answer is None:
                    linger = self._last_post() + POST_LINGER - time.monotonic()
                    if linger > 0 and not failures:
                        await asyncio.wait({stop_wait}, timeout=linger)
                        if stopped.is_set():
                            return
                    # After a failure, a sync that returns at once: a long poll would
                    # hold back the news that the server is back until events come.
                    request = asyncio.ensure_future(
                        self._sync(since=self._token, timeout=0 if failures else LONG_POLL_MS)
                    )
                    if self._save_due:
                        # Saved while the next long poll waits, and after the replies the
                        # last batch queued have reached the database: one turn of the
                        # loop lets their delivery lanes go first.
                        await asyncio.sleep(0)
                        try:
                            await self.save()
                        except StorageUnavailable:
                            # Still due: saved after a later batch. Until then a restart
                            # replays from the older position and drops the repeats.
                            log.debug("the Matrix sync position could not be saved yet")
                    await asyncio.wait({request, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not request.done():
                        return
                    try:
                        answer = request.result()
                    except (SyncError, aiohttp.ClientError, TimeoutError) as exc:
                        failures += 1
                        # Capped low: a failed sync is cheap, and the first one that
                        # succeeds releases every post that waits for the homeserver.
                        delay = min(SYNC_RETRY_MAX, 0.5 * 2**failures)
                        self.last_error = str(exc)
                        # The server refusing (a revoked token, say) needs a person;
                        # the network failing usually does not.
                        level = logging.ERROR if isinstance(exc, SyncError) else logging.WARNING
                        log.log(level, "Matrix sync failed (%s); again in %.1fs", exc, delay)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stopped.wait(), delay)
                        continue
                if failures:
                    # The homeserver answers again: posts waiting for it may go now.
                    self._on_recovered()
                failures = 0
                self.last_error = None
                try:
                    await self._handle(answer)
                    await self._keys()
                except StorageUnavailable:
                    # The database cannot be written (logged once, by the database): the
                    # position stays, and the same batch is handled again, soon, without
                    # what this run already handled; the homeserver is fine.
                    failures += 1
                    self._catching_up = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopped.wait(), STORAGE_RETRY)
                except Exception as exc:
                    # The position did not move: the same events come again, and those
                    # already handled are dropped as repeats.
                    failures += 1
                    self.last_error = str(exc)
                    log.exception("handling a Matrix sync failed; syncing again")
                    self._catching_up = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopped.wait(), min(30.0, 0.5 * 2**failures))
        finally:
            # Stopped or cancelled: the long poll in flight is abandoned, its answer unused
            # (the position was not advanced, so nothing is lost).
            stop_wait.cancel()
            if request is not None and not request.done():
                request.cancel()
                request.add_done_callback(_retrieve)

    async def _handle(self, answer: Any) -> None:
        """Hand every event of the batch over, then, only then, save the position."""
        since = self._token
        batch: list[tuple[str, Any, bool]] = []  # room, event, whether it may be a repeat
        for room_id, info in answer.rooms.join.items():
            timeline = info.timeline
            if timeline.limited and since is not None and timeline.prev_batch:
                earlier = await self._backfill(room_id, timeline.prev_batch, since)
                batch.extend((room_id, e, True) for e in self._news(room_id, earlier))
            catching_up = self._catching_up
            batch.extend((room_id, e, catching_up) for e in self._news(room_id, timeline.events))
            self._known_rooms.add(room_id)
        handled = 0
        for i, (room_id, event, maybe_repeat) in enumerate(batch):
            # The last event needs no mark of its own: the position saved right after it
            # covers it, and a crash before that replays it either way.
            last = i == len(batch) - 1
            if await self._on_event(room_id, event, maybe_repeat, not last):
                handled += 1
        await self._invites(answer)
        self._token = str(answer.next_batch)
        self._catching_up = False
        # A batch that handled nothing moves the position in memory only: replaying it
        # after a crash changes nothing, and a database write is saved.
        self._idle_batches += 1
        if handled or answer.rooms.invite or self._idle_batches >= SAVE_EVERY:
            self._save_due = True
        self.batches += 1

    async def save(self) -> None:
        """Persist the position of the last fully handled batch."""
        if self._token is not None and self._idle_batches:
            await self._state.set(TOKEN_KEY, self._token)
            self._idle_batches = 0
        self._save_due = False

    async def _invites(self, answer: Any) -> None:
        for room_id, info in answer.rooms.invite.items():
            await self._on_invite(room_id, info)

    def _news(self, room_id: str, events: list[Any]) -> list[Any]:
        """Drop what happened before the bot joined: a new room's history is not news.

        Servers that implement MSC4115 tell on each event what our membership was when
        it was sent (`unsigned.membership`); without it, a room new to us is taken to
        have nothing new in its first batch."""
        news = []
        marked = False
        for event in events:
            membership = (event.source.get("unsigned") or {}).get("membership")
            if membership is None:
                news.append(event)
            else:
                marked = True
                if membership == "join" or (
                    membership == "invite" and self._invited_counts(room_id)
                ):
                    news.append(event)
        if not marked and room_id not in self._known_rooms:
            return []
        return news

    async def _backfill(self, room_id: str, prev_batch: str, since: str) -> list[Any]:
        """The events a `limited` timeline skipped: from its start back to our position."""
        found: list[Any] = []
        start = prev_batch
        for _ in range(BACKFILL_MAX_PAGES):
            answer = await self._client.room_messages(
                room_id, start=start, end=since, direction=MessageDirection.back,
                limit=BACKFILL_PAGE,
            )  # fmt: skip
            if not isinstance(answer, RoomMessagesResponse):
                log.error("backfill of %s failed: %s; some events may be missed", room_id, answer)
                break
            found.extend(answer.chunk)
            if not answer.chunk or not answer.end:
                break
            start = answer.end
        else:
            log.error("backfill of %s stopped after %d pages", room_id, BACKFILL_MAX_PAGES)
        found.reverse()
        log.info("backfilled %d events in %s after a limited timeline", len(found), room_id)
        return found

    async def _keys(self) -> None:
        """What nio's sync_forever does between syncs for end-to-end encryption."""
        client = self._client
        try:
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())
            if client.outgoing_to_device_messages:
                await client.send_to_device_messages()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("encryption key upkeep failed (%s); again after the next sync", exc)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
