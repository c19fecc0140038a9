"""Posting entries and digests, and editing what was posted when an entry changes.

Every post goes through delivery with a key: an entry's copy `update:<feed>:<entry>:
<room>`, a digest `update:digest:<time>:<room>`; an edit `<key>:r<revision>` against the
copy's key (`Target(key=...)`), so delivery resolves the platform message once the copy
is out. Each post is recorded in `updates_copies` in the caller's transaction, with the
entries it shows, so that what commits is posted and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from bot.core.messages import OutgoingMessage
from bot.core.refs import RoomRef
from bot.delivery import Target
from bot.plugin import PluginContext
from plugins.updates.formatting import Formatter
from plugins.updates.model import POSTED, FeedRow
from plugins.updates.settings import UpdatesSettings
from plugins.updates.storage import Copy, Store, StoredEntry

log = logging.getLogger(__name__)

# An entry that keeps changing (a counter in its text, say) stops being edited here.
MAX_REVISIONS: Final = 10
ENTRY: Final = "entry"
DIGEST: Final = "digest"
TEXT: Final = "text"


def entry_ref(feed: str, entry_id: str) -> str:
    return f"{feed}:{entry_id}"


class Poster:
    def __init__(
        self, ctx: PluginContext, settings: UpdatesSettings, store: Store, fmt: Formatter
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.store = store
        self.fmt = fmt

    def rooms(self, associations: Sequence[str], rooms: Sequence[str]) -> list[RoomRef]:
        """The rooms of these associations, then the rooms named alone, each once."""
        found = dict.fromkeys(self.ctx.associations.rooms_for(tuple(associations)))
        for raw in rooms:
            found.setdefault(RoomRef.parse(raw))
        return list(found)

    def language(self, room: RoomRef) -> str:
        return self.ctx.associations.language_for(room)

    # -- instant ------------------------------------------------------------------------

    async def instant(self, feed: FeedRow, entries: Sequence[StoredEntry], now: datetime) -> int:
        """Post each entry into every room of the feed; inside the caller's transaction."""
        count = 0
        rooms = self.rooms(feed.associations, feed.rooms)
        for stored in entries:
            for room in rooms:
                key = f"update:{feed.key}:{stored.id}:{room}"
                text = self.fmt.entry(stored, feed, self.language(room), now)
                if await self.ctx.delivery.send(key, room, OutgoingMessage(text=text)):
                    count += 1
                await self.store.add_copy(
                    key, ENTRY, str(room), entry_ref(feed.key, stored.id), now.timestamp()
                )
        await self.store.set_state(((feed.key, s.id) for s in entries), POSTED)
        return count

    # -- digests ------------------------------------------------------------------------

    async def digest(self, due: datetime, now: datetime, *, late: bool) -> int:
        """One digest per room of the entries waiting for it; the posts, their records
        and the entries' new state in one transaction. Returns the posts queued."""
        stamp = due.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
        posts = 0
        async with self.store.db.transaction():
            pending = await self.store.pending()
            if not pending:
                return 0
            feeds = {f.key: f for f in await self.store.feeds()}
            by_room: dict[RoomRef, list[StoredEntry]] = {}
            for stored in pending:
                feed = feeds.get(stored.feed)
                if feed is None:
                    continue
                for room in self.rooms(feed.associations, feed.rooms):
                    by_room.setdefault(room, []).append(stored)
            for room, items in by_room.items():
                shown = items[: self.settings.digest_max]
                more = len(items) - len(shown)
                key = f"update:digest:{stamp}:{room}"
                text = self._digest_text(room, shown, feeds, more, due, late=late)
                if await self.ctx.delivery.send(key, room, OutgoingMessage(text=text)):
                    posts += 1
                await self.store.add_copy(
                    key, DIGEST, str(room), stamp, now.timestamp(), late=late, more=more
                )
                await self.store.add_digest_items(key, [(s.feed, s.id) for s in shown])
            # Entries of feeds that reach no room are done too: nobody waits for them.
            await self.store.set_state(((s.feed, s.id) for s in pending), POSTED)
        log.info("digest %s: %d entries, %d posts", stamp, len(pending), posts)
        return posts

    def _digest_text(
        self,
        room: RoomRef,
        items: Sequence[StoredEntry],
        feeds: dict[str, FeedRow],
        more: int,
        when: datetime,
        *,
        late: bool,
    ) -> str:
        assoc = self.ctx.associations.of_room(room)
        return self.fmt.digest(
            assoc.name if assoc else None,
            [(s, feeds.get(s.feed)) for s in items],
            more,
            self.language(room),
            when,
            late=late,
        )

    # -- edits --------------------------------------------------------------------------

    async def changed(self, feed: FeedRow, stored: StoredEntry, now: datetime) -> int:
        """An entry already posted shows something else now: edit every copy of it, the
        digests it was in too. Inside the caller's transaction; returns the edits."""
        if stored.revision > MAX_REVISIONS:
            if stored.revision == MAX_REVISIONS + 1:
                log.info("entry %s of %s keeps changing; no more edits", stored.id, feed.label)
            return 0
        edits = 0
        for copy in await self.store.copies(ENTRY, entry_ref(feed.key, stored.id)):
            room = RoomRef.parse(copy.room)
            text = self.fmt.entry(stored, feed, self.language(room), now)
            edits += await self.edit_copy(copy, room, text)
        for copy in await self.store.digests_with(feed.key, stored.id):
            room = RoomRef.parse(copy.room)
            items = await self.store.digest_items(copy.key)
            feeds = {f.key: f for f in await self.store.feeds()}
            when = _digest_time(copy)
            text = self._digest_text(room, items, feeds, copy.more, when, late=copy.late)
            edits += await self.edit_copy(copy, room, text)
        return edits

    async def edit_copy(self, copy: Copy, room: RoomRef, text: str) -> int:
        """Queue an edit of one copy (delivery resolves its message once it is out)."""
        revision = await self.store.revise_copy(copy.key)
        key = f"{copy.key}:r{revision}"
        message = OutgoingMessage(text=text)
        return int(await self.ctx.delivery.edit(key, Target(key=copy.key), room, message))


def _digest_time(copy: Copy) -> datetime:
    try:
        return datetime.strptime(copy.ref, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(copy.posted_at, UTC)
