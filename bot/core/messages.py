"""The outgoing message model, and its JSON form for the persisted outbox."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from bot.core.document import Document
from bot.core.refs import MessageRef, RoomRef, UserRef


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to post. `data` is the content; `url` a place to fetch it from instead."""

    filename: str
    content_type: str = "application/octet-stream"
    data: bytes | None = None
    url: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a relayed message is from: shown as the sender where the platform allows."""

    name: str
    association: str | None = None
    avatar_url: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.association})" if self.association else self.name


@dataclass(frozen=True, slots=True)
class PollAnswer:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Poll:
    """A poll to post natively where the platform has polls (Matrix MSC3381, Discord).

    `secret`: votes are not shown while it runs (Matrix "undisclosed"); adapters that
    cannot hide votes natively post buttons instead. `hours`: how long it runs, for
    platforms whose native polls need a duration (Discord)."""

    question: str
    answers: tuple[PollAnswer, ...]
    max_selections: int = 1
    secret: bool = False
    hours: int | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a message (Discord); a click arrives as `ButtonPressed`. With an
    `emoji`, platforms without buttons (Matrix) offer that reaction instead, placed by
    the bot so that members answer with one tap; a reaction arrives as `ReactionAdded`."""

    custom_id: str
    label: str
    emoji: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A post in platform-neutral form.

    `text` carries light formatting (Markdown-like: **bold**, *italic*, `code`, links);
    `html`, when given, is an already sanitised rendering for platforms that take HTML.
    `document`, when given, is the formatting itself (a relayed message's, parsed from
    its platform's form): adapters render it and `text` is its Markdown, for others.
    """

    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    reply_to: MessageRef | None = None
    # The reply target as a delivery key (a copy the bot posted or will post): delivery
    # resolves it when sending, so a reply can be queued before its target is out.
    reply_to_key: str | None = None
    # The thread to post in, by its root message (or the root's delivery key, resolved
    # like `reply_to_key`). None: the room's main timeline.
    thread: MessageRef | None = None
    thread_key: str | None = None
    attribution: Attribution | None = None
    mentions: tuple[UserRef, ...] = ()
    notice: bool = True
    ephemeral: bool = False
    poll: Poll | None = None
    buttons: tuple[Button, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    document: Document | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "text": self.text,
                "html": self.html,
                "attachments": [
                    {
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "data": base64.b64encode(a.data).decode() if a.data is not None else None,
                        "url": a.url,
                        "size": a.size,
                    }
                    for a in self.attachments
                ],
                "reply_to": str(self.reply_to) if self.reply_to else None,
                "reply_to_key": self.reply_to_key,
                "thread": str(self.thread) if self.thread else None,
                "thread_key": self.thread_key,
                "attribution": (
                    {
                        "name": self.attribution.name,
                        "association": self.attribution.association,
                        "avatar_url": self.attribution.avatar_url,
                    }
                    if self.attribution
                    else None
                ),
                "mentions": [str(m) for m in self.mentions],
                "notice": self.notice,
                "ephemeral": self.ephemeral,
                "poll": (
                    {
                        "question": self.poll.question,
                        "answers": [[a.id, a.text] for a in self.poll.answers],
                        "max_selections": self.poll.max_selections,
                        "secret": self.poll.secret,
                        "hours": self.poll.hours,
                    }
                    if self.poll
                    else None
                ),
                "buttons": [[b.custom_id, b.label, b.emoji] for b in self.buttons],
                "extra": self.extra,
                "document": self.document.to_obj() if self.document is not None else None,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str) -> OutgoingMessage:
        d = json.loads(raw)
        attribution = d.get("attribution")
        poll = d.get("poll")
        return cls(
            text=d["text"],
            html=d.get("html"),
            attachments=tuple(
                Attachment(
                    filename=a["filename"],
                    content_type=a["content_type"],
                    data=base64.b64decode(a["data"]) if a.get("data") is not None else None,
                    url=a.get("url"),
                    size=a.get("size"),
                )
                for a in d.get("attachments", [])
            ),
            reply_to=MessageRef.parse(d["reply_to"]) if d.get("reply_to") else None,
            reply_to_key=d.get("reply_to_key"),
            thread=MessageRef.parse(d["thread"]) if d.get("thread") else None,
            thread_key=d.get("thread_key"),
            attribution=Attribution(**attribution) if attribution else None,
            mentions=tuple(UserRef.parse(m) for m in d.get("mentions", [])),
            notice=d.get("notice", True),
            ephemeral=d.get("ephemeral", False),
            poll=(
                Poll(
                    question=poll["question"],
                    answers=tuple(PollAnswer(i, t) for i, t in poll["answers"]),
                    max_selections=poll["max_selections"],
                    secret=poll["secret"],
                    hours=poll.get("hours"),
                )
                if poll
                else None
            ),
            buttons=tuple(Button(*b) for b in d.get("buttons", [])),
            extra=d.get("extra") or {},
            document=Document.from_obj(d["document"]) if d.get("document") else None,
        )


def split_text(text: str, limit: int) -> list[str]:
    """Split text into parts of at most `limit` characters, preferring paragraph, then
    line, then sentence, then word boundaries, so that each part reads on its own."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", ". ", "! ", "? ", " "):
            pos = window.rfind(sep)
            if pos > limit // 4:
                cut = pos + len(sep)
                break
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest or not parts:
        parts.append(rest)
    return parts


__all__ = [
    "Attachment",
    "Attribution",
    "Button",
    "OutgoingMessage",
    "Poll",
    "PollAnswer",
    "RoomRef",
    "split_text",
]
