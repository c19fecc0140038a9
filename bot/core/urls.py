"""Bare URLs in text, found as Discord's client finds them: `http(s)://` up to a space
or `<`, less trailing punctuation. One regular-expression scan, linear in the text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

_URL: Final = re.compile(r"\bhttps?://[^\s<]+", re.IGNORECASE)
# Discord leaves these out of a link's end; around Markdown the markers too.
_TRAILING: Final = ".,:;\"']"
_TRAILING_MARKS: Final = _TRAILING + "*_~|"


def trim_url(url: str, *, markdown: bool = False) -> str:
    return url.rstrip(_TRAILING_MARKS if markdown else _TRAILING)


def find_urls(text: str, *, markdown: bool = False) -> Iterator[tuple[int, int]]:
    """(start, end) of each bare URL in `text`."""
    for match in _URL.finditer(text):
        url = trim_url(match[0], markdown=markdown)
        if len(url) > url.index("://") + 3:  # an address, not a scheme alone
            yield match.start(), match.start() + len(url)


def is_web_url(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))
