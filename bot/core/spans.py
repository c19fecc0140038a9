"""Open inline elements while a parser reads (markdown-it's tokens, HTML's tags): a
stack of spans, closed into the document's inline nodes. Shared by both parsers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from bot.core.document import STYLES, Code, Inline, Link, Styled, Text, normalise

LinkOf = Callable[[str, tuple[Inline, ...]], list[Inline]]
FLAT: Final = "flat"  # a span that only groups (too deep, or markup we drop)


@dataclass(slots=True)
class Span:
    kind: str  # a style, "link", "code", FLAT or "root"
    href: str = ""
    children: list[Inline] = field(default_factory=list)


def plain_link(href: str, children: tuple[Inline, ...]) -> list[Inline]:
    return [Link(href, children or (Text(href),))]


def close(span: Span, link_of: LinkOf = plain_link) -> list[Inline]:
    children = normalise(span.children)
    if span.kind == "link":
        return link_of(span.href, children)
    if span.kind == "code":
        text = "".join(c.text if isinstance(c, Text) else "" for c in children)
        return [Code(text)] if text else []
    for style in STYLES:
        if span.kind == style:
            return [Styled(style, children)] if children else []
    return list(children)


def close_top(stack: list[Span], link_of: LinkOf = plain_link) -> None:
    if len(stack) > 1:
        span = stack.pop()
        stack[-1].children.extend(close(span, link_of))


def cut(stack: list[Span], link_of: LinkOf = plain_link) -> tuple[Inline, ...]:
    """Everything so far as finished nodes; the open spans stay open, emptied, for what
    follows the cut (a block that stands in the middle of a line)."""
    built: list[Inline] = []
    for span in reversed(stack[1:]):
        built = close(Span(span.kind, span.href, [*span.children, *built]), link_of)
        span.children = []
    result = normalise([*stack[0].children, *built])
    stack[0].children = []
    return result


__all__ = ["FLAT", "Span", "close", "close_top", "cut", "plain_link"]
