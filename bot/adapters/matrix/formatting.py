"""Outgoing content: HTML from escaped text or sanitised with an allow-list, replies,
edits, mentions, and splitting below the event size limit. Pure functions, no I/O."""

from __future__ import annotations

import functools
import html as htmllib
import json
from typing import Any, Final

import nh3

from bot.adapters.matrix.html_out import MxcOf, to_html
from bot.core.document import Document, Paragraph, emojis
from bot.core.markdown import parse
from bot.core.messages import Attribution, OutgoingMessage
from bot.core.plain import to_plain
from bot.core.split import Measure, split_document

# Synapse rejects events over 65536 bytes of JSON; leave room for the envelope and,
# in encrypted rooms, for the base64 ciphertext (4/3 of the plaintext).
MAX_CONTENT_BYTES: Final = 40_000
MESSAGE_LIMIT: Final = 8_000  # characters of text a single post may hold
PROFILE_KEY: Final = "com.beeper.per_message_profile"  # MSC4144, unstable name

ALLOWED_TAGS: Final = {
    "b", "strong", "i", "em", "u", "s", "del", "code", "pre", "a", "br", "p", "ul", "ol",
    "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "span", "sup", "sub", "hr",
    "table", "thead", "tbody", "tr", "th", "td", "img",
}  # fmt: skip
ALLOWED_ATTRIBUTES: Final = {
    "a": {"href"},
    "span": {"data-mx-color", "data-mx-spoiler"},
    "code": {"class"},
    "ol": {"start"},
    "img": {"src", "alt", "title", "height", "data-mx-emoticon"},
}
URL_SCHEMES: Final = {"http", "https", "mailto", "mxc", "matrix"}
# Of the body's size, what the text alone may hold: a post stays readable.
_TEXT_SHARE: Final = (MAX_CONTENT_BYTES - 4_000) / MESSAGE_LIMIT


def _attribute(tag: str, attribute: str, value: str) -> str | None:
    # An image only from the homeserver (a custom emoji): never one fetched from
    # anywhere by every reader's client.
    if tag == "img" and attribute == "src" and not value.startswith("mxc://"):
        return None
    return value


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    )


def render_html(text: str) -> str:
    """Core text (Discord's Markdown) as HTML, built from escaped text."""
    return to_html(parse(text))


def _measure(mxc_of: MxcOf | None) -> Measure:
    def measure(document: Document) -> int:
        body = to_plain(document)
        html = to_html(document, mxc_of)
        return max(int(len(body) * _TEXT_SHARE), len(html.encode()) + len(body.encode()))

    return measure


def mentions_of(message: OutgoingMessage) -> dict[str, Any]:
    # Nobody is pinged unless the message means to: never @room from relayed text.
    users = [m.id for m in message.mentions if m.platform == "matrix"]
    return {"user_ids": users} if users else {}


@functools.lru_cache(maxsize=64)
def _parse_own(text: str) -> Document:
    """The bot's own text (not a relayed member's, which is not kept), parsed once: the
    same answers (help, usage, errors) go out again and again, and parsing a help text
    cost more CPU than the rest of handling the command. Documents are immutable."""
    return parse(text)


@functools.lru_cache(maxsize=64)
def _own_rendered(text: str, limit: int) -> tuple[tuple[str, str], ...] | None:
    """(body, formatted_body) of each part of the bot's own `text`, rendered once; None
    if it holds emoji (their images depend on what the room's uploads give)."""
    document = _parse_own(text)
    if next(emojis(document), None) is not None:
        return None
    parts = split_document(document, limit, _measure(None))
    return tuple(_bodies(part, None, None) for part in parts)


def text_contents(message: OutgoingMessage, mxc_of: MxcOf | None = None) -> list[dict[str, Any]]:
    """The message as one or more `m.room.message` contents, each below the size limit.
    Its document (or its text, parsed as the core's Markdown) is rendered; given HTML
    is sanitised and sent as it is when it fits one post."""
    label = message.attribution.label if message.attribution else None
    given = message.html if message.document is None else None
    own = message.attribution is None and message.document is None
    document = message.document
    limit = MAX_CONTENT_BYTES - 4_000
    while True:
        rendered = _own_rendered(message.text, limit) if own and given is None else None
        if rendered is None:
            if document is None:
                document = _parse_own(message.text) if own else parse(message.text)
            parts = split_document(document, limit, _measure(mxc_of))
            if not parts and label and message.attachments:
                parts = [Document()]  # who sent the files, above them
            rendered = tuple(
                _bodies(part, label if i == 0 else None, mxc_of) for i, part in enumerate(parts)
            )
        contents = []
        for body, formatted in rendered:
            # Given HTML cannot be split safely: a long message is rendered instead.
            html = sanitise(given) if given is not None and len(rendered) == 1 else None
            content: dict[str, Any] = {
                "msgtype": "m.notice" if message.notice else "m.text",
                "body": body,
                "format": "org.matrix.custom.html",
                "formatted_body": _labelled(html, label) if html is not None else formatted,
                "m.mentions": mentions_of(message),
            }
            if message.attribution is not None:
                content[PROFILE_KEY] = per_message_profile(message.attribution)
            contents.append(content)
        if all(size_of(c) <= MAX_CONTENT_BYTES for c in contents) or limit < 2_000:
            return contents
        limit //= 2


def _bodies(document: Document, label: str | None, mxc_of: MxcOf | None) -> tuple[str, str]:
    """(body, formatted_body) of one part; `label` before the first, on the same line
    when the part starts with a paragraph, above a quote or a code block."""
    body, html = to_plain(document), to_html(document, mxc_of)
    if label is None:
        return body, html
    blocks = document.blocks
    name = f"<strong>{htmllib.escape(label)}</strong>:"
    if not blocks:
        return f"{label}:", name
    if not isinstance(blocks[0], Paragraph):
        return f"{label}:\n{body}", name + to_html(document, mxc_of, inline_single=False)
    rest = to_html(Document(blocks[1:]), mxc_of, inline_single=False)
    first = to_html(Document(blocks[:1]), mxc_of)
    return f"{label}: {body}", f"{name} {first}{rest}"


def _labelled(html: str, label: str | None) -> str:
    return f"<strong>{htmllib.escape(label)}</strong>: {html}" if label else html


def per_message_profile(attribution: Attribution) -> dict[str, Any]:
    """MSC4144: clients that support it show the relayed author as the sender; the name
    is in the body too (`has_fallback`) for the others."""
    profile: dict[str, Any] = {
        "id": attribution.label,
        "displayname": attribution.label,
        "has_fallback": True,
    }
    if attribution.avatar_url and attribution.avatar_url.startswith("mxc://"):
        profile["avatar_url"] = attribution.avatar_url
    return profile


def size_of(content: dict[str, Any]) -> int:
    return len(json.dumps(content, ensure_ascii=False).encode())


def with_reply(content: dict[str, Any], reply_to: str) -> None:
    """Make `content` answer `reply_to`."""
    content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}


def in_thread(content: dict[str, Any], root: str, reply_to: str, *, falling_back: bool) -> None:
    """Put `content` in the thread of `root`, answering `reply_to`: a real reply, or
    (`falling_back`) only what clients without threads show, the thread's latest post."""
    content["m.relates_to"] = {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": falling_back,
        "m.in_reply_to": {"event_id": reply_to},
    }


def edit_content(target_id: str, new: dict[str, Any]) -> dict[str, Any]:
    fresh = {k: v for k, v in new.items() if k != "m.relates_to"}
    return {
        "msgtype": new.get("msgtype", "m.text"),
        "body": "* " + str(new.get("body", "")),
        "format": "org.matrix.custom.html",
        "formatted_body": "* " + str(new.get("formatted_body", "")),
        "m.new_content": fresh,
        "m.mentions": {},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target_id},
    }


def reaction_content(target_id: str, key: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": target_id, "key": key}}


def media_content(
    msgtype: str,
    filename: str,
    content_type: str,
    size: int,
    mxc: str,
    encryption: dict[str, Any] | None,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": filename,
        "filename": filename,
        "info": {"mimetype": content_type, "size": size},
        "m.mentions": {},
    }
    if encryption is not None:
        content["file"] = {**encryption, "url": mxc}
    else:
        content["url"] = mxc
    return content


def media_msgtype(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return {"image": "m.image", "video": "m.video", "audio": "m.audio"}.get(major, "m.file")
