"""The `[polls]` section: how long a poll runs by default, and the rules of secrecy."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from bot.settings import Duration, Section, between

Platform = Literal["console", "matrix", "discord"]


def _in_rooms() -> list[Platform]:
    return ["console", "discord"]


class PollsSettings(Section):
    # How long a poll runs when `poll new` names neither --for nor --until.
    # At most what `poll new` accepts (plugins.polls.creating.LONGEST).
    default_duration: Annotated[Duration, between(timedelta(minutes=1), timedelta(days=365))] = (
        timedelta(days=3)
    )
    # After a poll's end, how long to wait for votes still on their way (a platform's
    # final voter list, a catch-up after downtime) before the results are counted.
    settle: Duration = timedelta(seconds=5)
    # In the per-association breakdown, groups smaller than this are folded together.
    min_group: Annotated[int, Field(ge=3, le=100)] = 3
    # Platforms where a written `vote` for a secret poll is accepted in a shared room:
    # the command is seen by no one else (Discord's slash commands), or the room is the
    # local console. Elsewhere (Matrix, where a command is a message the room reads) it
    # is refused and removed where the bot may, and the voter is asked to write directly.
    secret_votes_in_rooms: list[Platform] = Field(default_factory=_in_rooms)
    # A bar chart (PNG) with the results post.
    chart: bool = True
