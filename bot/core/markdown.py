"""Discord's Markdown (also the core's text dialect) parsed into a `Document`.

markdown-it-py tokenizes, configured to Discord's dialect by the rules in
`markdown_rules`: no HTML, no entities, no indented code, setext headings, rules or
tables, which Discord does not have either. Mentions and custom emoji are resolved to
names and image URLs by the caller's `Resolver` (the Discord adapter knows them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

from markdown_it import MarkdownIt
from markdown_it.ruler import RuleOptionsType
from markdown_it.token import Token

from bot.core import markdown_rules as rules
from bot.core.document import (
    MAX_DEPTH,
    Block,
    Code,
    CodeBlock,
    Document,
    Emoji,
    Heading,
    Inline,
    LineBreak,
    ListBlock,
    Mention,
    MentionKind,
    Paragraph,
    Quote,
    Small,
    Text,
    normalise,
)
from bot.core.spans import FLAT, Span, close_top, cut
from bot.core.text import clean

log = logging.getLogger(__name__)

# Longer text is cut first: no platform sends more, and the cost stays bounded.
PARSE_LIMIT: Final = 200_000
MAX_MARKS: Final = 1_000
_MARKS: Final = re.compile(r"[*_~|`<\[\]\\\n]")
_FENCE: Final = re.compile("```")
# Words, spaces and a few marks no rule acts on (no `.`, `:` or `@`: links are found by
# them; no `-`, `#` or `>`: blocks): such text is one paragraph of itself, without the
# tokenizer, which cost more than the rest of taking a chat message in.
_PLAIN: Final = re.compile(r"(?:[^\W_]|[ ,?!'\"])+")


class Resolver(Protocol):
    def mention(self, kind: MentionKind, id: str) -> tuple[str, str | None]:
        """The readable name (`@Anna`, `#allmänt`) and a link, if any."""
        ...

    def emoji_url(self, id: str, animated: bool) -> str | None: ...


class Unresolved:
    """For text without a platform behind it: ids as names, no images."""

    def mention(self, kind: MentionKind, id: str) -> tuple[str, str | None]:
        return ("#" if kind == "channel" else "@") + id, None

    def emoji_url(self, id: str, animated: bool) -> str | None:
        return None


def _build() -> MarkdownIt:
    md = MarkdownIt("zero", {"maxNesting": 20})
    # What may end a paragraph, and a list item (a list item does not end a list).
    ends: RuleOptionsType = {"alt": ["paragraph", "list"]}
    for name, rule in (
        ("discord_fence", rules.fence),
        ("discord_quote", rules.quote),
        ("discord_heading", rules.heading),
        ("discord_small", rules.small),
    ):
        md.block.ruler.before("paragraph", name, rule, ends)
    md.block.ruler.before("paragraph", "discord_list", rules.discord_list, {"alt": ["paragraph"]})
    inline = md.inline.ruler
    inline.at("text", rules.text)
    inline.at("linkify", rules.bare_url)
    inline.at("backticks", rules.backticks)
    inline.at("strikethrough", rules.pairs)
    inline.at("emphasis", rules.emphasis)
    inline.at("link", rules.link)
    inline.at("autolink", rules.entity)
    md.inline.ruler2.at("strikethrough", rules.pairs_post)
    md.enable(["linkify", "newline", "escape", "backticks", "strikethrough", "emphasis"])
    md.enable(["link", "autolink"])
    return md


_MD: Final = _build()
_STYLE_OF: Final[dict[str, str]] = {
    "em_open": "italic",
    "s_open": "strike",
    "spoiler_open": "spoiler",
}


def parse(text: str, resolver: Resolver | None = None) -> Document:
    """`text` as Discord shows it."""
    text = clean(text[:PARSE_LIMIT])
    if not text.strip():
        return Document()
    if _PLAIN.fullmatch(text):
        return Document((Paragraph((Text(text.strip(" ")),)),))
    # Past MAX_MARKS marks (and line breaks) the rest is taken as plain text, from the
    # start of its line: each mark is a token, a Python object or three, and Discord's
    # own messages (4000 characters) hold fewer.
    cut = _mark_cut(text)
    if cut < len(text):
        cut = text.rfind("\n", 0, cut) + 1 or cut
    head, rest = text[:cut], text[cut:]
    blocks = _Converter(resolver or Unresolved()).blocks(_MD.parse(head)) if head else []
    return Document((*blocks, *Document.plain(rest).blocks))


def _mark_cut(text: str) -> int:
    """Where the MAX_MARKS-th mark stands, marks inside code fences not counted (code
    holds many, and costs nothing to parse)."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    spans = list(zip(fences[::2], fences[1::2], strict=False))
    count, pos, i = 0, 0, 0
    while True:
        match = _MARKS.search(text, pos)
        if match is None:
            return len(text)
        at = match.start()
        while i < len(spans) and spans[i][1] + 3 <= at:
            i += 1
        if i < len(spans) and spans[i][0] <= at < spans[i][1] + 3:
            count += 1  # the fence is one mark, what it holds none
            if count > MAX_MARKS:
                return spans[i][0]
            pos = spans[i][1] + 3
            continue
        count += 1
        if count > MAX_MARKS:
            return at
        pos = at + 1


class _Frame:
    __slots__ = ("blocks", "items", "kind", "ordered", "start")

    def __init__(self, kind: str, ordered: bool = False, start: int = 1) -> None:
        self.kind = kind
        self.blocks: list[Block] = []
        self.items: list[tuple[Block, ...]] = []
        self.ordered = ordered
        self.start = start


class _Converter:
    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    def blocks(self, tokens: Sequence[Token]) -> list[Block]:
        stack = [_Frame("root")]
        wrap: type[Paragraph] | type[Small] | int = Paragraph
        for token in tokens:
            kind = token.type
            top = stack[-1]
            if kind == "paragraph_open":
                wrap = Paragraph
            elif kind == "heading_open":
                wrap = int(token.tag[1])
            elif kind == "small_open":
                wrap = Small
            elif kind == "inline":
                top.blocks.extend(self._inline_blocks(token.children or [], wrap))
            elif kind == "fence":
                top.blocks.append(CodeBlock(token.content, token.info))
            elif kind == "blockquote_open":
                stack.append(_Frame("quote"))
            elif kind in ("bullet_list_open", "ordered_list_open"):
                start = token.attrGet("start")
                ordered = kind == "ordered_list_open"
                stack.append(_Frame("list", ordered, int(start) if start is not None else 1))
            elif kind == "list_item_open":
                stack.append(_Frame("item"))
            elif kind in ("blockquote_close", "bullet_list_close", "ordered_list_close"):
                if len(stack) > 1:
                    done = stack.pop()
                    if done.kind == "quote":
                        stack[-1].blocks.append(Quote(tuple(done.blocks)))
                    elif done.kind == "list":
                        block = ListBlock(done.ordered, tuple(done.items), done.start)
                        stack[-1].blocks.append(block)
            elif kind == "list_item_close" and len(stack) > 1:
                done = stack.pop()
                stack[-1].items.append(tuple(done.blocks))
        return stack[0].blocks

    def _inline_blocks(
        self, tokens: Sequence[Token], wrap: type[Paragraph] | type[Small] | int
    ) -> list[Block]:
        """The inline tokens as one block of the kind `wrap` says, or several where a
        code block stands inside the line: Discord shows it as a block."""
        out: list[Block] = []

        def emit(inlines: tuple[Inline, ...]) -> None:
            inlines = normalise(inlines)
            while inlines and isinstance(inlines[0], LineBreak):
                inlines = inlines[1:]
            while inlines and isinstance(inlines[-1], LineBreak):
                inlines = inlines[:-1]
            # Around a code block inside a line, the spaces belong to neither side.
            if inlines and isinstance(inlines[0], Text):
                inlines = (Text(inlines[0].text.lstrip()), *inlines[1:])
            if inlines and isinstance(inlines[-1], Text):
                inlines = (*inlines[:-1], Text(inlines[-1].text.rstrip()))
            inlines = normalise(inlines)
            if not inlines:
                return
            if isinstance(wrap, int):
                out.append(Heading(wrap, inlines))
            else:
                out.append(wrap(inlines))

        stack = [Span("root")]
        for token in tokens:
            kind = token.type
            kids = stack[-1].children
            if kind.endswith("_open"):
                style: str = _STYLE_OF.get(kind, FLAT)
                if kind == "strong_open":
                    style = "underline" if token.markup == "__" else "bold"
                if len(stack) > MAX_DEPTH:
                    stack.append(Span(FLAT))
                elif kind == "link_open":
                    stack.append(Span("link", str(token.attrGet("href") or "")))
                else:
                    stack.append(Span(style))
            elif kind.endswith("_close"):
                close_top(stack)
            elif kind == "text":
                kids.append(Text(token.content))
            elif kind == "code_inline":
                kids.append(Code(token.content))
            elif kind in ("softbreak", "hardbreak"):
                kids.append(LineBreak())
            elif kind == "discord_entity":
                kids.append(self._entity(token))
            elif kind == "discord_code_block":
                emit(cut(stack))
                spoiler = any(span.kind == "spoiler" for span in stack)
                out.append(CodeBlock(token.content, token.info, spoiler))
        emit(cut(stack))
        return out

    def _entity(self, token: Token) -> Inline:
        meta = token.meta
        kinds: tuple[tuple[MentionKind, str], ...] = (
            ("user", "uid"),
            ("role", "role"),
            ("channel", "channel"),
        )
        for kind, key in kinds:
            if key in meta:
                name, href = self._resolver.mention(kind, meta[key])
                return Mention(kind, name, href, meta[key])
        if "emoji" in meta:
            animated = meta.get("anim") == "a"
            url = self._resolver.emoji_url(meta["eid"], animated)
            return Emoji(meta["emoji"], meta["eid"], animated, url)
        if "ts" in meta:
            try:
                when = datetime.fromtimestamp(int(meta["ts"]), UTC)
            except (OverflowError, OSError, ValueError):
                return Text(token.content)
            return Text(when.strftime("%Y-%m-%d %H:%M UTC"))
        if "command" in meta:
            return Code("/" + meta["command"])
        return Text(token.content)


__all__ = ["PARSE_LIMIT", "Resolver", "Unresolved", "parse"]
