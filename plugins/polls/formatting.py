"""Every text the polls post or answer, in the reader's language, and the CSV export.

A vote's confirmation and a receipt check are the only texts that name a choice, and
they go to the voter alone. Results name counts, never people.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.core.associations import Directory
from bot.core.i18n import Translator
from bot.core.refs import RoomRef
from plugins.polls.model import PollRecord
from plugins.polls.tally import OTHERS, Tally

# What a spreadsheet would run as a formula when a cell starts with it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Formatter:
    def __init__(self, translator: Translator, tz: ZoneInfo, directory: Directory) -> None:
        self._t = translator
        self.tz = tz
        self._directory = directory

    def t(self, key: str, lang: str, /, **params: object) -> str:
        return self._t.t(key, lang, **params)

    def when(self, at: datetime, lang: str) -> str:
        return self._t.datetime(at.astimezone(self.tz), lang)

    def association(self, association: str, lang: str) -> str:
        if association == OTHERS:
            return self.t("polls.results.others", lang)
        found = self._directory.get(association)
        return found.name if found else association

    def choice(self, poll: PollRecord, answers: Sequence[str]) -> str:
        return ", ".join(f"{a}. {poll.label(a)}" for a in answers)

    def percent(self, share: float, lang: str) -> str:
        return self.t("polls.results.percent", lang, n=round(share * 100))

    # -- posts ----------------------------------------------------------------------

    def post(self, poll: PollRecord, room: RoomRef, lang: str) -> str:
        """The text of the poll's post (the platform shows the answers itself)."""
        head = "polls.post.head_secret" if poll.secret else "polls.post.head"
        lines = [self.t(head, lang, id=poll.id, question=poll.question)]
        if poll.secret:
            lines.append(self.t(f"polls.post.how_secret.{room.platform}", lang, id=poll.id))
            lines.append(self.t("polls.post.receipt", lang, id=poll.id))
        else:
            lines.append(self.t("polls.post.how", lang, id=poll.id))
        if poll.max_selections > 1:
            lines.append(self.t("polls.post.multi", lang, n=poll.max_selections, id=poll.id))
        lines.append(self.t("polls.post.closes", lang, when=self.when(poll.closes_at, lang)))
        return "\n".join(lines)

    def ended(self, poll: PollRecord, lang: str) -> str:
        return self.t("polls.post.ended", lang, id=poll.id, question=poll.question)

    def results(self, poll: PollRecord, tally: Tally, lang: str, *, late: bool = False) -> str:
        if poll.state == "closed" or poll.closed_at is not None:
            lines = [self.t("polls.results.head", lang, id=poll.id, question=poll.question)]
        else:
            lines = [
                self.t(
                    "polls.results.head_open",
                    lang,
                    id=poll.id,
                    question=poll.question,
                    when=self.when(poll.closes_at, lang),
                )
            ]
        if late:
            lines[0] += " " + self.t("schedule.late", lang)
        for answer in poll.answer_ids:
            lines.append(
                self.t(
                    "polls.results.line",
                    lang,
                    n=answer,
                    answer=poll.label(answer),
                    count=tally.counts.get(answer, 0),
                    percent=self.percent(tally.share(answer), lang),
                )
            )
        lines.append(self.t("polls.results.turnout", lang, voters=tally.voters))
        if poll.max_selections > 1:
            lines.append(self.t("polls.results.multi", lang, n=poll.max_selections))
        if tally.groups:
            lines.append(self.t("polls.results.breakdown", lang))
            for group in tally.groups:
                counts = " · ".join(
                    f"{poll.label(a)} {group.counts.get(a, 0)}" for a in poll.answer_ids
                )
                lines.append(
                    self.t(
                        "polls.results.group",
                        lang,
                        name=self.association(group.association, lang),
                        voters=group.voters,
                        counts=counts,
                    )
                )
        elif tally.voters:
            lines.append(self.t("polls.results.no_breakdown", lang))
        return "\n".join(lines)

    def list_line(self, poll: PollRecord, voters: int, lang: str) -> str:
        key = "polls.list.line_secret" if poll.secret else "polls.list.line"
        return self.t(
            key,
            lang,
            id=poll.id,
            question=poll.question,
            when=self.when(poll.closes_at, lang),
            voters=voters,
        )

    def reminder(self, poll: PollRecord, voters: Mapping[str, int], lang: str) -> str:
        per = ", ".join(
            f"{self.association(a, lang)} {voters.get(a, 0)}" for a in poll.associations
        )
        return "\n".join(
            [
                self.t(
                    "polls.remind.head",
                    lang,
                    id=poll.id,
                    question=poll.question,
                    when=self.when(poll.closes_at, lang),
                ),
                self.t("polls.remind.voters", lang, voters=sum(voters.values()), per=per or "–"),
                self.t("polls.post.how", lang, id=poll.id)
                if not poll.secret
                else self.t("polls.remind.how_secret", lang, id=poll.id),
            ]
        )


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_csv(poll: PollRecord, tally: Tally, fmt: Formatter, lang: str) -> bytes:
    """The tally as CSV: one row per group and answer, the whole poll first. Only the
    folded breakdown is in it, as in the results post: never a voter."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [fmt.t(f"polls.csv.{c}", lang) for c in ("group", "voters", "n", "answer", "count")]
        + [fmt.t("polls.csv.share", lang)]
    )
    everyone = fmt.t("polls.csv.all", lang)
    rows: list[tuple[str, int, Mapping[str, int]]] = [(everyone, tally.voters, tally.counts)]
    rows += [(fmt.association(g.association, lang), g.voters, g.counts) for g in tally.groups]
    for name, voters, counts in rows:
        for answer in poll.answer_ids:
            n = counts.get(answer, 0)
            share = f"{n / voters:.4f}" if voters else "0"
            writer.writerow([_cell(name), voters, answer, _cell(poll.label(answer)), n, share])
    return out.getvalue().encode("utf-8")
