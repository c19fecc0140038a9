"""No input stalls the bot: every conversion of a 60,000-character hostile message
finishes within a generous bound (the figures are in bench/formatting_bench.py), and
what comes out is sane: no NUL, Discord parts of at most 2000 characters, Matrix
contents below the event size, a tree no deeper than the cap."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.adapters.discord.markdown_out import parts_of
from bot.adapters.matrix.formatting import MAX_CONTENT_BYTES, size_of, text_contents
from bot.core.document import MAX_DEPTH, Block, Document, Inline, Link, ListBlock, Quote, Styled
from bot.core.html_in import parse_html
from bot.core.markdown import parse
from bot.core.messages import OutgoingMessage
from tests.formatting import hostile

LENGTH = 60_000
BOUND = 5.0  # seconds: generous on a shared machine; the bench has the real figures


def _timed(convert: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = convert()
    assert time.perf_counter() - started < BOUND
    return result


def _depth_inline(node: Inline) -> int:
    if isinstance(node, Styled | Link):
        return 1 + max((_depth_inline(c) for c in node.children), default=0)
    return 1


def _depth(block: Block) -> int:
    if isinstance(block, Quote):
        return 1 + max((_depth(b) for b in block.blocks), default=0)
    if isinstance(block, ListBlock):
        return 1 + max((_depth(b) for item in block.items for b in item), default=0)
    children = getattr(block, "children", ())
    return 1 + max((_depth_inline(c) for c in children), default=0)


def _check(document: Document) -> None:
    assert all(_depth(b) <= 2 * MAX_DEPTH + 2 for b in document.blocks)
    message = OutgoingMessage(text="", document=document)
    parts = _timed(lambda: parts_of(message))
    assert all(0 < len(p) <= 2000 for p in parts)
    assert not any("\x00" in p for p in parts)
    contents = _timed(lambda: text_contents(message))
    assert all(size_of(c) <= MAX_CONTENT_BYTES for c in contents)
    assert not any("\x00" in c["body"] + c["formatted_body"] for c in contents)


@pytest.mark.parametrize("name", list(hostile.MARKDOWN))
def test_discord_markdown(name: str) -> None:
    text = hostile.MARKDOWN[name](LENGTH)
    assert len(text) == LENGTH
    _check(_timed(lambda: parse(text)))


@pytest.mark.parametrize("name", list(hostile.HTML))
def test_matrix_html(name: str) -> None:
    html = hostile.HTML[name](LENGTH)
    _check(_timed(lambda: parse_html(html)))


@pytest.mark.parametrize("name", list(hostile.PLAIN))
def test_plain_matrix_bodies(name: str) -> None:
    _check(_timed(lambda: Document.plain(hostile.PLAIN[name](LENGTH))))


@pytest.mark.parametrize("name", list(hostile.MARKDOWN))
def test_core_text_to_matrix(name: str) -> None:
    """A plugin's own text (a feed's, say) rendered for Matrix from its Markdown."""
    contents = _timed(lambda: text_contents(OutgoingMessage(hostile.MARKDOWN[name](LENGTH))))
    assert all(size_of(c) <= MAX_CONTENT_BYTES for c in contents)


def test_words_past_the_mark_cap_are_kept_as_text() -> None:
    text = "**fet** " * 600 + "sista ordet"
    document = parse(text)
    assert "sista ordet" in OutgoingMessage(text="", document=document).text + "".join(
        parts_of(OutgoingMessage(text="", document=document))
    )
    html = "<b>x</b>" * 800 + "<p>sista ordet</p>"
    assert "sista ordet" in "".join(parts_of(OutgoingMessage(text="", document=parse_html(html))))
