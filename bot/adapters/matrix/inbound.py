"""Inbound conversion: Matrix event JSON into core events, in this one place.

Works on the plain event dict (`event.source` from nio, decrypted where nio could), so
that unknown-to-nio types such as polls and reactions take the same path as messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.document import Document, Paragraph, Styled, Text
from bot.core.events import (
    InboundEvent,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    PollVoteReceived,
    ReactionAdded,
    ReactionRemoved,
    Sender,
)
from bot.core.html_in import parse_html
from bot.core.messages import Attachment
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.core.text import cap, clean

POLL_RESPONSE_TYPES = ("org.matrix.msc3381.poll.response", "m.poll.response")
MEDIA_MSGTYPES = {"m.image", "m.file", "m.video", "m.audio"}
TEXT_MSGTYPES = {"m.text", "m.notice", "m.emote"}
INBOUND_LIMIT = 65_536  # an event is at most 64 KiB, so no body is longer

_REPLY_FALLBACK_HTML = re.compile(r"^<mx-reply>.*?</mx-reply>", re.DOTALL)
_FALLBACK_SENDER = re.compile(r"^(?:\* )?<([^>]+)> (.*)$", re.DOTALL)


@dataclass(frozen=True)
class Media:
    """A file an event points at: `mxc` plain, or `encrypted` (the `file` object)."""

    mxc: str
    encrypted: dict[str, Any] | None


def _relates(content: dict[str, Any]) -> dict[str, Any]:
    rel = content.get("m.relates_to")
    return rel if isinstance(rel, dict) else {}


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted `> ...` lines older clients put before a reply's own text."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def fallback_quote(body: str) -> str | None:
    """The quoted original of a reply's fallback (`> <@anna:hs> text`) as "sender: text",
    or None without a fallback (newer clients send none)."""
    if not body.startswith("> "):
        return None
    quoted = []
    for line in body.split("\n"):
        if not line.startswith(">"):
            break
        quoted.append(line[1:].removeprefix(" "))
    match = _FALLBACK_SENDER.match(" ".join(quoted))
    if match is None:
        return None
    return f"{match[1]}: {match[2].strip()}"


def media_of(content: dict[str, Any]) -> Media | None:
    if content.get("msgtype") not in MEDIA_MSGTYPES:
        return None
    file = content.get("file")
    if isinstance(file, dict) and isinstance(file.get("url"), str):
        return Media(file["url"], file)
    url = content.get("url")
    return Media(url, None) if isinstance(url, str) else None


def attachment_of(content: dict[str, Any], data: bytes | None) -> Attachment:
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    assert isinstance(info, dict)
    media = media_of(content)
    size = info.get("size")
    return Attachment(
        filename=str(content.get("filename") or content.get("body") or "file"),
        content_type=str(info.get("mimetype") or "application/octet-stream"),
        data=data,
        url=media.mxc if media else None,
        size=size if isinstance(size, int) else (len(data) if data is not None else None),
    )


def _poll_answers(event_type: str, content: dict[str, Any]) -> tuple[str, ...] | None:
    if event_type == "m.poll.response":
        raw = content.get("m.selections")
    else:
        body = content.get("org.matrix.msc3381.poll.response")
        raw = body.get("answers") if isinstance(body, dict) else None
    if not isinstance(raw, list):
        return None
    return tuple(str(a) for a in raw if isinstance(a, str))


def convert(
    room_id: str,
    source: dict[str, Any],
    display_name: str,
    *,
    attachment_data: bytes | None = None,
    reactions: dict[str, tuple[str, str]] | None = None,
) -> InboundEvent | None:
    """One Matrix event as a core event, or None for what the framework does not use.

    `reactions` maps reaction event ids to (target id, key), so that the redaction of a
    reaction becomes ReactionRemoved rather than MessageDeleted."""
    event_id = source.get("event_id")
    sender_id = source.get("sender")
    event_type = source.get("type")
    content = source.get("content")
    if not (isinstance(event_id, str) and isinstance(sender_id, str)):
        return None
    if not isinstance(content, dict):
        content = {}
    room = RoomRef("matrix", room_id)
    ts = source.get("origin_server_ts")
    at = datetime.fromtimestamp(ts / 1000 if isinstance(ts, int | float) else 0, UTC)
    base: dict[str, Any] = {
        "event_id": event_id,
        "room": room,
        "sender": Sender(UserRef("matrix", sender_id), display_name),
        "at": at,
    }
    rel = _relates(content)
    target_id = rel.get("event_id") if isinstance(rel.get("event_id"), str) else None

    if event_type == "m.room.message":
        if rel.get("rel_type") == "m.replace" and target_id:
            new = content.get("m.new_content")
            new = new if isinstance(new, dict) else content
            return MessageEdited(
                **base,
                ref=MessageRef(room, target_id),
                text=str(new.get("body", "")),
                html=_html(new),
                document=document_of(new, str(new.get("body", "")), _html(new), display_name),
            )
        msgtype = content.get("msgtype")
        if msgtype not in TEXT_MSGTYPES and msgtype not in MEDIA_MSGTYPES:
            return None
        thread = None
        if rel.get("rel_type") == "m.thread" and target_id:
            thread = MessageRef(room, target_id)
        reply_to = None
        in_reply = rel.get("m.in_reply_to")
        reply_id = in_reply.get("event_id") if isinstance(in_reply, dict) else None
        # In a thread, a reply marked as falling back only points at the latest post.
        if isinstance(reply_id, str) and not (thread is not None and rel.get("is_falling_back")):
            reply_to = MessageRef(room, reply_id)
        body = str(content.get("body", ""))
        html = _html(content)
        reply_quote = None
        if reply_to is not None:
            reply_quote = fallback_quote(body)
            body = strip_reply_fallback(body)
            html = _REPLY_FALLBACK_HTML.sub("", html) if html else html
        attachments: tuple[Attachment, ...] = ()
        if msgtype in MEDIA_MSGTYPES:
            attachments = (attachment_of(content, attachment_data),)
            # A media event's body is its file name, or a caption when `filename` is
            # given apart (MSC2530): only a caption is text.
            filename = content.get("filename")
            if not (isinstance(filename, str) and filename and filename != body):
                body, html = "", None
        document = document_of(content, body, html, display_name) if body or html else None
        return MessageReceived(
            **base,
            ref=MessageRef(room, event_id),
            text=body,
            html=html,
            attachments=attachments,
            reply_to=reply_to,
            reply_quote=reply_quote,
            thread=thread,
            is_notice=msgtype == "m.notice",
            document=document,
        )
    if event_type == "m.room.redaction":
        redacts = source.get("redacts") or content.get("redacts")
        if not isinstance(redacts, str):
            return None
        known = (reactions or {}).get(redacts)
        if known is not None:
            return ReactionRemoved(**base, target=MessageRef(room, known[0]), key=known[1])
        return MessageDeleted(**base, ref=MessageRef(room, redacts))
    if event_type == "m.reaction":
        key = rel.get("key")
        if rel.get("rel_type") != "m.annotation" or not target_id or not isinstance(key, str):
            return None
        if reactions is not None:
            reactions[event_id] = (target_id, key)
        return ReactionAdded(
            **base, ref=MessageRef(room, event_id), target=MessageRef(room, target_id), key=key
        )
    if event_type in POLL_RESPONSE_TYPES:
        answers = _poll_answers(event_type, content)
        if answers is None or not target_id:
            return None
        return PollVoteReceived(**base, poll=MessageRef(room, target_id), answers=answers)
    return None


def document_of(
    content: dict[str, Any], body: str, html: str | None, display_name: str
) -> Document:
    """The message's formatting: from its HTML (where `<mx-reply>` is always dropped:
    no forged quote), else its plain body taken literally; an emote as `*Anna waves*`."""
    # Built before the boundary cleans the event's text: cleaned and capped here too.
    if html is not None:
        document = parse_html(cap(html, 2 * INBOUND_LIMIT))
    else:
        document = Document.plain(cap(clean(body), INBOUND_LIMIT))
    if content.get("msgtype") != "m.emote":
        return document
    blocks = list(document.blocks)
    head = blocks.pop(0) if blocks and isinstance(blocks[0], Paragraph) else None
    first = head.children if isinstance(head, Paragraph) else ()
    line = Paragraph((Styled("italic", (Text(f"{display_name} "), *first)),))
    return Document((line, *blocks))


def _html(content: dict[str, Any]) -> str | None:
    if content.get("format") == "org.matrix.custom.html":
        html = content.get("formatted_body")
        return html if isinstance(html, str) else None
    return None
