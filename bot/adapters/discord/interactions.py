"""Interactions: answered within Discord's three seconds, replies as followups.

A slash command becomes `CommandInvoked` with an origin that names the interaction
(`i<id>`). If the framework's first reply comes within `defer_after` seconds it is the
interaction's answer itself (ephemeral or not, as asked); otherwise the interaction is
deferred ("thinking…") and replies follow as followups. A followup token lives 15
minutes; later replies go to the channel as normal messages.

A click on a button or a pick in a select menu (a component) is acknowledged at once,
without a visible message ("deferred update"), before the core has seen it: under a
burst of votes the channel's queue may take longer than three seconds to reach it. The
plugin's answer (a vote's confirmation, for the voter alone) follows as a followup.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import discord

from bot.adapters.discord.errors import AuthBrake, boundary
from bot.core.refs import MessageRef, RoomRef

log = logging.getLogger(__name__)

_TOKEN_LIFETIME: Final = 14 * 60.0  # a little under Discord's 15 minutes
ORIGIN_PREFIX: Final = "i"


def origin_ref(interaction: discord.Interaction[Any]) -> MessageRef:
    return MessageRef(
        RoomRef("discord", str(interaction.channel_id)), f"{ORIGIN_PREFIX}{interaction.id}"
    )


def interaction_id(ref: MessageRef | None) -> int | None:
    if ref is None or not ref.id.startswith(ORIGIN_PREFIX) or not ref.id[1:].isdigit():
        return None
    return int(ref.id[1:])


@dataclass
class _Pending:
    interaction: discord.Interaction[Any]
    created: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answered: bool = False
    deferred: bool = False
    filled: bool = False  # the deferred "thinking" message was replaced by a reply
    timer: asyncio.Task[None] | None = None
    component: bool = False
    # Per delivery token, the ids of the parts already out (0: the first answer, whose id
    # Discord does not give): a retry after a part failed sends only the rest.
    progress: dict[str, list[int]] = field(default_factory=dict)


class Interactions:
    def __init__(self, brake: AuthBrake, *, defer_after: float = 2.0) -> None:
        self._brake = brake
        self.defer_after = defer_after
        self._pending: dict[int, _Pending] = {}
        self.deferred = 0
        self.answered = 0

    def track(
        self, interaction: discord.Interaction[Any], *, component: bool = False
    ) -> MessageRef:
        """Remember `interaction` for the replies that answer it; `component`: a click or
        a pick, acknowledged right away."""
        self._expire()
        pending = _Pending(interaction, component=component)
        self._pending[interaction.id] = pending
        pending.timer = asyncio.create_task(self._defer_later(pending), name="discord-defer")
        return origin_ref(interaction)

    def _expire(self) -> None:
        now = time.monotonic()
        for key, pending in list(self._pending.items()):
            if now - pending.created > _TOKEN_LIFETIME:
                del self._pending[key]

    async def _defer_later(self, pending: _Pending) -> None:
        if not pending.component:
            await asyncio.sleep(self.defer_after)
        async with pending.lock:
            if pending.answered:
                return
            try:
                async with boundary(self._brake):
                    # A component's deferral shows nothing: there is no "thinking" post
                    # to fill or remove later.
                    await pending.interaction.response.defer(thinking=not pending.component)
            except Exception:
                log.exception("could not defer interaction %s", pending.interaction.id)
                return
            pending.answered = pending.deferred = True
            pending.filled = pending.component
            self.deferred += 1

    async def reply(
        self,
        ref: MessageRef,
        parts: list[str],
        ephemeral: bool,
        files: Sequence[tuple[str, bytes]] = (),
        token: str = "",
    ) -> MessageRef | None:
        """Answer the interaction `ref` names; None if it is unknown or expired. `files`
        go with the last part. A retry with the same delivery `token` sends only the
        parts that did not go out before."""
        key = interaction_id(ref)
        pending = self._pending.get(key) if key is not None else None
        if pending is None or time.monotonic() - pending.created > _TOKEN_LIFETIME:
            return None
        interaction = pending.interaction
        mentions = discord.AllowedMentions.none()
        async with pending.lock:
            if pending.timer is not None:
                pending.timer.cancel()
            ids = pending.progress.setdefault(token, [])

            def attach(last: bool) -> dict[str, Any]:
                if not last or not files:
                    return {}
                return {"files": [discord.File(io.BytesIO(data), filename=n) for n, data in files]}

            async with boundary(self._brake):
                for index in range(len(ids), len(parts)):
                    last = index == len(parts) - 1
                    if not pending.answered:
                        response = await interaction.response.send_message(
                            parts[index],
                            ephemeral=ephemeral,
                            allowed_mentions=mentions,
                            **attach(last),
                        )
                        pending.answered = True
                        self.answered += 1
                        ids.append(getattr(response, "message_id", None) or 0)
                        continue
                    if pending.deferred and not pending.filled and ephemeral:
                        # A followup would fill the public "thinking" message: remove it so
                        # that what is meant for the caller alone stays with them.
                        with contextlib.suppress(discord.NotFound):
                            await interaction.delete_original_response()
                        pending.filled = True
                    sent = await interaction.followup.send(
                        parts[index],
                        ephemeral=ephemeral,
                        allowed_mentions=mentions,
                        wait=True,
                        **attach(last),
                    )
                    pending.filled = True
                    ids.append(sent.id)
        known = [i for i in ids if i]
        room = RoomRef("discord", str(interaction.channel_id))
        return MessageRef(room, str(known[0])) if known else ref

    async def stop(self) -> None:
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
