"""A person's rows in the updates: the texts they wrote and the feeds they added. The
posts and feeds stay (they are the associations'); erasure forgets who made them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.privacy import PersonalData, Subject


def _iso(value: Any) -> str | None:
    return datetime.fromtimestamp(float(value), UTC).isoformat() if value is not None else None


class UpdatesData(PersonalData):
    async def export(self, who: Subject) -> dict[str, Any]:
        accounts = who.account_names
        posts = await who.db.fetchall(
            "SELECT id, text, state, created_at, posted_at FROM updates_posts"
            f" WHERE author IN ({who.marks(accounts)}) ORDER BY id",
            accounts,
        )
        feeds = await who.db.fetchall(
            "SELECT num, name, title, added_at FROM updates_feeds"
            f" WHERE added_by IN ({who.marks(accounts)}) ORDER BY num",
            accounts,
        )
        found: dict[str, Any] = {}
        if posts:
            found["posts"] = [
                {
                    "id": int(pid),
                    "text": str(text),
                    "state": str(state),
                    "created_at": _iso(created),
                    "posted_at": _iso(posted),
                }
                for pid, text, state, created, posted in posts
            ]
        if feeds:
            found["feeds"] = [
                {"id": int(num), "name": name, "title": title, "added_at": _iso(added)}
                for num, name, title, added in feeds
            ]
        return found

    async def erase(self, who: Subject) -> int:
        accounts = who.account_names
        count = await who.db.execute(
            f"UPDATE updates_posts SET author = '' WHERE author IN ({who.marks(accounts)})",
            accounts,
        )
        count += await who.db.execute(
            f"UPDATE updates_feeds SET added_by = NULL WHERE added_by IN ({who.marks(accounts)})",
            accounts,
        )
        return count
