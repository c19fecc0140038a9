"""Feed text into the core's Markdown-like text: sanitised, linkified, pinging nobody.

Feed HTML is untrusted. It goes through nh3 (an allow-list: links and block tags; the
contents of <script> and <style> are dropped, and only http(s) links survive, so
`javascript:` goes), and what is left is walked once to plain lines with `[text](url)`
links. Every piece of feed text is escaped, so that nothing in it becomes markup by
accident, and mentions that ping (@everyone, @here, @room, Discord's <@id>, <@&role>)
are broken with a zero-width space. One small module, so that the core's own
formatting (issue 12) can take its place later.
"""

from __future__ import annotations

import html as htmllib
import re
from html.parser import HTMLParser
from typing import Final
from urllib.parse import urlsplit

import nh3

from bot.core.text import clean

# Python's html.parser is slow on some long runs of markup, and a summary shows a few
# hundred characters: what is read of an entry's HTML is capped before anything else.
RAW_LIMIT: Final = 20_000
TITLE_LIMIT: Final = 200
URL_LIMIT: Final = 2000
ZWSP: Final = "\u200b"

_BLOCKS: Final = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "blockquote", "pre", "tr", "hr"}
    | {f"h{n}" for n in range(1, 7)}
)
_ALLOWED: Final = {"a", *_BLOCKS}
_SPACE = re.compile(r"\s+")
# Markdown that Discord and our Matrix renderer act on (`(` matters only after `]`);
# a URL is left whole, up to a bracket.
_MARKUP_OR_URL = re.compile(r"(https?://[^\s\[\]]+)|[\\*_~|`\[\]]")
_LINE_START = re.compile(r"^([>#-])", re.MULTILINE)
_PINGS = re.compile(r"@(everyone|here|room|channel)\b", re.IGNORECASE)
_DISCORD_MENTION = re.compile(r"<(@[!&]?|#)(?=\d)")


def neutralise(text: str) -> str:
    """Mentions that would ping, broken so they read the same and ping nobody."""
    text = _PINGS.sub(lambda m: "@" + ZWSP + m[1], text)
    return _DISCORD_MENTION.sub(lambda m: "<" + ZWSP + m[1], text)


def escape(text: str) -> str:
    """Feed text as core text that shows exactly these characters; URLs stay whole."""
    escaped = _MARKUP_OR_URL.sub(_escape_one, text)
    return neutralise(_LINE_START.sub(r"\\\1", escaped))


def _escape_one(match: re.Match[str]) -> str:
    return match[0] if match[1] else "\\" + match[0]


def safe_url(url: str | None) -> str | None:
    """An http(s) URL fit for a `[text](url)` link, or None."""
    if not url:
        return None
    url = url.strip()
    if len(url) > URL_LIMIT or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def one_line(text: str, limit: int) -> str:
    line = _SPACE.sub(" ", clean(text)).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def plain_title(raw: str | None, *, is_html: bool) -> str:
    """A title as plain text on one line (feeds put markup and entities in titles)."""
    text = (raw or "")[:RAW_LIMIT]
    if is_html:
        text = htmllib.unescape(nh3.clean(text, tags=set()))
    return one_line(text, TITLE_LIMIT)


def link(text: str, url: str | None) -> str:
    """`text` (plain) as a link to `url` where that is a safe http(s) URL."""
    target = safe_url(url)
    shown = escape(one_line(text, TITLE_LIMIT))
    if target is None or not shown:
        return shown
    # A `]` inside the text is escaped above, so the link cannot end early.
    return f"[{shown}]({target})"


# A piece of a line: the text it shows, and where it links (a link is never cut in
# half: it fits whole or goes). Escaped only when it is used.
Piece = tuple[str, str | None]


def _core(piece: Piece) -> str:
    shown, target = piece
    return f"[{escape(shown)}]({target})" if target else escape(shown)


class _Walker(HTMLParser):
    """Cleaned HTML to lines of pieces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[list[Piece]] = [[]]
        self._href: str | None = None
        self._anchor: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.line_break()
        elif tag == "a":
            self._href = dict(attrs).get("href")
            self._anchor = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            shown = _SPACE.sub(" ", "".join(self._anchor)).strip()
            target = safe_url(self._href)
            if shown and target and shown != target:
                self.lines[-1].append((shown, target))
            elif shown:
                self.add_text(shown)
            self._href, self._anchor = None, []
        elif tag in _BLOCKS:
            self.line_break()

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._anchor.append(data)
        else:
            self.add_text(data)

    def add_text(self, data: str) -> None:
        shown = _SPACE.sub(" ", data)
        if shown.strip() or (shown and self.lines[-1]):
            self.lines[-1].append((shown, None))

    def line_break(self) -> None:
        if self.lines[-1]:
            self.lines.append([])


def _fit(piece: Piece, budget: int) -> str:
    """The part of a piece that fits in `budget` characters: text up to its last whole
    word (or cut hard, for one long word), a link not at all."""
    shown, target = piece
    if target:
        return ""
    head = shown[:budget]
    if " " in head.strip():
        head = head.rstrip().rsplit(" ", 1)[0]
    return escape(head)


def summary(raw: str | None, *, is_html: bool, lines: int, chars: int) -> str:
    """An entry's summary as core text: at most `lines` lines and `chars` shown
    characters, cut at a word (never inside a link), "…" where it was cut."""
    if not raw or lines <= 0 or chars <= 0:
        return ""
    source = clean(raw[:RAW_LIMIT])
    walker = _Walker()
    if is_html:
        walker.feed(
            nh3.clean(
                source,
                tags=_ALLOWED,
                attributes={"a": {"href"}},
                url_schemes={"http", "https"},
                link_rel=None,
            )
        )
        walker.close()
    else:
        for line in source.split("\n"):
            walker.add_text(line)
            walker.line_break()
    out: list[str] = []
    budget = chars
    cut = False
    for pieces in walker.lines:
        if not "".join(shown for shown, _ in pieces).strip():
            continue
        if len(out) == lines or budget <= 0:
            cut = True
            break
        line = ""
        for piece in pieces:
            if len(piece[0]) > budget:
                line += _fit(piece, budget)
                cut = True
                break
            line += _core(piece)
            budget -= len(piece[0])
        out.append(line.strip())
        if cut:
            break
    result = "\n".join(part for part in out if part)
    return result + " …" if cut and result else result
