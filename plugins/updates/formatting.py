"""The updates plugin's texts: an entry's post, a digest, a preview, the feed list.

Dates are the bot's zone written out in the room's language ("tisdag 3 december
kl. 18.00"). A feed's date is shown only when it is plausible: a date in the future or
decades ago says nothing, and the time the bot first saw the entry is shown instead.
Everything from a feed was made safe by `text` when parsed (titles are escaped here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.core.i18n import Translator
from plugins.updates import text
from plugins.updates.model import FeedRow
from plugins.updates.storage import StoredEntry

_FUTURE_SLACK = timedelta(days=1)
_PAST_LIMIT = timedelta(days=3650)


class Formatter:
    def __init__(self, translator: Translator, tz: ZoneInfo) -> None:
        self._t = translator
        self.tz = tz

    def t(self, key: str, lang: str, /, **params: object) -> str:
        return self._t.t(key, lang, **params)

    def when(self, at: datetime, lang: str) -> str:
        return self._t.datetime(at.astimezone(self.tz), lang)

    def stamp(self, ts: float | None, lang: str) -> str:
        if ts is None:
            return self.t("updates.never", lang)
        return self.when(datetime.fromtimestamp(ts, UTC), lang)

    def entry_date(self, stored: StoredEntry, now: datetime) -> datetime:
        published = stored.entry.published
        if published is not None and now - _PAST_LIMIT < published <= now + _FUTURE_SLACK:
            return published
        return datetime.fromtimestamp(stored.seen_at, UTC)

    def source(self, feed: FeedRow | None) -> str:
        return text.escape(text.one_line(feed.label, 100)) if feed else "?"

    def title(self, stored: StoredEntry, lang: str) -> str:
        title = stored.entry.title or self.t("updates.untitled", lang)
        return text.link(title, stored.entry.link)

    def entry(self, stored: StoredEntry, feed: FeedRow | None, lang: str, now: datetime) -> str:
        """One entry as its own post (instant mode, and the preview of `feed add`)."""
        lines = [self.t("updates.entry.head", lang, title=self.title(stored, lang))]
        if stored.entry.summary:
            lines.append(stored.entry.summary)
        lines.append(
            self.t(
                "updates.entry.source",
                lang,
                source=self.source(feed),
                when=self.when(self.entry_date(stored, now), lang),
            )
        )
        return "\n".join(lines)

    def digest(
        self,
        heading: str | None,
        items: Sequence[tuple[StoredEntry, FeedRow | None]],
        more: int,
        lang: str,
        now: datetime,
        *,
        late: bool,
    ) -> str:
        if heading:
            head = self.t("updates.digest.head_for", lang, name=text.escape(heading))
        else:
            head = self.t("updates.digest.head", lang)
        head += " " + self._t.date(now.astimezone(self.tz), lang)
        if late:
            head = f"{self.t('schedule.late', lang)} {head}"
        lines = [head]
        for stored, feed in items:
            date = self._t.date(self.entry_date(stored, now).astimezone(self.tz), lang)
            lines.append(f"• {self.title(stored, lang)} — {self.source(feed)}, {date}")
            lines.extend("  " + line for line in stored.entry.summary.split("\n") if line)
        if more > 0:
            lines.append(self.t("updates.digest.more", lang, n=more))
        return "\n".join(lines)

    def reason(self, raw: str | None, lang: str) -> str:
        """A stored failure reason ([key, params] as JSON) in `lang`."""
        if not raw:
            return "–"
        try:
            key, params = json.loads(raw)
            return self.t(str(key), lang, **dict(params))
        except (ValueError, TypeError):
            return "–"

    def mode(self, mode: str, lang: str) -> str:
        return self.t(f"updates.mode.{mode}", lang)

    def feed_line(self, feed: FeedRow, targets: str, lang: str) -> str:
        head = self.t(
            "updates.list.feed",
            lang,
            num=feed.num,
            name=self.source(feed),
            mode=self.mode(feed.mode, lang),
            targets=targets,
        )
        if feed.paused:
            head += " " + self.t(f"updates.list.paused_{feed.paused}", lang)
        state = [self.t("updates.list.success", lang, when=self.stamp(feed.last_success, lang))]
        if feed.last_error:
            state.append(
                self.t(
                    "updates.list.error",
                    lang,
                    when=self.stamp(feed.last_error_at, lang),
                    reason=self.reason(feed.last_error, lang),
                )
            )
        if not feed.paused:
            state.append(self.t("updates.list.next", lang, when=self.stamp(feed.next_fetch, lang)))
        return head + "\n   " + " · ".join(state)
