"""`[[bridges]]`: sets of rooms that read as one conversation."""

from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator

from bot.settings import Duration, Identifier, Room, Section


class BridgeSettings(Section):
    id: Identifier
    rooms: list[Room]
    # How long the map from a message to its copies is kept (edits, deletions, replies
    # and reactions follow for this long). No message text is ever stored.
    retention: Duration = timedelta(days=30)

    @field_validator("rooms")
    @classmethod
    def _at_least_two(cls, rooms: list[Room]) -> list[Room]:
        if len(set(rooms)) < 2:
            raise ValueError("a bridge needs at least two different rooms")
        if len(set(rooms)) != len(rooms):
            raise ValueError("a room appears twice in the bridge")
        return rooms
