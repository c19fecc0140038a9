"""A message's formatting as a small tree, in platform-neutral form.

Every platform's markup is parsed into this model at the boundary (Discord's Markdown in
`bot.core.markdown`, Matrix HTML in `bot.core.html_in`) and rendered from it for each
platform, so that a message never crosses from one dialect to another through a third.
The tree's depth is capped by the parsers (`MAX_DEPTH`), so renderers may recurse.

The JSON form (`to_obj` / `from_obj`) is how a document rides in the persisted outbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from bot.core.urls import find_urls

# Nesting of styles, quotes and lists beyond this is flattened by the parsers: no reader
# follows it, and it bounds every recursion over the tree.
MAX_DEPTH: Final = 12

Style: TypeAlias = Literal["bold", "italic", "underline", "strike", "spoiler"]
MentionKind: TypeAlias = Literal["user", "room", "channel", "role", "event"]
STYLES: Final[tuple[Style, ...]] = ("bold", "italic", "underline", "strike", "spoiler")
MENTION_KINDS: Final[tuple[MentionKind, ...]] = ("user", "room", "channel", "role", "event")


@dataclass(frozen=True, slots=True)
class Text:
    text: str  # may hold line breaks, shown as breaks


@dataclass(frozen=True, slots=True)
class Styled:
    style: Style
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Code:
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link; a bare URL is a link whose only child is its own address as text."""

    href: str
    children: tuple[Inline, ...]

    @property
    def bare(self) -> bool:
        return self.children == (Text(self.href),)


@dataclass(frozen=True, slots=True)
class Mention:
    """Someone or something named: shown by `name` (never a ping), linked by `href`
    where a link exists. `id` is the platform's (a Discord snowflake, a Matrix id)."""

    kind: MentionKind
    name: str
    href: str | None = None
    id: str = ""


@dataclass(frozen=True, slots=True)
class Emoji:
    """A custom emoji (`name` without colons; Discord's `id` and `animated`, its image
    `url`: Discord's CDN or an mxc:// URI), or a Unicode one in `unicode`."""

    name: str
    id: str = ""
    animated: bool = False
    url: str | None = None
    unicode: str | None = None


@dataclass(frozen=True, slots=True)
class LineBreak:
    pass


Inline: TypeAlias = Text | Styled | Code | Link | Mention | Emoji | LineBreak


@dataclass(frozen=True, slots=True)
class Paragraph:
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Quote:
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class CodeBlock:
    code: str
    language: str = ""
    spoiler: bool = False  # Discord's `||```code```||`


@dataclass(frozen=True, slots=True)
class Heading:
    level: int  # 1-3
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class ListBlock:
    ordered: bool
    items: tuple[tuple[Block, ...], ...]
    start: int = 1


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[tuple[Inline, ...], ...]
    rows: tuple[tuple[tuple[Inline, ...], ...], ...]


@dataclass(frozen=True, slots=True)
class Small:
    """Discord's `-#` subtext: one line in small print."""

    children: tuple[Inline, ...]


Block: TypeAlias = Paragraph | Quote | CodeBlock | Heading | ListBlock | Table | Small


@dataclass(frozen=True, slots=True)
class Document:
    blocks: tuple[Block, ...] = ()

    @classmethod
    def plain(cls, text: str) -> Document:
        """Text taken literally: paragraphs at blank lines, line breaks kept."""
        return cls(tuple(Paragraph(p) for p in plain_paragraphs(text)))

    def to_obj(self) -> dict[str, Any]:
        return {"v": 1, "b": [_block_obj(b) for b in self.blocks]}

    @classmethod
    def from_obj(cls, obj: Any) -> Document:
        """The document of `to_obj`; ValueError for anything else."""
        if not isinstance(obj, dict) or obj.get("v") != 1 or not isinstance(obj.get("b"), list):
            raise ValueError("not a document")
        return cls(tuple(_block_of(b, 0) for b in obj["b"]))


def plain_paragraphs(text: str) -> Iterator[tuple[Inline, ...]]:
    """Paragraphs at blank lines; a line break inside one stays in its text (a text
    may hold line breaks: one node for a long plain paragraph, not one per line)."""
    for para in text.strip("\n").split("\n\n"):
        if para.strip():
            yield tuple(linked(para.strip("\n")))


def linked(text: str) -> Iterator[Inline]:
    """`text` as text, its bare URLs as links."""
    pos = 0
    for start, end in find_urls(text):
        if start > pos:
            yield Text(text[pos:start])
        yield Link(text[start:end], (Text(text[start:end]),))
        pos = end
    if pos < len(text):
        yield Text(text[pos:])


def normalise(inlines: Iterable[Inline]) -> tuple[Inline, ...]:
    """Adjacent text joined, empty text and empty styles dropped, adjacent runs of one
    style merged: one tree for one look. Linear: each run is joined once."""
    out: list[Inline] = []
    texts: list[str] = []
    group: list[Styled] = []

    def flush() -> None:
        if texts:
            out.append(Text("".join(texts)))
            texts.clear()
        if group:
            if len(group) == 1:
                out.append(group[0])
            else:
                merged = [c for g in group for c in g.children]
                out.append(Styled(group[0].style, normalise(merged)))
            group.clear()

    for node in inlines:
        if isinstance(node, Text):
            if node.text:
                if group:
                    flush()
                texts.append(node.text)
        elif isinstance(node, Styled):
            if not node.children:
                continue
            if texts or (group and group[0].style != node.style):
                flush()
            group.append(node)
        else:
            flush()
            out.append(node)
    flush()
    return tuple(out)


def without_style(inlines: Iterable[Inline], style: Style) -> Iterator[Inline]:
    """`inlines` with every run of `style` inside opened up (it is on already)."""
    for node in inlines:
        if isinstance(node, Styled) and node.style == style:
            yield from without_style(node.children, style)
        else:
            yield node


def emojis(document: Document) -> Iterator[Emoji]:
    """Every emoji in the document, in order."""
    for block in document.blocks:
        yield from _block_emojis(block)


def _block_emojis(block: Block) -> Iterator[Emoji]:
    if isinstance(block, Paragraph | Heading | Small):
        yield from _inline_emojis(block.children)
    elif isinstance(block, Quote):
        for inner in block.blocks:
            yield from _block_emojis(inner)
    elif isinstance(block, ListBlock):
        for item in block.items:
            for inner in item:
                yield from _block_emojis(inner)
    elif isinstance(block, Table):
        for cell in (*block.header, *(c for row in block.rows for c in row)):
            yield from _inline_emojis(cell)


def _inline_emojis(inlines: Iterable[Inline]) -> Iterator[Emoji]:
    for node in inlines:
        if isinstance(node, Emoji):
            yield node
        elif isinstance(node, Styled | Link):
            yield from _inline_emojis(node.children)


def inline_text(inlines: Iterable[Inline]) -> str:
    """What the inlines say, markup aside (spoilers too: for measuring, not showing)."""
    parts: list[str] = []
    for node in inlines:
        if isinstance(node, Text | Code):
            parts.append(node.text)
        elif isinstance(node, Styled | Link):
            parts.append(inline_text(node.children))
        elif isinstance(node, Mention):
            parts.append(node.name)
        elif isinstance(node, Emoji):
            parts.append(node.unicode or f":{node.name}:")
        else:
            parts.append("\n")
    return "".join(parts)


# -- the JSON form ---------------------------------------------------------------------

_STYLE_CODES: Final = {"bold": "b", "italic": "i", "underline": "u", "strike": "s", "spoiler": "sp"}
_CODE_STYLES: Final[dict[str, Style]] = {v: k for k, v in _STYLE_CODES.items()}  # type: ignore[misc]


def _inline_obj(node: Inline) -> list[Any]:
    if isinstance(node, Text):
        return ["t", node.text]
    if isinstance(node, Styled):
        return [_STYLE_CODES[node.style], [_inline_obj(c) for c in node.children]]
    if isinstance(node, Code):
        return ["c", node.text]
    if isinstance(node, Link):
        return ["a", node.href, [_inline_obj(c) for c in node.children]]
    if isinstance(node, Mention):
        return ["m", node.kind, node.name, node.href, node.id]
    if isinstance(node, Emoji):
        return ["e", node.name, node.id, node.animated, node.url, node.unicode]
    return ["br"]


def _block_obj(block: Block) -> list[Any]:
    if isinstance(block, Paragraph):
        return ["p", [_inline_obj(c) for c in block.children]]
    if isinstance(block, Quote):
        return ["q", [_block_obj(b) for b in block.blocks]]
    if isinstance(block, CodeBlock):
        return ["pre", block.code, block.language, block.spoiler]
    if isinstance(block, Heading):
        return ["h", block.level, [_inline_obj(c) for c in block.children]]
    if isinstance(block, ListBlock):
        items = [[_block_obj(b) for b in item] for item in block.items]
        return ["l", block.ordered, block.start, items]
    if isinstance(block, Table):
        header = [[_inline_obj(c) for c in cell] for cell in block.header]
        rows = [[[_inline_obj(c) for c in cell] for cell in row] for row in block.rows]
        return ["tb", header, rows]
    return ["sm", [_inline_obj(c) for c in block.children]]


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string was expected")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("a list was expected")
    return value


def _inlines_of(value: Any, depth: int) -> tuple[Inline, ...]:
    if depth > 3 * MAX_DEPTH:
        raise ValueError("a document nested too deep")
    return tuple(_inline_of(v, depth + 1) for v in _list(value))


def _inline_of(obj: Any, depth: int) -> Inline:
    kind = _str(_list(obj)[0]) if obj else ""
    if kind == "t":
        return Text(_str(obj[1]))
    if kind in _CODE_STYLES:
        return Styled(_CODE_STYLES[kind], _inlines_of(obj[1], depth))
    if kind == "c":
        return Code(_str(obj[1]))
    if kind == "a":
        return Link(_str(obj[1]), _inlines_of(obj[2], depth))
    if kind == "m" and obj[1] in MENTION_KINDS:
        href = obj[3] if isinstance(obj[3], str) else None
        return Mention(obj[1], _str(obj[2]), href, _str(obj[4]))
    if kind == "e":
        url = obj[4] if isinstance(obj[4], str) else None
        uni = obj[5] if isinstance(obj[5], str) else None
        return Emoji(_str(obj[1]), _str(obj[2]), bool(obj[3]), url, uni)
    if kind == "br":
        return LineBreak()
    raise ValueError(f"not an inline: {kind!r}")


def _block_of(obj: Any, depth: int) -> Block:
    if depth > MAX_DEPTH * 3:
        raise ValueError("a document nested too deep")
    kind = _str(_list(obj)[0]) if obj else ""
    if kind == "p":
        return Paragraph(_inlines_of(obj[1], depth))
    if kind == "q":
        return Quote(tuple(_block_of(b, depth + 1) for b in _list(obj[1])))
    if kind == "pre":
        return CodeBlock(_str(obj[1]), _str(obj[2]), bool(obj[3]) if len(obj) > 3 else False)
    if kind == "h" and obj[1] in (1, 2, 3):
        return Heading(int(obj[1]), _inlines_of(obj[2], depth))
    if kind == "l":
        items = tuple(tuple(_block_of(b, depth + 1) for b in _list(i)) for i in _list(obj[3]))
        start = obj[2] if isinstance(obj[2], int) else 1
        return ListBlock(bool(obj[1]), items, start)
    if kind == "tb":
        header = tuple(_inlines_of(c, depth) for c in _list(obj[1]))
        rows = tuple(tuple(_inlines_of(c, depth) for c in _list(r)) for r in _list(obj[2]))
        return Table(header, rows)
    if kind == "sm":
        return Small(_inlines_of(obj[1], depth))
    raise ValueError(f"not a block: {kind!r}")


__all__ = [
    "MAX_DEPTH",
    "Block",
    "Code",
    "CodeBlock",
    "Document",
    "Emoji",
    "Heading",
    "Inline",
    "LineBreak",
    "Link",
    "ListBlock",
    "Mention",
    "Paragraph",
    "Quote",
    "Small",
    "Style",
    "Styled",
    "Table",
    "Text",
    "emojis",
    "inline_text",
    "linked",
    "normalise",
    "plain_paragraphs",
]
