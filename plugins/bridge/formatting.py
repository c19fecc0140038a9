"""What a bridged copy says: the source message's document, as its adapter parsed it
from the platform's own form (Discord's Markdown, Matrix HTML), so that no copy goes
from one dialect to another through a third. Events that carry none (the console's,
a test's) are read here: HTML as Matrix HTML, text as the core's Markdown.

Untrusted input: the parsers drop scripts, styles and `<mx-reply>`, keep only http(s)
and mailto links, and make mentions readable names, never pings.
"""

from __future__ import annotations

from bot.core.document import Document, Paragraph, Quote, Text
from bot.core.events import MessageEdited, MessageReceived
from bot.core.html_in import parse_html
from bot.core.markdown import parse


def document_of(event: MessageReceived | MessageEdited) -> Document:
    if event.document is not None:
        return event.document
    if event.html:
        return parse_html(event.html)
    return parse(event.text)


def quote(excerpt: str, limit: int = 200) -> str:
    """A reply's original as one line, for rooms where it cannot be linked."""
    flat = " ".join(excerpt.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def with_quote(document: Document, excerpt: str) -> Document:
    """`document` below a quote of the message it answers (taken as plain text)."""
    line = Paragraph((Text(quote(excerpt)),))
    return Document((Quote((line,)), *document.blocks))


__all__ = ["document_of", "quote", "with_quote"]
