"""Polls as Discord's native polls where they fit, otherwise as buttons; votes back.

A native poll holds at most 10 answers of 55 characters, runs 1 to 768 hours and shows
its votes: a secret poll, or one that does not fit, is posted with one button per
answer instead. Which kind a message is, and its answer ids, are kept in the adapter
state (not who voted: votes go straight to the core).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import discord

from bot.core.messages import Button, Poll
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

NATIVE_ANSWERS: Final = 10
NATIVE_ANSWER_CHARS: Final = 55
NATIVE_QUESTION_CHARS: Final = 300
NATIVE_MAX_HOURS: Final = 768
VOTE_PREFIX: Final = "vote:"
_BUTTONS_MAX: Final = 25
_LABEL_MAX: Final = 80


def fits_native(poll: Poll) -> bool:
    return (
        not poll.secret
        and 1 <= len(poll.answers) <= NATIVE_ANSWERS
        and all(1 <= len(a.text) <= NATIVE_ANSWER_CHARS for a in poll.answers)
        and 1 <= len(poll.question) <= NATIVE_QUESTION_CHARS
    )


def native_poll(poll: Poll) -> discord.Poll:
    hours = max(1, min(NATIVE_MAX_HOURS, poll.hours or 24))
    native = discord.Poll(
        poll.question, duration=timedelta(hours=hours), multiple=poll.max_selections > 1
    )
    for answer in poll.answers:
        native.add_answer(text=answer.text)
    return native


def poll_buttons(poll: Poll) -> tuple[Button, ...]:
    if len(poll.answers) > _BUTTONS_MAX:
        log.warning("poll has %d answers; only %d fit as buttons", len(poll.answers), _BUTTONS_MAX)
    return tuple(
        Button(f"{VOTE_PREFIX}{a.id}", f"{n}. {a.text}"[:_LABEL_MAX])
        for n, a in enumerate(poll.answers[:_BUTTONS_MAX], 1)
    )


def button_view(buttons: tuple[Button, ...], *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for button in buttons[:_BUTTONS_MAX]:
        view.add_item(
            discord.ui.Button(
                label=button.label[:_LABEL_MAX],
                custom_id=button.custom_id[:100],
                style=discord.ButtonStyle.secondary,
                disabled=disabled,
            )
        )
    # Clicks are read from the raw interactions: discord.py need not keep the view.
    view.stop()
    return view


@dataclass
class PollRecord:
    kind: str  # "native" or "buttons"
    answers: list[str]
    max_selections: int = 1
    buttons: list[list[str]] = field(default_factory=list)


class PollBook:
    """Which messages are polls, and each voter's current choice while it runs, kept in
    the adapter state: Discord reports one answer per event (a vote added or removed, a
    button clicked), and a restart must not forget what a voter chose before it."""

    def __init__(self, state: AdapterState) -> None:
        self._state = state
        self._cache: dict[int, PollRecord | None] = {}
        self._choices: dict[tuple[int, int], list[str]] = {}

    async def remember(self, message_id: int, record: PollRecord) -> None:
        self._cache[message_id] = record
        await self._state.set(
            f"poll:{message_id}",
            json.dumps(
                {
                    "kind": record.kind,
                    "answers": record.answers,
                    "max": record.max_selections,
                    "buttons": record.buttons,
                }
            ),
        )

    async def get(self, message_id: int) -> PollRecord | None:
        if message_id not in self._cache:
            raw = await self._state.get(f"poll:{message_id}")
            data = json.loads(raw) if raw else None
            self._cache[message_id] = (
                PollRecord(
                    data["kind"], data["answers"], data.get("max", 1), data.get("buttons", [])
                )
                if data
                else None
            )
        return self._cache[message_id]

    @staticmethod
    def _choice_key(message_id: int, user_id: int) -> str:
        # Ended by a colon, so that `closed` can forget a poll's choices by prefix.
        return f"choice:{message_id}:{user_id}:"

    async def _chosen(self, message_id: int, user_id: int) -> list[str]:
        key = (message_id, user_id)
        if key not in self._choices:
            raw = await self._state.get(self._choice_key(message_id, user_id))
            self._choices[key] = [str(a) for a in json.loads(raw)] if raw else []
        return self._choices[key]

    async def _save(self, message_id: int, user_id: int, chosen: list[str]) -> tuple[str, ...]:
        # Taken before the write: a click handled meanwhile changes `chosen` in place.
        now = tuple(chosen)
        await self._state.set(self._choice_key(message_id, user_id), json.dumps(now))
        return now

    async def native_vote(
        self, message_id: int, user_id: int, record: PollRecord, answer_index: int, added: bool
    ) -> tuple[str, ...] | None:
        """The voter's choice after Discord's add/remove of answer `answer_index` (1-based)."""
        if not 1 <= answer_index <= len(record.answers):
            return None
        answer = record.answers[answer_index - 1]
        chosen = await self._chosen(message_id, user_id)
        if added and answer not in chosen:
            chosen.append(answer)
        elif not added and answer in chosen:
            chosen.remove(answer)
        return await self._save(message_id, user_id, chosen)

    async def button_vote(
        self, message_id: int, user_id: int, record: PollRecord, answer: str
    ) -> tuple[str, ...]:
        """One answer per click; in a multiple-choice poll a click toggles it."""
        if record.max_selections <= 1:
            return (answer,)
        chosen = await self._chosen(message_id, user_id)
        if answer in chosen:
            chosen.remove(answer)
        elif len(chosen) < record.max_selections:
            chosen.append(answer)
        return await self._save(message_id, user_id, chosen)

    async def closed(self, message_id: int) -> None:
        for key in [k for k in self._choices if k[0] == message_id]:
            del self._choices[key]
        await self._state.delete_prefix(f"choice:{message_id}:")
