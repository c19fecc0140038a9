"""Native polls' voters read over REST: what the gateway does not say.

Discord sends vote events only for messages the client has seen since it started: votes
cast while the bot was down, or on a poll posted by an earlier run, come in no event.
So at each new gateway session, and once more after a poll is ended, every answer's
voters are read (100 a page, by user id) and the core is handed the whole picture as a
`PollVotesSnapshot` (`final` once the poll has ended on Discord). The adapter's own
record of each voter's choice is reset to it, so that later add and remove events
apply to what Discord shows.

A snapshot is queued behind the channel's events, in order; a vote whose event was
queued before the snapshot but cast after its read is corrected by the next snapshot
(the final one at the latest).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import discord

from bot.adapters.discord.errors import AuthBrake, boundary
from bot.adapters.discord.inbound import Inbound, place_of, ref_of
from bot.adapters.discord.polls import PollBook, PollRecord
from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.events import PollVotesSnapshot, Sender
from bot.core.refs import UserRef

log = logging.getLogger(__name__)

PAGE: Final = 100  # Discord's largest page of voters


def sender_from(user: Any) -> Sender:
    uid = str(user.get("id"))
    name = user.get("global_name") or user.get("username") or uid
    return Sender(UserRef("discord", uid), str(name))


async def read_voters(
    client: discord.Client, brake: AuthBrake, channel_id: int, message_id: int, answers: int
) -> dict[int, tuple[Sender, list[int]]]:
    """Every voter of the poll on `message_id`, with the answer numbers (1-based) they
    chose, read page by page."""
    found: dict[int, tuple[Sender, list[int]]] = {}
    for answer in range(1, answers + 1):
        after: int | None = None
        while True:
            async with boundary(brake):
                data = await client.http.get_poll_answer_voters(
                    channel_id, message_id, answer, after=after, limit=PAGE
                )
            users = list(data.get("users") or [])
            for user in users:
                uid = int(user["id"])
                entry = found.setdefault(uid, (sender_from(user), []))
                entry[1].append(answer)
            if len(users) < PAGE:
                break
            after = int(users[-1]["id"])
    return found


class PollSync:
    def __init__(
        self,
        polls: PollBook,
        inbound: Inbound,
        brake: AuthBrake,
        client: Callable[[], discord.Client | None],
    ) -> None:
        self._polls = polls
        self._inbound = inbound
        self._brake = brake
        self._client = client
        self._task: asyncio.Task[None] | None = None
        self.snapshots = 0

    def reread_open(self) -> None:
        """At a new session: read every open native poll again, in the background (the
        gateway's events go on meanwhile)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.create_task(self._reread_all(), name="discord-poll-voters")

    async def _reread_all(self) -> None:
        opened = await self._polls.open_native()
        for message_id, channel_id in sorted(opened.items()):
            record = await self._polls.get(message_id)
            if record is None:
                continue
            try:
                await self.snapshot(channel_id, message_id, record, final=False)
            except (TransientSendError, PermanentSendError) as exc:
                # Read again at the next session, and in any case when the poll ends.
                log.warning("could not read the voters of poll %s: %s", message_id, exc)
        if opened:
            log.info("re-read the voters of %d open native poll(s)", len(opened))

    async def snapshot(
        self, channel_id: int, message_id: int, record: PollRecord, *, final: bool
    ) -> None:
        """Read the voters of one native poll and queue them for the core."""
        client = self._client()
        if client is None:
            raise TransientSendError("not connected to Discord")
        voters = await read_voters(client, self._brake, channel_id, message_id, len(record.answers))
        choices: dict[int, list[str]] = {}
        votes: list[tuple[Sender, tuple[str, ...]]] = []
        for uid, (sender, numbers) in sorted(voters.items()):
            chosen = [record.answers[n - 1] for n in sorted(numbers) if n <= len(record.answers)]
            choices[uid] = chosen
            votes.append((sender, tuple(chosen)))
        await self._polls.replace_choices(message_id, choices)
        final = final or (record.expiry > 0 and time.time() >= record.expiry)
        room, thread = place_of(
            client.get_channel(channel_id), channel_id, self._inbound.parents.get(channel_id)
        )
        me = client.user
        bot = Sender(UserRef("discord", str(me.id if me else 0)), me.name if me else "")
        now = discord.utils.utcnow()
        self._inbound.event(
            channel_id,
            PollVotesSnapshot(
                event_id=f"s{message_id}:{now.timestamp()}",
                room=room,
                sender=bot,
                at=now,
                poll=ref_of(room, thread, message_id),
                votes=tuple(votes),
                final=final,
            ),
        )
        self.snapshots += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
