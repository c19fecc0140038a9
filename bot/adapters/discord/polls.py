"""Polls as Discord's native polls where they fit, otherwise as buttons or a select menu;
votes back.

A native poll holds at most 10 answers of 55 characters, runs 1 to 768 hours, cannot
limit a multiple choice to N of M, and shows its voters to anyone: a secret poll, or one
that does not fit, is posted with one button per answer, or past five answers with a
select menu (its picks are the voter's whole choice). Which kind a message is, its
answers and its channel are kept in the adapter state. Who chose what is kept only for
open polls, and only while they run: Discord reports one native answer per event, and a
click on an answer of a multiple-choice button poll stands for "add or remove this one".
For a secret poll the adapter keeps no choice at all: the click goes to the core as a
toggle, and the polls plugin, which keeps the ballot under a keyed hash, applies it.
"""

from __future__ import annotations

import asyncio
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
SELECT_ID: Final = "vote-select"  # the custom id of a poll's select menu
BUTTON_ANSWERS: Final = 5  # past this many answers, a select menu (one row of buttons)
_SELECT_OPTIONS: Final = 25
_LABEL_MAX: Final = 80
_OPTION_MAX: Final = 100
_PLACEHOLDER_MAX: Final = 150


def fits_native(poll: Poll) -> bool:
    return (
        not poll.secret
        and 1 <= len(poll.answers) <= NATIVE_ANSWERS
        and all(1 <= len(a.text) <= NATIVE_ANSWER_CHARS for a in poll.answers)
        and 1 <= len(poll.question) <= NATIVE_QUESTION_CHARS
        and (poll.hours is None or poll.hours <= NATIVE_MAX_HOURS)
        # Discord's multiple choice has no upper bound: "2 of 4" cannot be native.
        and (poll.max_selections <= 1 or poll.max_selections >= len(poll.answers))
    )


def native_poll(poll: Poll) -> discord.Poll:
    hours = max(1, min(NATIVE_MAX_HOURS, poll.hours or 24))
    native = discord.Poll(
        poll.question, duration=timedelta(hours=hours), multiple=poll.max_selections > 1
    )
    for answer in poll.answers:
        native.add_answer(text=answer.text)
    return native


def poll_kind(poll: Poll, native_allowed: bool) -> str:
    if native_allowed and fits_native(poll):
        return "native"
    return "buttons" if len(poll.answers) <= BUTTON_ANSWERS else "select"


def poll_choices(poll: Poll, kind: str) -> list[list[str]]:
    """What the message offers: [custom id, label] per button, or [value, label] per
    option of the select menu (the value is the answer's id)."""
    if kind == "select":
        if len(poll.answers) > _SELECT_OPTIONS:
            log.warning("poll has %d answers; a menu shows %d", len(poll.answers), _SELECT_OPTIONS)
        return [
            [a.id[:_OPTION_MAX], f"{n}. {a.text}"[:_OPTION_MAX]]
            for n, a in enumerate(poll.answers[:_SELECT_OPTIONS], 1)
        ]
    return [
        [f"{VOTE_PREFIX}{a.id}"[:100], f"{n}. {a.text}"[:_LABEL_MAX]]
        for n, a in enumerate(poll.answers, 1)
    ]


def poll_buttons(poll: Poll) -> tuple[Button, ...]:
    return tuple(Button(c, label) for c, label in poll_choices(poll, "buttons"))


def button_view(buttons: tuple[Button, ...], *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for button in buttons[:25]:
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


def select_view(
    options: list[list[str]], max_values: int, placeholder: str, *, disabled: bool = False
) -> discord.ui.View:
    """One string select: up to `max_values` picks, none to take a vote back."""
    view = discord.ui.View(timeout=None)
    view.add_item(
        discord.ui.Select(
            custom_id=SELECT_ID,
            placeholder=placeholder[:_PLACEHOLDER_MAX] or None,
            min_values=0,
            max_values=max(1, min(max_values, len(options))),
            options=[discord.SelectOption(label=label, value=value) for value, label in options],
            disabled=disabled,
        )
    )
    view.stop()
    return view


@dataclass
class PollRecord:
    kind: str  # "native", "buttons" or "select"
    answers: list[str]
    max_selections: int = 1
    buttons: list[list[str]] = field(default_factory=list)  # see `poll_choices`
    secret: bool = False
    channel: int = 0  # where the message is (a thread's id, for a post in a thread)
    expiry: float = 0.0  # a native poll's end on Discord (Unix time)
    placeholder: str = ""

    def view(self, *, disabled: bool = False) -> discord.ui.View | None:
        if self.kind == "select":
            return select_view(
                self.buttons, self.max_selections, self.placeholder, disabled=disabled
            )
        if self.kind == "buttons" and self.buttons:
            buttons = tuple(Button(c, label) for c, label in self.buttons)
            return button_view(buttons, disabled=disabled)
        return None


_OPEN_NATIVE: Final = "polls_open"  # native polls not yet closed: message id -> channel


class PollBook:
    """Which messages are polls, and each voter's current choice while it runs, kept in
    the adapter state: Discord reports one answer per event (a vote added or removed, a
    button clicked), and a restart must not forget what a voter chose before it."""

    def __init__(self, state: AdapterState) -> None:
        self._state = state
        self._cache: dict[int, PollRecord | None] = {}
        self._choices: dict[tuple[int, int], list[str]] = {}
        # Polls go out in several delivery lanes at once: the index of open native polls
        # is read and written by one at a time, or one lane's entry would be lost.
        self._index_lock = asyncio.Lock()

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
                    "secret": record.secret,
                    "channel": record.channel,
                    "expiry": record.expiry,
                    "placeholder": record.placeholder,
                }
            ),
        )
        if record.kind == "native":
            async with self._index_lock:
                opened = await self.open_native()
                opened[message_id] = record.channel
                await self._save_open(opened)

    async def get(self, message_id: int) -> PollRecord | None:
        if message_id not in self._cache:
            raw = await self._state.get(f"poll:{message_id}")
            data = json.loads(raw) if raw else None
            self._cache[message_id] = (
                PollRecord(
                    data["kind"],
                    data["answers"],
                    data.get("max", 1),
                    data.get("buttons", []),
                    bool(data.get("secret", False)),
                    int(data.get("channel", 0)),
                    float(data.get("expiry", 0.0)),
                    str(data.get("placeholder", "")),
                )
                if data
                else None
            )
        return self._cache[message_id]

    async def open_native(self) -> dict[int, int]:
        """The native polls posted and not closed: message id -> channel id."""
        raw = await self._state.get(_OPEN_NATIVE)
        return {int(m): int(c) for m, c in json.loads(raw).items()} if raw else {}

    async def _save_open(self, opened: dict[int, int]) -> None:
        await self._state.set(_OPEN_NATIVE, json.dumps({str(m): c for m, c in opened.items()}))

    async def replace_choices(self, message_id: int, choices: dict[int, list[str]]) -> None:
        """Every voter's choice as Discord listed it (a native poll's voters, re-read):
        later add and remove events apply to this."""
        await self._state.delete_prefix(f"choice:{message_id}:")
        for key in [k for k in self._choices if k[0] == message_id]:
            del self._choices[key]
        for user_id, chosen in choices.items():
            self._choices[(message_id, user_id)] = list(chosen)
            await self._state.set(self._choice_key(message_id, user_id), json.dumps(chosen))

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
        """One answer per click; in a multiple-choice poll a click toggles it. Never for
        a secret poll, whose choices are not kept here."""
        assert not record.secret, "a secret poll's choices are not kept by the adapter"
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
        async with self._index_lock:
            opened = await self.open_native()
            if opened.pop(message_id, None) is not None:
                await self._save_open(opened)
