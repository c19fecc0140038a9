"""What the adapter remembers of recent events, bounded: thread membership and each
thread's latest post (for replies and thread fallbacks), reactions (for removals)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

REMEMBERED: Final = 10_000  # entries kept per memory


class Lru(OrderedDict[str, Any]):
    def remember(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > REMEMBERED:
            self.popitem(last=False)


class Threads:
    """Which thread an event is in, and the latest post of each thread, as far as this
    run has seen. A reply goes into the thread of what it answers; a post into a thread
    falls back, for clients without threads, to answering the thread's latest post, as
    the spec asks (the root, for a thread this run has not seen)."""

    def __init__(self) -> None:
        self._root_of = Lru()
        self._latest = Lru()

    def saw(self, event_id: str, root: str) -> None:
        self._root_of.remember(event_id, root)
        self._latest.remember(root, event_id)

    def root_of(self, event_id: str) -> str | None:
        root = self._root_of.get(event_id)
        return root if isinstance(root, str) else None

    def latest(self, root: str) -> str:
        latest = self._latest.get(root)
        return latest if isinstance(latest, str) else root
