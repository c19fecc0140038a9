"""What a message says, as the parts Discord takes (2000 characters each).

A message with a document (a relayed one) is rendered from it and split in the model,
so that each part is whole: a code block or a quote cut in two is fenced or quoted in
both parts, bold text in both is bold. A plugin's own text that fits one part goes as
it was written; a longer one is read as the Markdown it is and split the same way.
"""

from __future__ import annotations

from typing import Final

from bot.core.document import Block, Document, Link, Paragraph, Small, Text
from bot.core.markdown import parse
from bot.core.markdown_out import to_markdown
from bot.core.messages import OutgoingMessage
from bot.core.split import split_document

MESSAGE_LIMIT: Final = 2000


def _measure(document: Document) -> int:
    return len(to_markdown(document))


def parts_of(
    message: OutgoingMessage,
    *,
    links: list[str] | None = None,
    answering: str | None = None,
    limit: int = MESSAGE_LIMIT,
) -> list[str]:
    """The message's parts; `links` are lines of files that could not be uploaded,
    `answering` the address of the message a webhook post answers (a first line)."""
    if message.document is None:
        text = "\n".join([message.text, *(links or [])])
        if answering:
            text = f"-# ↪ {answering}\n{text}"
        if not text.strip():
            return []
        if len(text) <= limit:
            return [text]
        document = parse(text)
    else:
        extra: list[Block] = [Paragraph((Text(line),)) for line in links or []]
        if answering:
            lead = Small((Text("↪ "), Link(answering, (Text(answering),))))
            document = Document((lead, *message.document.blocks, *extra))
        else:
            document = Document((*message.document.blocks, *extra))
    rendered = [to_markdown(p) for p in split_document(document, limit, _measure)]
    return [r for r in rendered if r.strip()]


def fit(parts: list[str], count: int, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`parts` in at most `count` posts (an edit of a post split in `count` parts): the
    overflow is cut short, with `…`, in the last one."""
    if not parts:
        return ["…"]
    if len(parts) <= count:
        return parts
    rest = "\n".join(parts[count - 1 :])
    if len(rest) > limit:
        rest = rest[: limit - 1].rstrip() + "…"
    return [*parts[: count - 1], rest]


__all__ = ["MESSAGE_LIMIT", "fit", "parts_of"]
