"""The calendar's texts: reminders, notices of moves and cancellations, the agenda.

Times are shown in the bot's zone, written out ("tisdag 3 december kl. 18.00"), in the
language of the room the text goes to.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.core.i18n import Translator
from plugins.calendar.model import Occurrence


class Formatter:
    def __init__(self, translator: Translator, tz: ZoneInfo) -> None:
        self._t = translator
        self.tz = tz

    def local(self, when: datetime) -> datetime:
        return when.astimezone(self.tz)

    def _clock(self, when: datetime, lang: str) -> str:
        return when.strftime("%H.%M" if lang == "sv" else "%H:%M")

    def when(self, o: Occurrence, lang: str) -> str:
        start, end = self.local(o.start), self.local(o.end)
        if o.all_day:
            last = end - timedelta(days=1)
            text = self._t.date(start, lang)
            if last.date() > start.date():
                text += " – " + self._t.date(last, lang)
            return f"{text} ({self._t.t('calendar.all_day', lang)})"
        text = self._t.datetime(start, lang)
        if end > start:
            if end.date() == start.date():
                text += "–" + self._clock(end, lang)
            else:
                text += " – " + self._t.datetime(end, lang)
        return text

    def title(self, o: Occurrence, lang: str) -> str:
        return o.title or self._t.t("calendar.untitled", lang)

    def span(self, delta: timedelta, lang: str) -> str:
        """7 dagar, 1 dag, 1 timme, 30 minuter (whole units, largest first)."""
        seconds = int(delta.total_seconds())
        parts = []
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            n, seconds = divmod(seconds, size)
            if n:
                form = "one" if n == 1 else "many"
                parts.append(self._t.t(f"calendar.unit.{unit}_{form}", lang, n=n))
        return " ".join(parts) or self._t.t("calendar.unit.now", lang)

    def reminder(
        self,
        o: Occurrence,
        offset: timedelta,
        lang: str,
        *,
        late: bool,
        counts: dict[str, int],
    ) -> str:
        t = self._t
        head = t.t("calendar.reminder.head", lang, title=self.title(o, lang))
        if late:
            head = f"{t.t('schedule.late', lang)} {head}"
        lines = [head, t.t("calendar.reminder.when", lang, when=self.when(o, lang))]
        if not late:
            lines[-1] += " " + t.t("calendar.reminder.in", lang, span=self.span(offset, lang))
        if o.location:
            lines.append(t.t("calendar.reminder.where", lang, where=o.location))
        if o.excerpt:
            lines.append(o.excerpt)
        if o.url:
            lines.append(o.url)
        lines.append(t.t("calendar.reminder.rsvp", lang, id=o.id if o.id is not None else "?"))
        if counts:
            lines.append(self.counts(counts, lang))
        return "\n".join(lines)

    def counts(self, counts: dict[str, int], lang: str) -> str:
        return self._t.t("calendar.counts", lang, yes=counts.get("yes", 0), no=counts.get("no", 0))

    def moved(self, o: Occurrence, lang: str) -> str:
        return self._t.t("calendar.moved", lang, title=self.title(o, lang), when=self.when(o, lang))

    def cancelled(self, o: Occurrence, lang: str) -> str:
        return self._t.t(
            "calendar.cancelled", lang, title=self.title(o, lang), when=self.when(o, lang)
        )

    def line(self, o: Occurrence, lang: str) -> str:
        text = f"#{o.id} {self.when(o, lang)} – {self.title(o, lang)}"
        return f"{text} ({o.location})" if o.location else text

    def agenda(self, name: str, items: Sequence[Occurrence], lang: str, *, late: bool) -> str:
        head = self._t.t("calendar.agenda.head", lang, name=name)
        if late:
            head = f"{self._t.t('schedule.late', lang)} {head}"
        return "\n".join([head, *("• " + self.line(o, lang) for o in items)])
