"""A poll as stored, its answer ids, and the names of everything it posts or schedules.

Answer ids are "1".."20", the numbers members type (`vote 5 2`): the Matrix adapter
sends them as MSC3381 answer ids, the Discord adapter maps native answers and buttons to
them. Delivery keys name each post (`poll:<id>:start:<room>` and so on), so that a
platform message is mapped back to its poll through `Delivery.key_for`, and a repeat
after a restart posts nothing twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from bot.core.refs import RoomRef

MIN_ANSWERS: Final = 2
MAX_ANSWERS: Final = 20
# A poll id beyond this is no poll of ours (and would overflow SQLite's integers).
MAX_ID: Final = 2**31

OPEN: Final = "open"
CLOSING: Final = "closing"  # ended; waiting for votes still on their way, then counted
CLOSED: Final = "closed"

DEADLINE_JOB: Final = "deadline"
TALLY_JOB: Final = "tally"
CHECKPOINT_JOB: Final = "checkpoint"

_START: Final = re.compile(r"^poll:(\d+):start:(.+)$")


@dataclass(frozen=True, slots=True)
class PollRecord:
    id: int
    question: str
    answers: tuple[str, ...]
    max_selections: int
    secret: bool
    creator: str | None  # forgotten at the close
    created_at: datetime
    closes_at: datetime
    closed_at: datetime | None
    state: str
    associations: tuple[str, ...]
    rooms: tuple[RoomRef, ...]

    @property
    def answer_ids(self) -> tuple[str, ...]:
        return answer_ids(len(self.answers))

    @property
    def cutoff(self) -> datetime:
        """Votes cast at this instant or later do not count."""
        return self.closed_at or self.closes_at

    def accepts_votes(self) -> bool:
        return self.state in (OPEN, CLOSING)

    def label(self, answer: str) -> str:
        """The text of answer id `answer`."""
        return self.answers[int(answer) - 1]


def answer_ids(count: int) -> tuple[str, ...]:
    return tuple(str(n) for n in range(1, count + 1))


def start_key(poll_id: int, room: RoomRef) -> str:
    return f"poll:{poll_id}:start:{room}"


def end_key(poll_id: int, room: RoomRef) -> str:
    return f"poll:{poll_id}:end:{room}"


def results_key(poll_id: int, room: RoomRef) -> str:
    return f"poll:{poll_id}:results:{room}"


def remind_key(poll_id: int, stamp: str, room: RoomRef) -> str:
    return f"poll:{poll_id}:remind:{stamp}:{room}"


def ack_prefix(poll_id: int) -> str:
    """Every answer to a voter of this poll: forgotten at a secret poll's close."""
    return f"poll:{poll_id}:ack:"


def ack_key(poll_id: int, platform: str, event_id: str, part: str = "") -> str:
    return f"{ack_prefix(poll_id)}{platform}:{event_id}" + (f":{part}" if part else "")


def job_key(kind: str, poll_id: int) -> str:
    return f"polls:{kind}:{poll_id}"


def parse_start_key(key: str) -> tuple[int, RoomRef] | None:
    """The poll and room of a start post's delivery key; None for any other key."""
    m = _START.match(key)
    if m is None:
        return None
    try:
        return int(m[1]), RoomRef.parse(m[2])
    except ValueError:
        return None
