"""A `Document` as Discord's Markdown: what the core's text and Discord both read.

Text is escaped so that nothing in it becomes markup its author did not write (`_x_`,
a backtick, `<@1>`, `# ` at a line's start); bare URLs are left as they are, since an
escape inside one would change the address. Code that holds backticks gets a zero-width
space between them, the one way Discord has to show them inside code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import quote

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
    inline_text,
    normalise,
    without_style,
)
from bot.core.urls import find_urls, is_web_url

ZWSP: Final = "\u200b"
MARKS: Final = {"bold": "**", "italic": "*", "underline": "__", "strike": "~~", "spoiler": "||"}
# Each mark character gets a backslash before it (the backslash itself first).
_ESCAPED: Final = "\\*_~|`[]<"
# What would start a block at a line's start: a quote, a heading, small print, a list.
_LINE_START: Final = re.compile(r"^( *)(>|#|-(?=[ #])|\*(?= )|(\d+)\.(?= ))", re.MULTILINE)
_TICKS: Final = re.compile(r"`+")
_URL_UNSAFE: Final = re.compile(r"[\s()<>]")

EmojiText = Callable[[Emoji], str]


def _escaped(text: str) -> str:
    # One str.replace per mark: each a pass in C, faster than any table or pattern.
    for mark in _ESCAPED:
        if mark in text:
            text = text.replace(mark, "\\" + mark)
    return text


def escape(text: str) -> str:
    """Text as Discord shows it literally; its bare URLs kept whole."""
    if "://" not in text:
        return _escaped(text)
    out: list[str] = []
    pos = 0
    for start, end in find_urls(text, markdown=True):
        out.append(_escaped(text[pos:start]))
        out.append(text[start:end])
        pos = end
    out.append(_escaped(text[pos:]))
    return "".join(out)


def _line_starts(text: str) -> str:
    if "\n" not in text and not _LINE_START.match(text):
        return text  # one line, no mark at its start: nothing to look through
    return _LINE_START.sub(lambda m: f"{m[1]}{m[3]}\\." if m[3] else f"{m[1]}\\{m[2]}", text)


def discord_emoji(emoji: Emoji) -> str:
    """Discord's own custom emoji by id; others by name, as Discord users type them."""
    if emoji.unicode:
        return emoji.unicode
    if emoji.id:
        return f"<{'a' if emoji.animated else ''}:{emoji.name}:{emoji.id}>"
    return escape(f":{emoji.name}:")


def to_markdown(document: Document, emoji: EmojiText = discord_emoji) -> str:
    return _Writer(emoji).blocks(document.blocks)


def separator(before: Block, after: Block) -> str:
    """A blank line between paragraphs (and between two quotes or lists, which would
    run together otherwise); one line break where the blocks differ anyway."""
    loose = (Paragraph, CodeBlock, Table)
    if isinstance(before, loose) and isinstance(after, loose):
        return "\n\n"
    if type(before) is type(after) and isinstance(before, Quote | ListBlock):
        return "\n\n"
    return "\n"


def code_span(text: str) -> str:
    text = text.replace("\n", " ")
    longest = max((len(m[0]) for m in _TICKS.finditer(text)), default=0)
    if longest >= 2:  # three would open a code block: no run of two inside
        text = _TICKS.sub(lambda m: ZWSP.join(m[0]), text)
        longest = 1
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}" if text.strip() else escape(text)


def code_block(code: str, language: str) -> str:
    code = code.replace("```", f"`{ZWSP}`{ZWSP}`")
    return f"```{language}\n{code}\n```"


def table_text(table: Table, cell: Callable[[tuple[Inline, ...]], str]) -> str:
    """A table as aligned columns of plain text, for a monospace block."""
    rows = [[cell(c) for c in table.header], *[[cell(c) for c in row] for row in table.rows]]
    rows = [r for r in rows if r]
    width = max((len(r) for r in rows), default=0)
    for r in rows:
        r.extend([""] * (width - len(r)))
    sizes = [max(len(r[i]) for r in rows) for i in range(width)]
    lines = [" | ".join(c.ljust(sizes[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    if table.header and len(lines) > 1:
        lines.insert(1, "-+-".join("-" * s for s in sizes))
    return "\n".join(lines)


class _Writer:
    def __init__(self, emoji: EmojiText) -> None:
        self._emoji = emoji

    def blocks(self, blocks: Iterable[Block]) -> str:
        out: list[str] = []
        previous: Block | None = None
        for block in blocks:
            rendered = self.block(block)
            if not rendered:
                continue
            if previous is not None:
                out.append(separator(previous, block))
            out.append(rendered)
            previous = block
        return "".join(out)

    def block(self, block: Block) -> str:
        if isinstance(block, Paragraph):
            return _line_starts(self.inlines(block.children))
        if isinstance(block, Heading):
            return "#" * block.level + " " + self.one_line(block.children)
        if isinstance(block, Small):
            return "-# " + self.one_line(block.children)
        if isinstance(block, CodeBlock):
            rendered = code_block(block.code, block.language)
            return f"||{rendered}||" if block.spoiler else rendered
        if isinstance(block, Quote):
            inner = self.blocks(_unquoted(block.blocks))
            return "\n".join("> " + line for line in inner.split("\n")) if inner else ""
        if isinstance(block, ListBlock):
            return self.list(block)
        return code_block(table_text(block, self.cell), "")

    def list(self, block: ListBlock) -> str:
        lines: list[str] = []
        for n, item in enumerate(block.items, block.start):
            marker = f"{n}. " if block.ordered else "- "
            body = self.blocks(item).split("\n") or [""]
            lines.append(marker + body[0])
            lines.extend((" " * len(marker) + line) if line else "" for line in body[1:])
        return "\n".join(lines)

    def one_line(self, inlines: tuple[Inline, ...]) -> str:
        flat = tuple(Text(" ") if isinstance(i, LineBreak) else i for i in inlines)
        return self.inlines(normalise(flat)).replace("\n", " ")

    def cell(self, inlines: tuple[Inline, ...]) -> str:
        return _cell_text(inlines)

    def inlines(self, inlines: Iterable[Inline]) -> str:
        out: list[str] = []
        for node in inlines:
            rendered = self.inline(node)
            if out and out[-1] and rendered and out[-1][-1] == rendered[0] in "*_~|":
                out.append(ZWSP)  # `**a***b*` would read as other marks than two
            out.append(rendered)
        return "".join(out)

    def inline(self, node: Inline) -> str:
        if isinstance(node, Text):
            return escape(node.text)
        if isinstance(node, Styled):
            return self.styled(node)
        if isinstance(node, Code):
            return code_span(node.text)
        if isinstance(node, Link):
            return self.link(node)
        if isinstance(node, Mention):
            return self.mention(node)
        if isinstance(node, Emoji):
            return self._emoji(node)
        return "\n"

    def styled(self, node: Styled) -> str:
        inner = self.inlines(normalise(without_style(node.children, node.style)))
        mark = MARKS[node.style]
        if not inner.strip():
            return inner
        if node.style != "italic":
            return f"{mark}{inner}{mark}"
        # A single `*` opens no italics before a space: the spaces go outside.
        core = inner.strip(" ")
        lead, trail = inner[: len(inner) - len(inner.lstrip(" "))], inner[len(inner.rstrip(" ")) :]
        return f"{lead}{mark}{core}{mark}{trail}"

    def link(self, node: Link) -> str:
        if node.bare and is_web_url(node.href):
            return node.href
        label = self.inlines(node.children) or escape(node.href)
        if not is_web_url(node.href):
            return f"{label} ({escape(node.href)})"
        href = _URL_UNSAFE.sub(lambda m: quote(m[0]), node.href)
        return f"[{label.replace(chr(10), ' ')}]({href})"

    def mention(self, node: Mention) -> str:
        name = mention_text(node)
        if node.href and node.kind in ("room", "event", "channel") and is_web_url(node.href):
            if name == node.href:
                return node.href
            return f"[{escape(name)}]({_URL_UNSAFE.sub(lambda m: quote(m[0]), node.href)})"
        return escape(name)


def mention_text(node: Mention) -> str:
    """How a mention reads: `@Anna`, `#allmänt`, a room's name or address."""
    name = node.name or node.id
    if node.kind in ("user", "role") and not name.startswith("@"):
        return "@" + name
    if node.kind == "channel" and not name.startswith("#"):
        return "#" + name
    return name


def _unquoted(blocks: Iterable[Block]) -> list[Block]:
    """Discord nests no quotes: an inner quote's blocks join the outer one."""
    out: list[Block] = []
    for block in blocks:
        if isinstance(block, Quote):
            out.extend(_unquoted(block.blocks))
        else:
            out.append(block)
    return out


def _cell_text(inlines: tuple[Inline, ...]) -> str:
    parts: list[str] = []
    for node in inlines:
        if isinstance(node, Styled) and node.style == "spoiler":
            parts.append("[spoiler]")
        elif isinstance(node, Styled | Link):
            parts.append(_cell_text(node.children))
        elif isinstance(node, Mention):
            parts.append(mention_text(node))
        elif isinstance(node, LineBreak):
            parts.append(" ")
        else:
            parts.append(inline_text((node,)))
    return "".join(parts)


__all__ = [
    "MARKS",
    "ZWSP",
    "code_block",
    "code_span",
    "discord_emoji",
    "escape",
    "mention_text",
    "separator",
    "table_text",
    "to_markdown",
]
