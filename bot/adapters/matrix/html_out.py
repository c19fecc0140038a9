"""A `Document` as Matrix HTML (`formatted_body`), built from escaped text: nothing in
it becomes markup by accident. Custom emoji are inline images where they have an mxc://
URI (Discord's are uploaded first, see emoji.py), their `:name:` otherwise."""

from __future__ import annotations

import html as htmllib
from collections.abc import Callable, Iterable
from typing import Final

from bot.core.document import (
    Block,
    Code,
    CodeBlock,
    Document,
    Emoji,
    Heading,
    Inline,
    LineBreak,
    Link,
    ListBlock,
    Mention,
    Paragraph,
    Quote,
    Small,
    Styled,
    Table,
    Text,
    normalise,
    without_style,
)
from bot.core.markdown_out import mention_text

TAGS: Final = {"bold": "strong", "italic": "em", "underline": "u", "strike": "del"}
LINK_SCHEMES: Final = ("http://", "https://", "mailto:", "matrix:")
EMOJI_HEIGHT: Final = 32

MxcOf = Callable[[Emoji], str | None]


def _esc(text: str) -> str:
    return htmllib.escape(text, quote=True)


def to_html(document: Document, mxc_of: MxcOf | None = None, *, inline_single: bool = True) -> str:
    """The document's HTML; a document of one paragraph is its inline HTML alone, as
    Element sends it (unless not `inline_single`)."""
    writer = _Writer(mxc_of or _emoji_url)
    if not inline_single:
        return "".join(writer.block(b) for b in document.blocks)
    return writer.blocks(document.blocks)


def _emoji_url(emoji: Emoji) -> str | None:
    return emoji.url if emoji.url and emoji.url.startswith("mxc://") else None


class _Writer:
    def __init__(self, mxc_of: MxcOf) -> None:
        self._mxc_of = mxc_of

    def blocks(self, blocks: Iterable[Block]) -> str:
        blocks = list(blocks)
        if len(blocks) == 1 and isinstance(blocks[0], Paragraph):
            return self.inlines(blocks[0].children)
        return "".join(self.block(b) for b in blocks)

    def block(self, block: Block) -> str:
        if isinstance(block, Paragraph):
            return f"<p>{self.inlines(block.children)}</p>"
        if isinstance(block, Heading):
            return f"<h{block.level}>{self.inlines(block.children)}</h{block.level}>"
        if isinstance(block, Small):
            return f"<p><sub>{self.inlines(block.children)}</sub></p>"
        if isinstance(block, CodeBlock):
            attr = f' class="language-{_esc(block.language)}"' if block.language else ""
            pre = f"<pre><code{attr}>{_esc(block.code)}\n</code></pre>"
            return f"<span data-mx-spoiler>{pre}</span>" if block.spoiler else pre
        if isinstance(block, Quote):
            return f"<blockquote>{self.blocks(block.blocks)}</blockquote>"
        if isinstance(block, ListBlock):
            items = "".join(f"<li>{self.blocks(item)}</li>" for item in block.items)
            if not block.ordered:
                return f"<ul>{items}</ul>"
            start = f' start="{block.start}"' if block.start != 1 else ""
            return f"<ol{start}>{items}</ol>"
        return self.table(block)

    def table(self, table: Table) -> str:
        head = "".join(f"<th>{self.inlines(c)}</th>" for c in table.header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{self.inlines(c)}</td>" for c in row) + "</tr>"
            for row in table.rows
        )
        thead = f"<thead><tr>{head}</tr></thead>" if head else ""
        return f"<table>{thead}<tbody>{rows}</tbody></table>"

    def inlines(self, inlines: Iterable[Inline]) -> str:
        return "".join(self.inline(i) for i in inlines)

    def inline(self, node: Inline) -> str:
        if isinstance(node, Text):
            return _esc(node.text).replace("\n", "<br>")
        if isinstance(node, Styled):
            inner = self.inlines(normalise(without_style(node.children, node.style)))
            if node.style == "spoiler":
                return f"<span data-mx-spoiler>{inner}</span>"
            tag = TAGS[node.style]
            return f"<{tag}>{inner}</{tag}>"
        if isinstance(node, Code):
            return f"<code>{_esc(node.text)}</code>"
        if isinstance(node, Link):
            label = self.inlines(node.children) or _esc(node.href)
            if not node.href.lower().startswith(LINK_SCHEMES):
                return label
            return f'<a href="{_esc(node.href)}">{label}</a>'
        if isinstance(node, Mention):
            name = _esc(mention_text(node))
            if node.href and node.href.lower().startswith(LINK_SCHEMES):
                # A pill: with m.mentions empty it pings nobody.
                return f'<a href="{_esc(node.href)}">{name}</a>'
            return name
        if isinstance(node, Emoji):
            return self.emoji(node)
        assert isinstance(node, LineBreak)
        return "<br>"

    def emoji(self, node: Emoji) -> str:
        if node.unicode:
            return _esc(node.unicode)
        name = _esc(f":{node.name}:")
        mxc = self._mxc_of(node)
        if mxc is None:
            return name
        return (
            f'<img data-mx-emoticon src="{_esc(mxc)}" alt="{name}" title="{name}" '
            f'height="{EMOJI_HEIGHT}">'
        )


__all__ = ["to_html"]
