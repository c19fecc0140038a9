"""Organisers' own updates: `update post` queues a text, now or at a time, for rooms.

A text is stored until it is posted and as long as edits of it are possible (the
retention period), then forgotten. Posting is one transaction: the text's state, its
copies' delivery keys `update:post:<id>:<room>` and their records, so a crash never
posts half or twice. A queued text waits in the scheduler's table (`updates:post:<id>`);
one that fell due while the bot was down follows the scheduler's grace rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from bot.plugin import PluginContext
from bot.storage.database import Database
from plugins.updates import text as feedtext
from plugins.updates.posting import TEXT, Poster
from plugins.updates.storage import csv, split

log = logging.getLogger(__name__)

QUEUED: Final = "queued"
POSTED: Final = "posted"
CANCELLED: Final = "cancelled"
TEXT_LIMIT: Final = 3000


def job_key(post_id: int) -> str:
    return f"updates:post:{post_id}"


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    text: str
    associations: tuple[str, ...]
    rooms: tuple[str, ...]
    due_at: float
    state: str
    author: str
    posted_at: float | None


class NoteStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        text: str,
        associations: Sequence[str],
        rooms: Sequence[str],
        due_at: float,
        author: str,
        now: float,
    ) -> int:
        rowid = await self.db.insert(
            "INSERT INTO updates_posts (text, associations, rooms, due_at, state, author,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (text, csv(associations), csv(rooms), due_at, QUEUED, author, now),
        )
        assert rowid is not None
        return rowid

    async def get(self, note_id: int) -> Note | None:
        rows = await self._select("id = ?", (note_id,))
        return rows[0] if rows else None

    async def with_state(self, *states: str) -> list[Note]:
        marks = ", ".join("?" for _ in states)
        return await self._select(f"state IN ({marks})", states)

    async def _select(self, where: str, params: Sequence[Any]) -> list[Note]:
        rows = await self.db.fetchall(
            "SELECT id, text, associations, rooms, due_at, state, author, posted_at"
            f" FROM updates_posts WHERE {where} ORDER BY due_at, id",
            params,
        )
        return [
            Note(
                id=int(r[0]),
                text=str(r[1]),
                associations=split(str(r[2])),
                rooms=split(str(r[3])),
                due_at=float(r[4]),
                state=str(r[5]),
                author=str(r[6]),
                posted_at=float(r[7]) if r[7] is not None else None,
            )
            for r in rows
        ]

    async def set(self, note_id: int, **columns: object) -> None:
        names = ", ".join(f"{name} = ?" for name in columns)
        await self.db.execute(
            f"UPDATE updates_posts SET {names} WHERE id = ?", (*columns.values(), note_id)
        )


def clean_text(raw: str) -> str:
    """An organiser's text as posted: their own formatting kept, but nothing pings."""
    return feedtext.neutralise(raw.strip())[:TEXT_LIMIT]


class Notes:
    def __init__(self, ctx: PluginContext, poster: Poster) -> None:
        self.ctx = ctx
        self.poster = poster
        self.store = NoteStore(ctx.db)

    def message(self, note: Note, lang: str, *, late: bool = False) -> OutgoingMessage:
        head = self.ctx.t("updates.note.head", lang)
        if late:
            head = f"{self.ctx.t('schedule.late', lang)} {head}"
        return OutgoingMessage(text=f"{head}\n{note.text}")

    async def queue(
        self,
        text: str,
        associations: Sequence[str],
        rooms: Sequence[str],
        due: datetime | None,
        author: str,
    ) -> tuple[Note, int]:
        """Store a text; post it now (`due` None) or arm its wake-up. Returns it and the
        number of posts queued now."""
        now = self.ctx.clock.now()
        at = due or now
        async with self.ctx.db.transaction():
            note_id = await self.store.add(
                text, associations, rooms, at.timestamp(), author, now.timestamp()
            )
            note = await self.store.get(note_id)
            assert note is not None
            posts = await self._post(note, now, late=False) if due is None else 0
        if due is not None:
            await self.ctx.scheduler.at(job_key(note_id), due, "post", {"id": note_id})
        return note, posts

    async def due(self, note_id: int, *, late: bool) -> None:
        """The wake-up of a queued text."""
        async with self.ctx.db.transaction():
            note = await self.store.get(note_id)
            if note is None or note.state != QUEUED:
                log.info("update %s is no longer queued; nothing to post", note_id)
                return
            await self._post(note, self.ctx.clock.now(), late=late)

    async def _post(self, note: Note, now: datetime, *, late: bool) -> int:
        """Inside the caller's transaction."""
        posts = 0
        for room in self.poster.rooms(note.associations, note.rooms):
            key = f"update:post:{note.id}:{room}"
            message = self.message(note, self.poster.language(room), late=late)
            if await self.ctx.delivery.send(key, room, message):
                posts += 1
            await self.poster.store.add_copy(
                key, TEXT, str(room), str(note.id), now.timestamp(), late=late
            )
        await self.store.set(note.id, state=POSTED, posted_at=now.timestamp())
        log.info("update %d posted into %d rooms", note.id, posts)
        return posts

    async def cancel(self, note: Note) -> None:
        async with self.ctx.db.transaction():
            await self.store.set(
                note.id, state=CANCELLED, posted_at=self.ctx.clock.now().timestamp()
            )
        await self.ctx.scheduler.cancel(job_key(note.id))

    async def edit(self, note: Note, text: str) -> int:
        """Change a queued text, or edit every posted copy; returns the edits queued."""
        fresh = replace(note, text=text)
        async with self.ctx.db.transaction():
            await self.store.set(note.id, text=text)
            if note.state != POSTED:
                return 0
            edits = 0
            for copy in await self.poster.store.copies(TEXT, str(note.id)):
                room = RoomRef.parse(copy.room)
                message = self.message(fresh, self.poster.language(room), late=copy.late)
                edits += await self.poster.edit_copy(copy, room, message.text)
        return edits
