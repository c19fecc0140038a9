"""A `Document` split into parts that each fit a platform's limit, cut in the model so
that every part is whole on its own: a code block cut in two is two fenced blocks, a
quote cut in two is two quotes, a bold sentence cut in two is bold in both parts.

`measure` says how big a document is once rendered (Discord: characters of Markdown);
blocks are packed greedily, and a block too big alone is cut at a paragraph's line
break, sentence end or space (as `split_text` prefers them), a code block's line, a
list's item or a table's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bot.core.document import (
    Block,
    Code,
    CodeBlock,
    Document,
    Heading,
    Inline,
    LineBreak,
    Link,
    ListBlock,
    Paragraph,
    Quote,
    Small,
    Styled,
    Table,
    Text,
    inline_text,
    normalise,
)

Measure = Callable[[Document], int]
_CUTS: Final = ("\n", ". ", "! ", "? ", " ")
_SEPARATOR: Final = 8  # what joining two blocks adds, at most (guessed; checked after)
_ROUNDS: Final = 6  # a part still too big is cut again, with a smaller aim, this often


def split_document(document: Document, limit: int, measure: Measure) -> list[Document]:
    """Parts of `document`, each at most `limit` by `measure` (unless one character
    alone is more); no part empty. Blocks are measured one by one and packed greedily;
    a part that joining made too big (a separator more than guessed) is packed again."""
    if not document.blocks:
        return []
    if measure(document) <= limit:
        return [document]
    pieces: list[tuple[Block, int]] = []
    for block in document.blocks:
        size = measure(Document((block,)))
        if size <= limit:
            pieces.append((block, size))
        else:
            pieces.extend((b, measure(Document((b,)))) for b in _cut_block(block, limit, measure))
    parts: list[Document] = []
    current: list[Block] = []
    used = 0
    for block, size in pieces:
        if current and used + _SEPARATOR + size > limit:
            parts.append(Document(tuple(current)))
            current, used = [], 0
        used += size + (_SEPARATOR if current else 0)
        current.append(block)
    if current:
        parts.append(Document(tuple(current)))
    out: list[Document] = []
    for part in parts:
        if len(part.blocks) > 1 and measure(part) > limit:
            out.extend(Document((b,)) for b in part.blocks)
        else:
            out.append(part)
    return out


def _cut_block(block: Block, limit: int, measure: Measure) -> list[Block]:
    if isinstance(block, Paragraph | Heading | Small):
        return _cut_inline_block(block, limit, measure)
    if isinstance(block, CodeBlock):
        return _cut_code(block, limit, measure)
    if isinstance(block, Quote):

        def quoted(d: Document) -> int:
            return measure(Document((Quote(d.blocks),)))

        return [Quote(p.blocks) for p in split_document(Document(block.blocks), limit, quoted)]
    if isinstance(block, ListBlock):
        return _cut_list(block, limit, measure)
    return _cut_table(block, limit, measure)


def _wrap(
    block: Paragraph | Heading | Small, inlines: tuple[Inline, ...]
) -> Paragraph | Heading | Small:
    if isinstance(block, Heading):
        return Heading(block.level, inlines)
    return type(block)(inlines)


def _cut_inline_block(
    block: Paragraph | Heading | Small, limit: int, measure: Measure, aim: float = 0.95
) -> list[Block]:
    """The inlines packed greedily by their text's length times the block's ratio of
    rendered size to text; each part measured once, one too big cut again."""
    size = measure(Document((block,)))
    if size <= limit:
        return [block]
    length = len(inline_text(block.children))
    if length <= 1:
        return [block]
    ratio = size / length
    out: list[Block] = []
    for packed in _pack(block.children, max(1.0, limit * aim), ratio):
        chunk = _strip(packed)
        if not chunk:
            continue
        piece = _wrap(block, chunk)
        if aim < 0.95 * 0.7**_ROUNDS or measure(Document((piece,))) <= limit:
            out.append(piece)
        else:
            out.extend(_cut_inline_block(piece, limit, measure, aim * 0.7))
    return out


def _pack(nodes: tuple[Inline, ...], budget: float, ratio: float) -> list[tuple[Inline, ...]]:
    chunks: list[tuple[Inline, ...]] = []
    current: list[Inline] = []
    used = 0.0

    def flush() -> None:
        nonlocal current, used
        if current:
            chunks.append(normalise(current))
        current, used = [], 0.0

    for item in nodes:
        # A link longer than a part cannot stay one: its words go on, as text.
        node = _unlinked(item, budget / ratio)
        cost = max(1, len(inline_text((node,)))) * ratio
        if used + cost <= budget:
            current.append(node)
            used += cost
            continue
        if isinstance(node, Text | Code):
            rest = node.text
            while rest:
                room = int((budget - used) / ratio)
                if len(rest) <= room:
                    current.append(type(node)(rest))
                    used += len(rest) * ratio
                    break
                if current and room < budget / ratio / 4:
                    flush()  # little room left in this part: the text starts the next
                    continue
                at = _best_cut(rest, max(1, room))
                current.append(type(node)(rest[:at]))
                flush()
                rest = rest[at:]
            continue
        flush()
        if cost <= budget or not isinstance(node, Styled | Link):
            current.append(node)
            used = cost
            continue
        # A style or a link longer than a part: cut inside, each piece styled again.
        mark = 8 * ratio + (len(node.href) if isinstance(node, Link) else 0)
        for inner in _pack(node.children, max(1.0, budget - mark), ratio):
            wrapped: Inline = (
                Styled(node.style, inner) if isinstance(node, Styled) else Link(node.href, inner)
            )
            chunks.append((wrapped,))
    flush()
    return chunks


def _unlinked(node: Inline, room: float) -> Inline:
    if not isinstance(node, Link) or len(node.href) < room / 2:
        return node
    if node.bare:
        return Text(node.href)
    return Styled("underline", (*node.children, Text(f" ({node.href})")))


def _best_cut(text: str, target: int) -> int:
    window = text[:target]
    for sep in _CUTS:
        pos = window.rfind(sep)
        if pos > target // 4:
            return pos + len(sep)
    return max(1, min(target, len(text)))


def _strip(inlines: tuple[Inline, ...]) -> tuple[Inline, ...]:
    """No line break or space at either end of a part, inside its marks too."""
    items = list(inlines)
    while items and isinstance(items[0], LineBreak):
        items.pop(0)
    while items and isinstance(items[-1], LineBreak):
        items.pop()
    if items:
        items[0] = _edge(items[0], start=True)
    if items:
        items[-1] = _edge(items[-1], start=False)
    return normalise(items)


def _edge(node: Inline, *, start: bool) -> Inline:
    if isinstance(node, Text):
        return Text(node.text.lstrip() if start else node.text.rstrip())
    if isinstance(node, Styled) and node.children:
        kids = list(node.children)
        kids[0 if start else -1] = _edge(kids[0 if start else -1], start=start)
        return Styled(node.style, normalise(kids))
    return node


def _cut_code(block: CodeBlock, limit: int, measure: Measure) -> list[Block]:
    def code(text: str) -> CodeBlock:
        return CodeBlock(text, block.language, block.spoiler)

    overhead = measure(Document((code(""),)))
    # In characters of code: `measure` may count otherwise (bytes, escapes).
    ratio = max(1.0, (measure(Document((block,))) - overhead) / max(1, len(block.code)))
    budget = max(1, int((limit - overhead) / ratio))
    out: list[CodeBlock] = []
    lines: list[str] = []
    used = 0
    for whole in block.code.split("\n"):
        line = whole
        while len(line) > budget:  # a line longer than a part: cut where it must be
            if lines:
                out.append(code("\n".join(lines)))
                lines, used = [], 0
            out.append(code(line[:budget]))
            line = line[budget:]
        if lines and used + len(line) + 1 > budget:
            out.append(code("\n".join(lines)))
            lines, used = [], 0
        lines.append(line)
        used += len(line) + 1
    if lines:
        out.append(code("\n".join(lines)))
    # Escapes of backticks inside may have made a part longer: cut those again.
    return [
        piece
        for part in out
        for piece in (
            [part]
            if measure(Document((part,))) <= limit or budget < 4
            else _cut_code(part, limit - (budget // 4), measure)
        )
    ]


def _cut_list(block: ListBlock, limit: int, measure: Measure) -> list[Block]:
    """Halves of the list until each fits; an item alone too big is cut inside, each
    piece a list of that one item under its number."""
    if measure(Document((block,))) <= limit:
        return [block]
    if len(block.items) == 1:
        n = block.start

        def as_item(d: Document) -> int:
            return measure(Document((ListBlock(block.ordered, (d.blocks,), n),)))

        parts = split_document(Document(block.items[0]), limit, as_item)
        return [ListBlock(block.ordered, (p.blocks,), n) for p in parts]
    mid = len(block.items) // 2
    first = ListBlock(block.ordered, block.items[:mid], block.start)
    second = ListBlock(block.ordered, block.items[mid:], block.start + mid)
    return [*_cut_list(first, limit, measure), *_cut_list(second, limit, measure)]


def _cut_table(block: Table, limit: int, measure: Measure) -> list[Block]:
    """Halves of the rows, the header in each; a row alone too big as text."""
    if measure(Document((block,))) <= limit:
        return [block]
    if len(block.rows) > 1:
        mid = len(block.rows) // 2
        return [
            *_cut_table(Table(block.header, block.rows[:mid]), limit, measure),
            *_cut_table(Table(block.header, block.rows[mid:]), limit, measure),
        ]
    inlines: list[Inline] = []
    for cell in (*block.header, *(c for row in block.rows for c in row)):
        inlines.extend((*cell, LineBreak()))
    return _cut_inline_block(Paragraph(normalise(inlines)), limit, measure)


__all__ = ["Measure", "split_document"]
