"""The stand-in's world: users, guilds, channels, messages, webhooks, interactions.

Payloads are built in the shapes Discord sends (and discord.py reads), with snowflakes
made from the real clock so that `after=` queries and discord.py's time helpers agree.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH = 1420070400000

Json = dict[str, Any]


class Snowflakes:
    """Increasing snowflakes from the wall clock (ms since Discord's epoch << 22)."""

    def __init__(self) -> None:
        self._last = 0
        self._counter = itertools.count()

    def next(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH) << 22 | (next(self._counter) & 0xFFF)
        self._last = max(self._last + 1, value)
        return self._last


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat()


@dataclass
class User:
    id: int
    name: str
    bot: bool = False
    roles: dict[int, list[int]] = field(default_factory=dict)  # guild id -> role ids

    def payload(self) -> Json:
        data: Json = {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data

    def member(self, guild_id: int) -> Json:
        return {
            "user": self.payload(),
            "roles": [str(r) for r in self.roles.get(guild_id, [])],
            "joined_at": iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "avatar": None,
            "pending": False,
            "premium_since": None,
        }


@dataclass
class Channel:
    """A text channel, or (with `parent_id` and `owner_id`) a public thread under one."""

    id: int
    guild_id: int
    name: str
    parent_id: int | None = None
    owner_id: int | None = None
    last_message_id: int | None = None
    message_count: int = 0  # a thread's: neither the starter nor deleted messages count
    total_message_sent: int = 0
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    created_at: float = field(default_factory=time.time)

    @property
    def is_thread(self) -> bool:
        return self.parent_id is not None

    def payload(self) -> Json:
        if self.parent_id is not None:
            return self.thread_payload()
        return {
            "id": str(self.id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": _snowflake(self.last_message_id),
            "parent_id": None,
            "rate_limit_per_user": 0,
        }

    def thread_payload(self) -> Json:
        # The fields discord.py's Thread._from_data reads (type 11: a public thread).
        return {
            "id": str(self.id),
            "type": 11,
            "guild_id": str(self.guild_id),
            "parent_id": str(self.parent_id),
            "owner_id": str(self.owner_id),
            "name": self.name,
            "last_message_id": _snowflake(self.last_message_id),
            "message_count": self.message_count,
            "member_count": 1,
            "total_message_sent": self.total_message_sent,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": self.archived,
                "auto_archive_duration": self.auto_archive_duration,
                "archive_timestamp": iso(self.created_at),
                "locked": self.locked,
                "create_timestamp": iso(self.created_at),
            },
        }


def _snowflake(value: int | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class Guild:
    id: int
    name: str
    roles: dict[int, str] = field(default_factory=dict)

    def role_payloads(self) -> list[Json]:
        everyone = {"id": str(self.id), "name": "@everyone"}
        return [
            {
                **r,
                "permissions": "0",
                "position": i,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
            for i, r in enumerate(
                [everyone, *({"id": str(k), "name": v} for k, v in self.roles.items())]
            )
        ]


@dataclass
class Message:
    """A stored message; `data` is its payload, kept current on edits."""

    id: int
    channel_id: int
    data: Json
    author_id: int
    webhook_id: int | None = None
    nonce: str | None = None
    ephemeral: bool = False
    deleted: bool = False


@dataclass
class Webhook:
    id: int
    channel_id: int
    guild_id: int
    name: str
    token: str
    creator_id: int

    def payload(self, creator: User) -> Json:
        return {
            "id": str(self.id),
            "type": 1,
            "channel_id": str(self.channel_id),
            "guild_id": str(self.guild_id),
            "name": self.name,
            "avatar": None,
            "token": self.token,
            "application_id": None,
            "user": creator.payload(),
        }


@dataclass
class Interaction:
    id: int
    token: str
    channel_id: int
    guild_id: int
    user_id: int
    kind: int = 2  # 2: an application command, 3: a component, 4: autocomplete
    message_id: int | None = None  # a component's: the message it is on
    acknowledged: int | None = None  # the callback type, once answered
    original_id: int | None = None
    deferred_ephemeral: bool = False
    loading: bool = False  # deferred: the "thinking" message waits for its first followup
    answered_at: float | None = None
    created_at: float = field(default_factory=time.monotonic)


def new_token() -> str:
    return secrets.token_urlsafe(32)
