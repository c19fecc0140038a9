"""Which entries of a fetch are new, which changed, which are known: pure and in memory.

An entry is known by its guid; else by its link; else by a hash of what it shows.
Guids sometimes change while the rest stays (a site moved to another system): an entry
with an unknown guid whose link and title are known is the same entry, and its new guid
is kept. A link only counts when no other entry of the fetch has it too (some feeds give
every entry the site's front page), and a content hash only for entries without a guid,
so that two entries with the same words (two "Pressmeddelande" without text) stay two
when their guids say so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from plugins.updates.model import Entry, short_hash


@dataclass(frozen=True, slots=True)
class Known:
    """A stored entry, as far as matching needs it."""

    id: str
    guid: str | None
    link: str | None
    title: str
    digest: str
    state: str
    revision: int


@dataclass
class Matched:
    new: list[tuple[str, Entry]] = field(default_factory=list)  # (new id, entry)
    # Shown differently now: posted copies are edited.
    changed: list[tuple[Known, Entry]] = field(default_factory=list)
    # Shown the same, known under a new guid or link: only the record changes.
    moved: list[tuple[Known, Entry]] = field(default_factory=list)
    unchanged: list[Known] = field(default_factory=list)
    repeated: int = 0  # the same entry twice in one fetch


def entry_id(feed: str, entry: Entry) -> str:
    """A new entry's id (in the database and delivery keys): short, from its identity."""
    return "e" + short_hash(feed, entry.primary)


class Index:
    def __init__(self, known: Iterable[Known]) -> None:
        self.by_guid: dict[str, Known] = {}
        self.by_link: dict[str, Known] = {}
        self.by_digest: dict[str, Known] = {}
        self.by_id: dict[str, Known] = {}
        for k in known:
            self.by_id[k.id] = k
            if k.guid:
                self.by_guid.setdefault(k.guid, k)
            if k.link:
                self.by_link.setdefault(k.link, k)
            self.by_digest.setdefault(k.digest, k)

    def find(self, entry: Entry, *, link_unique: bool, guids_now: frozenset[str]) -> Known | None:
        if entry.guid and entry.guid in self.by_guid:
            return self.by_guid[entry.guid]
        if entry.link and link_unique and entry.link in self.by_link:
            found = self.by_link[entry.link]
            if not entry.guid:
                return found
            # A new guid for a known entry, or another entry with the same link (a feed
            # that shows one entry at a time, all linking to its front page): the same
            # title, and the known guid gone from the feed, tell the first.
            if found.title == entry.title and not (found.guid and found.guid in guids_now):
                return found
        if not entry.guid:
            return self.by_digest.get(entry.digest)
        return None


def match(feed: str, entries: Sequence[Entry], known: Iterable[Known]) -> Matched:
    """Sort a fetch's entries (in feed order) against what is stored for `feed`."""
    index = Index(known)
    guids_now = frozenset(e.guid for e in entries if e.guid)
    links = Counter(e.link for e in entries if e.link)
    out = Matched()
    taken: set[str] = set()
    for entry in entries:
        unique = entry.link is not None and links[entry.link] == 1
        found = index.find(entry, link_unique=unique, guids_now=guids_now)
        new_id = entry_id(feed, entry)
        # Known under the identity it was first seen with, since moved to another.
        found = found or index.by_id.get(new_id)
        if found is None:
            if new_id in taken:
                out.repeated += 1
                continue
            taken.add(new_id)
            out.new.append((new_id, entry))
        elif found.id in taken:
            out.repeated += 1
        else:
            taken.add(found.id)
            if found.digest != entry.digest:
                out.changed.append((found, entry))
            elif entry.guid != found.guid or entry.link != found.link:
                out.moved.append((found, entry))
            else:
                out.unchanged.append(found)
    return out
