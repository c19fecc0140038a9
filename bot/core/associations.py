"""The associations (partiföreningar) and their rooms: who is where."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.core.refs import RoomRef


@dataclass(frozen=True, slots=True)
class Association:
    id: str
    name: str
    rooms: tuple[RoomRef, ...]
    language: str | None = None


class Directory:
    def __init__(self, associations: Iterable[Association], default_language: str) -> None:
        self._by_id = {a.id: a for a in associations}
        self._by_room = {room: a for a in self._by_id.values() for room in a.rooms}
        self.default_language = default_language

    def __iter__(self) -> Iterable[Association]:
        return iter(self._by_id.values())

    def all(self) -> list[Association]:
        return list(self._by_id.values())

    def ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def get(self, assoc_id: str) -> Association | None:
        return self._by_id.get(assoc_id)

    def of_room(self, room: RoomRef) -> Association | None:
        return self._by_room.get(room)

    def select(self, ids: Sequence[str]) -> list[Association]:
        """`("*",)` selects every association; unknown ids are skipped."""
        if "*" in ids:
            return self.all()
        return [self._by_id[i] for i in ids if i in self._by_id]

    def rooms_for(self, ids: Sequence[str]) -> list[RoomRef]:
        seen: dict[RoomRef, None] = {}
        for assoc in self.select(ids):
            for room in assoc.rooms:
                seen.setdefault(room, None)
        return list(seen)

    def language_for(self, room: RoomRef) -> str:
        assoc = self._by_room.get(room)
        return (assoc.language if assoc and assoc.language else None) or self.default_language
