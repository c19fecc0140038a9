"""Outgoing content: HTML from escaped text or sanitised with an allow-list, replies,
edits, mentions, and splitting below the event size limit. Pure functions, no I/O."""

from __future__ import annotations

import html as htmllib
import json
import re
from typing import Any, Final

import nh3

from bot.core.messages import Attribution, OutgoingMessage, split_text
from bot.core.text import clean

# Synapse rejects events over 65536 bytes of JSON; leave room for the envelope and,
# in encrypted rooms, for the base64 ciphertext (4/3 of the plaintext).
MAX_CONTENT_BYTES: Final = 40_000
MESSAGE_LIMIT: Final = 8_000  # characters of text a single post may hold
PROFILE_KEY: Final = "com.beeper.per_message_profile"  # MSC4144, unstable name

ALLOWED_TAGS: Final = {
    "b", "strong", "i", "em", "u", "s", "del", "code", "pre", "a", "br", "p", "ul", "ol",
    "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "span", "sup", "sub", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES: Final = {
    "a": {"href"},
    "span": {"data-mx-color", "data-mx-spoiler"},
    "code": {"class"},
}
URL_SCHEMES: Final = {"http", "https", "mailto", "mxc", "matrix"}

_FENCE = re.compile(r"```([\w+#.-]*)\n?(.*?)```", re.DOTALL)
_ESCAPED = re.compile(r"\\([\\*_~|`>\[\]()])")
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_UNDERLINE = re.compile(r"__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_SPOILER = re.compile(r"\|\|(?=\S)(.+?)(?<=\S)\|\|")
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
    """Core text (Discord's Markdown: **bold**, *italic*, __underline__, ~~strike~~,
    ||spoiler||, `code`, fenced blocks, > quotes, links) as HTML, built from escaped
    text so nothing in it can become markup by accident."""
    out: list[str] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        before = text[pos : fence.start()]
        out.append(_render_inline_block(before.removesuffix("\n")))
        lang = fence[1]
        code = htmllib.escape(fence[2], quote=True)
        attr = f' class="language-{htmllib.escape(lang, quote=True)}"' if lang else ""
        out.append(f"<pre><code{attr}>{code}</code></pre>")
        pos = fence.end()
        if text.startswith("\n", pos):
            pos += 1  # the line break after a block is the block's own
    out.append(_render_inline_block(text[pos:]))
    return "".join(out)


def _render_inline_block(text: str) -> str:
    """Text outside fenced blocks: runs of lines starting with `> ` become a blockquote."""
    out: list[str] = []
    run: list[str] = []
    quoting = False

    def flush() -> None:
        if run:
            html = _render_inline("\n".join(run)).replace("\n", "<br>")
            out.append(f"<blockquote>{html}</blockquote>" if quoting else html)
            run.clear()

    for line in text.split("\n") if text else []:
        is_quote = line.startswith("> ") or line == ">"
        if is_quote != quoting:
            flush()
            quoting = is_quote
        run.append(line[2:] if is_quote else line)
    flush()
    return "".join(out)


def _render_inline(text: str) -> str:
    # NUL marks the kept pieces below: one in the text itself would be taken for a mark.
    text = text.replace("\x00", "")
    kept: list[str] = []

    def keep(html: str) -> str:
        kept.append(html)
        return f"\x00{len(kept) - 1}\x00"

    out = _ESCAPED.sub(lambda m: keep(htmllib.escape(m[1], quote=True)), text)
    out = htmllib.escape(out, quote=True)
    out = _CODE.sub(lambda m: keep(f"<code>{m[1]}</code>"), out)
    out = _LINK.sub(lambda m: f'<a href="{m[2]}">{m[1]}</a>', out)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    out = _UNDERLINE.sub(r"<u>\1</u>", out)
    out = _ITALIC.sub(r"<em>\1</em>", out)
    out = _ITALIC_UNDERSCORE.sub(r"<em>\1</em>", out)
    out = _STRIKE.sub(r"<del>\1</del>", out)
    out = _SPOILER.sub(r"<span data-mx-spoiler>\1</span>", out)
    # A kept code span may hold a kept escape: two passes at most, never an endless loop.
    for _ in range(3):
        if "\x00" not in out:
            break
        out = re.sub("\x00(\\d+)\x00", lambda m: kept[int(m[1])], out)
    return out


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
    text = clean(message.text)  # a NUL from a feed or a file is no more welcome than one typed
    while True:
        parts = split_text(text, limit) if text.strip() else []
        if not parts and label and message.attachments:
            parts = [""]  # who sent the files, above them
        contents = []
        for i, part in enumerate(parts):
            # Given HTML cannot be split safely: a long message is rendered from text.
            single = message.html is not None and len(parts) == 1
            html = sanitise(message.html or "") if single else render_html(part)
            body = _plain(part)
            if label and i == 0:
                # A quote or a code block starts on its own line, below the name.
                block = part.startswith((">", "```")) or not part
                body = f"{label}:\n{body}" if block else f"{label}: {body}"
                html = f"<strong>{htmllib.escape(label)}</strong>:{'' if block else ' '}{html}"
                body, html = body.rstrip(), html.rstrip()
            content: dict[str, Any] = {
                "msgtype": msgtype,
                "body": body,
                "format": "org.matrix.custom.html",
                "formatted_body": html,
                "m.mentions": mentions_of(message),
            }
            if message.attribution is not None:
                content[PROFILE_KEY] = per_message_profile(message.attribution)
            contents.append(content)
        if all(size_of(c) <= MAX_CONTENT_BYTES for c in contents) or limit < 500:
            return contents
        limit //= 2


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
