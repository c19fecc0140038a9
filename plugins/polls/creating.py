"""`poll new`: what an organiser asked for, checked before anything is stored.

Every mistake is a UserError with its own catalog key, raised before the first write,
so that a refused poll leaves nothing behind.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bot.core.associations import Directory
from bot.core.errors import UserError
from bot.core.refs import RoomRef
from plugins.polls.model import MAX_ANSWERS, MIN_ANSWERS

QUESTION_CHARS: Final = 300  # Discord's limit for a native poll's question
ANSWER_CHARS: Final = 80  # what a Discord button label holds
LONGEST: Final = timedelta(days=365)
_AS_SPACE: Final = frozenset({"Cc", "Zl", "Zp"})
_DROPPED: Final = frozenset({"Cf", "Co", "Cs"})
_ZWJ: Final = "\u200d"


@dataclass(frozen=True, slots=True)
class NewPoll:
    question: str
    answers: tuple[str, ...]
    max_selections: int
    secret: bool
    closes_at: datetime
    associations: tuple[str, ...]
    rooms: tuple[RoomRef, ...]

    def hours(self, now: datetime) -> int:
        """How long it runs, in whole hours rounded up (for platforms that need it)."""
        return max(1, math.ceil((self.closes_at - now) / timedelta(hours=1)))


def clean(text: str) -> str:
    """One line of plain text: control characters out, runs of space made one."""
    kept: list[str] = []
    for ch in text:
        kind = unicodedata.category(ch)
        if kind in _AS_SPACE:
            kept.append(" ")
        elif kind not in _DROPPED or ch == _ZWJ:  # the joiner holds emoji together
            kept.append(ch)
    return " ".join("".join(kept).split())


def _same(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def read(
    args: Mapping[str, Any],
    *,
    now: datetime,
    default_duration: timedelta,
    room: RoomRef,
    directory: Directory,
) -> NewPoll:
    question = clean(str(args["question"]))
    if not question:
        raise UserError("polls.new.empty_question")
    if len(question) > QUESTION_CHARS:
        raise UserError("polls.new.long_question", max=QUESTION_CHARS)
    answers = tuple(clean(str(a)) for a in args["answers"])
    _check_answers(answers)
    multi = args.get("multi")
    max_selections = 1 if multi is None else int(multi)
    if not 1 <= max_selections <= len(answers):
        raise UserError("polls.new.bad_multi", n=max_selections, count=len(answers))
    closes_at = _deadline(args.get("for"), args.get("until"), now, default_duration)
    associations, rooms = _targets(args.get("in"), room, directory)
    return NewPoll(
        question=question,
        answers=answers,
        max_selections=max_selections,
        secret=bool(args.get("secret")),
        closes_at=closes_at,
        associations=associations,
        rooms=rooms,
    )


def _check_answers(answers: Sequence[str]) -> None:
    if len(answers) < MIN_ANSWERS:
        raise UserError("polls.new.too_few", min=MIN_ANSWERS)
    if len(answers) > MAX_ANSWERS:
        raise UserError("polls.new.too_many", max=MAX_ANSWERS, count=len(answers))
    seen: dict[str, int] = {}
    for n, answer in enumerate(answers, 1):
        if not answer:
            raise UserError("polls.new.empty_answer", n=n)
        if len(answer) > ANSWER_CHARS:
            raise UserError("polls.new.long_answer", n=n, max=ANSWER_CHARS)
        same = seen.get(_same(answer))
        if same is not None:
            raise UserError("polls.new.duplicate", n=n, first=same, answer=answer)
        seen[_same(answer)] = n


def _deadline(
    length: timedelta | None, until: datetime | None, now: datetime, default: timedelta
) -> datetime:
    if length is not None and until is not None:
        raise UserError("polls.new.for_and_until")
    closes_at = until.astimezone(UTC) if until is not None else now + (length or default)
    if closes_at <= now:
        raise UserError("polls.new.past")
    if closes_at - now > LONGEST:
        raise UserError("polls.new.too_far", days=LONGEST.days)
    return closes_at


def _targets(
    chosen: Sequence[str] | None, room: RoomRef, directory: Directory
) -> tuple[tuple[str, ...], tuple[RoomRef, ...]]:
    if chosen is None:
        here = directory.of_room(room)
        if here is None:
            raise UserError("polls.new.no_association")
        chosen = (here.id,)
    associations = tuple(a.id for a in directory.select(chosen))
    rooms = tuple(directory.rooms_for(associations))
    if not rooms:
        raise UserError("polls.new.no_rooms")
    # Only associations with a room take part: the others could never vote.
    with_rooms = tuple(a for a in associations if (found := directory.get(a)) and found.rooms)
    return with_rooms, rooms
