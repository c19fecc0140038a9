"""HTML as Matrix clients send it (Element's `formatted_body`) parsed into a `Document`.

nh3 (html5ever, in Rust, linear) first reduces the input to an allow-list and drops
`<script>`, `<style>` and `<mx-reply>` with their content: a reply's quoted original is
never taken for the author's words, in a reply or in an event that only pretends to
be one. The stdlib parser then reads nh3's well-formed output, which holds none of the
long runs of `<a` or `<!--` that make it slow. Colours are dropped; pills become
mentions with readable names; custom emoji (`data-mx-emoticon`) become emoji; an image
of any other kind becomes its alt text, never an image.
"""

from __future__ import annotations

import html as htmllib
import logging
import re
from collections import Counter
from html.parser import HTMLParser
from typing import Final, TypeAlias
from urllib.parse import unquote

import nh3

from bot.core.document import (
    MAX_DEPTH,
    Block,
    CodeBlock,
    Document,
    Emoji,
    Heading,
    Inline,
    LineBreak,
    Link,
    ListBlock,
    Mention,
    MentionKind,
    Paragraph,
    Quote,
    Style,
    Table,
    Text,
    linked,
    normalise,
)
from bot.core.spans import FLAT, Span, close_top, cut
from bot.core.text import clean

log = logging.getLogger(__name__)

PARSE_LIMIT: Final = 200_000
MAX_ELEMENTS: Final = 500
_TAG: Final = re.compile(r"<[a-zA-Z]")
_RAW_TAG: Final = re.compile(r"<[a-zA-Z!/?]")
_STRIP: Final = re.compile(r"<[^<>]*>")
TAGS: Final = {
    "b", "strong", "i", "em", "u", "s", "del", "strike", "code", "pre", "a", "br", "p",
    "div", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "span",
    "sup", "sub", "hr", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption",
    "img", "details", "summary",
}  # fmt: skip
ATTRIBUTES: Final = {
    "a": {"href"},
    "span": {"data-mx-spoiler"},
    "code": {"class"},
    "ol": {"start"},
    "img": {"src", "alt", "title", "data-mx-emoticon"},
}
SCHEMES: Final = {"http", "https", "mailto", "matrix", "mxc"}
_STYLES: Final[dict[str, Style]] = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "s": "strike", "del": "strike", "strike": "strike",
}  # fmt: skip
_BLOCKS: Final = {
    "p", "div", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
    "hr", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "details",
    "summary",
}  # fmt: skip
_SPACES: Final = re.compile(r"[ \t\n\r\f]+")
_MATRIX_TO: Final = re.compile(r"^https://matrix\.to/#/([^?]*)", re.IGNORECASE)
_MATRIX_URI: Final = re.compile(r"^matrix:(u|r|roomid)/([^?]*)", re.IGNORECASE)


def sanitised(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(TAGS),
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        clean_content_tags={"script", "style", "mx-reply"},
        url_schemes=set(SCHEMES),
        strip_comments=True,
        link_rel=None,
    )


def parse_html(html: str) -> Document:
    html = clean(html[: 2 * PARSE_LIMIT])
    if not html.strip():
        return Document()
    # Past MAX_ELEMENTS tags the rest is taken as text: every tag costs a Python call
    # or ten here, html5ever is slow on deep nesting (an <li> looks through every open
    # element), and no message needs that many. Tags are counted, and the rest
    # stripped, by regular expressions that cannot backtrack.
    raw_cut = _nth(_RAW_TAG, html, 2 * MAX_ELEMENTS)
    safe = sanitised(html[:raw_cut])
    cut = _nth(_TAG, safe, MAX_ELEMENTS)
    builder = _Builder()
    builder.feed(safe[:cut])
    builder.close()
    document = builder.document()
    rest = htmllib.unescape(nh3.clean(safe[cut:], tags=set())) if cut < len(safe) else ""
    rest += htmllib.unescape(_STRIP.sub("", html[raw_cut:]))
    rest = _SPACES.sub(" ", rest).strip()
    if rest:
        document = Document((*document.blocks, Paragraph(tuple(linked(rest)))))
    return document


def _nth(pattern: re.Pattern[str], text: str, n: int) -> int:
    """Where the `n`th match of `pattern` starts in `text` (its length: fewer)."""
    for i, match in enumerate(pattern.finditer(text)):
        if i >= n:
            return match.start()
    return len(text)


def pill(href: str) -> tuple[MentionKind, str] | None:
    """What a matrix.to or matrix: link points at: (kind, id), or None for another link."""
    match = _MATRIX_TO.match(href)
    if match:
        parts = [unquote(p) for p in match[1].split("/") if p]
        if not parts:
            return None
        if len(parts) > 1 and parts[1].startswith("$"):
            return "event", parts[1]
        sigil = parts[0][:1]
        kinds: dict[str, MentionKind] = {"@": "user", "#": "room", "!": "room"}
        return (kinds[sigil], parts[0]) if sigil in kinds else None
    match = _MATRIX_URI.match(href)
    if match:
        parts = [unquote(p) for p in match[2].split("/") if p]
        if not parts:
            return None
        if len(parts) > 2 and parts[1] == "e":
            return "event", "$" + parts[2]
        sigil = {"u": "@", "r": "#", "roomid": "!"}[match[1].lower()]
        return ("user" if sigil == "@" else "room"), sigil + parts[0]
    return None


Cells: TypeAlias = tuple[tuple[Inline, ...], ...]


class _Container:
    """An open block element: what it holds so far. `number`: a heading's level, an
    ordered list's start; `flag`: an ordered list, a header cell, a row with a <td>."""

    __slots__ = ("blocks", "cells", "flag", "header", "items", "kind", "number", "rows")

    def __init__(self, kind: str, number: int = 1, flag: bool = False) -> None:
        self.kind = kind
        self.number = number
        self.flag = flag
        self.blocks: list[Block] = []
        self.items: list[tuple[Block, ...]] = []
        self.cells: list[tuple[Inline, ...]] = []
        self.rows: list[Cells] = []
        self.header: Cells | None = None


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._containers = [_Container("root")]
        self._inline = [Span("root")]
        self._open: list[tuple[str, str]] = []  # (tag, what its end undoes)
        self._open_count: Counter[str] = Counter()
        self._pre: list[str] | None = None
        self._pre_language = ""

    # -- the document ---------------------------------------------------------------

    def document(self) -> Document:
        self._flush()
        while len(self._containers) > 1:
            self._end_container()
        return Document(tuple(self._containers[0].blocks))

    def _flush(self) -> None:
        """The inline content so far as a paragraph of the current container; open
        inline spans stay open, for what follows."""
        inlines = _trim(cut(self._inline, _link))
        if inlines:
            self._containers[-1].blocks.append(Paragraph(inlines))

    def _add(self, node: Inline) -> None:
        self._inline[-1].children.append(node)

    # -- parser callbacks -----------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self._pre is not None:
            if tag == "code" and a.get("class", "").startswith("language-"):
                self._pre_language = a["class"].removeprefix("language-")[:40]
            if tag == "br":
                self._pre.append("\n")
            self._opened(tag, "none")
            return
        if tag == "br":
            self._add(LineBreak())
            return
        if tag == "img":
            self._image(a)
            return
        if tag in _BLOCKS:
            self._block_start(tag, a)
            return
        span: Span | None = None
        if len(self._inline) > MAX_DEPTH:
            span = Span(FLAT)
        elif tag in _STYLES:
            span = Span(_STYLES[tag])
        elif tag == "span" and "data-mx-spoiler" in a:
            span = Span("spoiler")
        elif tag == "a" and a.get("href"):
            span = Span("link", a["href"])
        elif tag == "code":
            span = Span("code")
        if span is not None:
            self._inline.append(span)
        self._opened(tag, "inline" if span is not None else "none")

    def handle_endtag(self, tag: str) -> None:
        if not self._open_count[tag]:
            return  # nh3's output is well-formed; a stray end is ignored all the same
        while self._open:
            open_tag, what = self._open.pop()
            self._open_count[open_tag] -= 1
            if what == "inline":
                close_top(self._inline, _link)
            elif what == "pre":
                self._end_pre()
            elif what == "container":
                self._flush()
                self._end_container()
            elif what == "block":
                self._flush()
            if open_tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._pre is not None:
            self._pre.append(data)
            return
        if self._inline[-1].kind == "code":
            self._add(Text(data.replace("\n", " ")))
            return
        text = _SPACES.sub(" ", data)
        if self._inline[-1].kind == "link":
            self._add(Text(text))
        else:
            self._inline[-1].children.extend(linked(text))

    def _opened(self, tag: str, what: str) -> None:
        self._open.append((tag, what))
        self._open_count[tag] += 1

    # -- blocks -----------------------------------------------------------------------

    def _block_start(self, tag: str, a: dict[str, str]) -> None:
        self._flush()
        if tag == "pre":
            self._pre, self._pre_language = [], ""
            self._opened(tag, "pre")
            return
        if tag == "hr":
            self._containers[-1].blocks.append(Paragraph((Text("———"),)))
            return
        kinds = {"blockquote": "quote", "ul": "list", "ol": "list", "li": "item"}
        kinds.update({f"h{n}": "heading" for n in range(1, 7)})
        kinds.update({"table": "table", "tr": "row", "td": "cell", "th": "cell"})
        kind = kinds.get(tag)
        if kind is None or len(self._containers) > MAX_DEPTH:
            self._opened(tag, "block")
            return
        container = _Container(kind)
        if tag == "ol":
            start = a.get("start", "1")
            container.number = int(start) if start.isdigit() and len(start) < 9 else 1
            container.flag = True
        elif kind == "heading":
            container.number = min(3, int(tag[1]))
        elif kind == "cell":
            container.flag = tag == "th"
        self._containers.append(container)
        self._opened(tag, "container")

    def _end_container(self) -> None:
        done = self._containers.pop()
        parent = self._containers[-1]
        if done.kind == "quote":
            parent.blocks.append(Quote(tuple(done.blocks)))
        elif done.kind == "list":
            if done.blocks:  # text or a list straight in the list: an item of its own
                done.items.append(tuple(done.blocks))
            if done.items:
                parent.blocks.append(ListBlock(done.flag, tuple(done.items), done.number))
        elif done.kind == "item":
            if parent.kind == "list":
                parent.items.append(tuple(done.blocks))
            else:
                parent.blocks.extend(done.blocks)
        elif done.kind == "heading":
            inlines = _joined(done.blocks)
            if inlines:
                parent.blocks.append(Heading(done.number, inlines))
        elif done.kind == "cell":
            if parent.kind == "row":
                parent.cells.append(_joined(done.blocks))
                parent.flag = parent.flag or not done.flag  # a row with a <td>: no header
            else:
                parent.blocks.extend(done.blocks)
        elif done.kind == "row":
            if parent.kind != "table" or not done.cells:
                parent.blocks.extend(done.blocks)
            elif not done.flag and parent.header is None and not parent.rows:
                parent.header = tuple(done.cells)
            else:
                parent.rows.append(tuple(done.cells))
        elif done.kind == "table":
            if done.header or done.rows:
                parent.blocks.append(Table(done.header or (), tuple(done.rows)))
            parent.blocks.extend(done.blocks)  # a caption

    def _end_pre(self) -> None:
        assert self._pre is not None
        code = "".join(self._pre).removesuffix("\n")
        language = self._pre_language if re.fullmatch(r"[\w+#.-]+", self._pre_language) else ""
        self._pre = None
        if code.strip():
            self._containers[-1].blocks.append(CodeBlock(code, language))

    # -- inline pieces ------------------------------------------------------------------

    def _image(self, a: dict[str, str]) -> None:
        src = a.get("src", "")
        name = (a.get("alt") or a.get("title") or "").strip()
        if "data-mx-emoticon" in a and src.startswith("mxc://"):
            self._add(Emoji(name.strip(":") or "emoji", url=src))
        elif name:
            self._add(Text(name))  # never an image from text: its words


def _link(href: str, children: tuple[Inline, ...]) -> list[Inline]:
    label = "".join(c.text for c in children if isinstance(c, Text)).strip()
    target = pill(href)
    if target is not None:
        kind, id = target
        return [Mention(kind, label.removeprefix("@") if kind == "user" else label or id, href, id)]
    if not href.lower().startswith(("http://", "https://", "mailto:")):
        return list(children)  # matrix: links to nothing we know, mxc: a file
    return [Link(href, children or (Text(href),))]


def _trim(inlines: tuple[Inline, ...]) -> tuple[Inline, ...]:
    """A paragraph without the spaces HTML would not show at its ends and by its breaks."""
    out = list(inlines)
    for i, node in enumerate(out):
        if not isinstance(node, Text):
            continue
        text = node.text
        if i == 0 or isinstance(out[i - 1], LineBreak):
            text = text.lstrip(" ")
        if i == len(out) - 1 or isinstance(out[i + 1], LineBreak):
            text = text.rstrip(" ")
        out[i] = Text(text)
    result = normalise(out)
    while result and isinstance(result[-1], LineBreak):
        result = result[:-1]
    return result


def _joined(blocks: list[Block]) -> tuple[Inline, ...]:
    """The inline content of paragraphs, as one line of inlines (a heading, a cell)."""
    out: list[Inline] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            if out:
                out.append(LineBreak())
            out.extend(block.children)
    return normalise(out)


__all__ = ["ATTRIBUTES", "PARSE_LIMIT", "SCHEMES", "TAGS", "parse_html", "pill", "sanitised"]
