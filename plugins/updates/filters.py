"""Include and exclude words per feed: plain words, matched as whole words, case aside.

No regular expressions from users: a word (or a few words in a row) is looked for
among the words of an entry's title and summary, in linear time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from plugins.updates.model import Entry

_WORD = re.compile(r"\w+")


def words(text: str) -> str:
    """`text` as its words, lower case, one space apart and one at each end."""
    return " " + " ".join(_WORD.findall(text.casefold())) + " "


def passes(entry: Entry, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if not include and not exclude:
        return True
    haystack = words(f"{entry.title} {entry.summary}")

    def has(word: str) -> bool:
        needle = words(word)
        return needle.strip() != "" and needle in haystack

    if include and not any(has(w) for w in include):
        return False
    return not any(has(w) for w in exclude)
