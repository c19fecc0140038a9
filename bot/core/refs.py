"""References to rooms, users and messages, written `<platform>:<id>`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

PLATFORMS: Final = ("console", "matrix", "discord")

# What a well-formed id looks like on each platform. Room aliases (#alias:server) are
# accepted on Matrix because organisers copy them from their clients. Room ids of room
# version 12 have no server part (`!<hash>`); older ones end in `:server`.
_ROOM_ID: Final = {
    "console": re.compile(r"^[\w-]{1,64}$"),
    "matrix": re.compile(r"^(![^:\s/]+(:\S+)?|#[^:\s]+:\S+)$"),
    "discord": re.compile(r"^\d{1,20}$"),
}
_USER_ID: Final = {
    "console": re.compile(r"^[\w.-]{1,64}$"),
    "matrix": re.compile(r"^@[^:\s]+:\S+$"),
    "discord": re.compile(r"^\d{1,20}$"),
}


def _split(text: str, kind: str, patterns: dict[str, re.Pattern[str]]) -> tuple[str, str]:
    platform, sep, ident = text.strip().partition(":")
    if not sep or platform not in patterns:
        raise ValueError(
            f"{kind} reference {text!r} must start with one of "
            + ", ".join(f"'{p}:'" for p in PLATFORMS)
        )
    if not patterns[platform].match(ident):
        raise ValueError(f"{kind} reference {text!r} is not a valid {platform} {kind} id")
    return platform, ident


@dataclass(frozen=True, slots=True, order=True)
class RoomRef:
    platform: str
    id: str

    @classmethod
    def parse(cls, text: str) -> RoomRef:
        return cls(*_split(text, "room", _ROOM_ID))

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"


@dataclass(frozen=True, slots=True, order=True)
class UserRef:
    platform: str
    id: str

    @classmethod
    def parse(cls, text: str) -> UserRef:
        return cls(*_split(text, "user", _USER_ID))

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"


@dataclass(frozen=True, slots=True, order=True)
class MessageRef:
    """A message as the platform knows it: its room and the platform's message id."""

    room: RoomRef
    id: str

    @classmethod
    def parse(cls, text: str) -> MessageRef:
        # Event ids may hold "/" (old Matrix room versions); room ids do not.
        room, sep, ident = text.partition("/")
        if not sep or not ident:
            raise ValueError(f"message reference {text!r} must be '<room>/<message id>'")
        return cls(RoomRef.parse(room), ident)

    def __str__(self) -> str:
        return f"{self.room}/{self.id}"
