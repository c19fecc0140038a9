"""A `Document` as plain text: Matrix's `body`, the console, notifications.

A spoiler's words never appear here, only `[spoiler]`: a notification or a client
without HTML would show them otherwise. Code keeps its backticks and fences (they say
where code starts); other marks are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    Styled,
    Table,
    Text,
)
from bot.core.markdown_out import mention_text, separator, table_text

SPOILER: Final = "[spoiler]"


def to_plain(document: Document) -> str:
    return _blocks(document.blocks)


def inline_plain(inlines: Iterable[Inline]) -> str:
    return "".join(_inline(i) for i in inlines)


def _blocks(blocks: Iterable[Block]) -> str:
    out: list[str] = []
    previous: Block | None = None
    for block in blocks:
        rendered = _block(block)
        if not rendered:
            continue
        if previous is not None:
            out.append(separator(previous, block))
        out.append(rendered)
        previous = block
    return "".join(out)


def _block(block: Block) -> str:
    if isinstance(block, Paragraph | Heading):
        return inline_plain(block.children)
    if isinstance(block, CodeBlock):
        return SPOILER if block.spoiler else f"```{block.language}\n{block.code}\n```"
    if isinstance(block, Quote):
        inner = _blocks(block.blocks)
        return "\n".join("> " + line for line in inner.split("\n")) if inner else ""
    if isinstance(block, ListBlock):
        lines: list[str] = []
        for n, item in enumerate(block.items, block.start):
            marker = f"{n}. " if block.ordered else "- "
            body = _blocks(item).split("\n")
            lines.append(marker + body[0])
            lines.extend((" " * len(marker) + line) if line else "" for line in body[1:])
        return "\n".join(lines)
    if isinstance(block, Table):
        return table_text(block, lambda cell: inline_plain(cell).replace("\n", " "))
    return inline_plain(block.children)


def _inline(node: Inline) -> str:
    if isinstance(node, Text):
        return node.text
    if isinstance(node, Styled):
        return SPOILER if node.style == "spoiler" else inline_plain(node.children)
    if isinstance(node, Code):
        return f"`{node.text}`"
    if isinstance(node, Link):
        label = inline_plain(node.children)
        return node.href if node.bare or label in ("", node.href) else f"{label} ({node.href})"
    if isinstance(node, Mention):
        return mention_text(node)
    if isinstance(node, Emoji):
        return node.unicode or f":{node.name}:"
    assert isinstance(node, LineBreak)
    return "\n"


__all__ = ["SPOILER", "inline_plain", "to_plain"]
