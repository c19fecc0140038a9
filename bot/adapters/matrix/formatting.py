"""Outgoing content: HTML from escaped text or sanitised with an allow-list, replies,
edits, mentions, and splitting below the event size limit. Pure functions, no I/O."""

from __future__ import annotations

import html as htmllib
import json
import re
from typing import Any, Final

import nh3

from bot.core.messages import OutgoingMessage, split_text

# Synapse rejects events over 65536 bytes of JSON; leave room for the envelope and,
# in encrypted rooms, for the base64 ciphertext (4/3 of the plaintext).
MAX_CONTENT_BYTES: Final = 40_000
MESSAGE_LIMIT: Final = 8_000  # characters of text a single post may hold

ALLOWED_TAGS: Final = {
    "b", "strong", "i", "em", "u", "s", "del", "code", "pre", "a", "br", "p", "ul", "ol",
    "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "span", "sup", "sub", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES: Final = {"a": {"href"}, "span": {"data-mx-color"}, "code": {"class"}}
URL_SCHEMES: Final = {"http", "https", "mailto", "mxc", "matrix"}

_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    )


def render_html(text: str) -> str:
    """The light formatting of core messages (**bold**, *italic*, `code`, links) as
    HTML, built from escaped text so nothing in it can become markup by accident."""
    out = htmllib.escape(text, quote=True)
    codes: list[str] = []

    def keep_code(m: re.Match[str]) -> str:
        codes.append(m[1])
        return f"\x00{len(codes) - 1}\x00"

    out = _CODE.sub(keep_code, out)
    out = _LINK.sub(lambda m: f'<a href="{m[2]}">{m[1]}</a>', out)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    out = _ITALIC.sub(r"<em>\1</em>", out)
    out = re.sub("\x00(\\d+)\x00", lambda m: f"<code>{codes[int(m[1])]}</code>", out)
    return out.replace("\n", "<br>")


def _plain(text: str) -> str:
    """The body without the markers: what clients without HTML show."""
    text = _LINK.sub(lambda m: f"{m[1]} ({m[2]})", text)
    return _BOLD.sub(r"\1", text)


def mentions_of(message: OutgoingMessage) -> dict[str, Any]:
    # Nobody is pinged unless the message means to: never @room from relayed text.
    users = [m.id for m in message.mentions if m.platform == "matrix"]
    return {"user_ids": users} if users else {}


def text_contents(message: OutgoingMessage) -> list[dict[str, Any]]:
    """The message as one or more `m.room.message` contents, each below the size limit."""
    label = message.attribution.label if message.attribution else None
    msgtype = "m.notice" if message.notice else "m.text"
    limit = MESSAGE_LIMIT
    while True:
        parts = split_text(message.text, limit) if message.text else []
        contents = []
        for i, part in enumerate(parts):
            # Given HTML cannot be split safely: a long message is rendered from text.
            single = message.html is not None and len(parts) == 1
            html = sanitise(message.html or "") if single else render_html(part)
            body = _plain(part)
            if label and i == 0:
                body = f"{label}: {body}"
                html = f"<strong>{htmllib.escape(label)}</strong>: {html}"
            contents.append(
                {
                    "msgtype": msgtype,
                    "body": body,
                    "format": "org.matrix.custom.html",
                    "formatted_body": html,
                    "m.mentions": mentions_of(message),
                }
            )
        if all(size_of(c) <= MAX_CONTENT_BYTES for c in contents) or limit < 500:
            return contents
        limit //= 2


def size_of(content: dict[str, Any]) -> int:
    return len(json.dumps(content, ensure_ascii=False).encode())


def with_reply(content: dict[str, Any], reply_to: str, thread_root: str | None) -> None:
    """Make `content` answer `reply_to`, inside its thread when it came from one."""
    if thread_root:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_root,
            "is_falling_back": False,
            "m.in_reply_to": {"event_id": reply_to},
        }
    else:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}


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
