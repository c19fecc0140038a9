"""Closing a poll, in two steps that each survive a restart.

1. *End* (at the deadline, or on `poll close`): the poll is marked as ended at that
   instant, every native post is ended (Matrix end event, Discord expiry, buttons
   disabled), and the count is scheduled a few seconds later. In between, votes cast
   before the end that are still on their way count: a platform's final voter list
   read after the expiry, a catch-up after downtime.
2. *Count*: the tally is made, only its folded form is kept, every vote is deleted and,
   for a secret poll, the ballot key and every HMAC with it; the results go to every
   room the poll was posted in. Then the traces a secret poll left elsewhere are wiped:
   the answers sent to its voters in the outbox, and the write-ahead log.

Both steps are one transaction each with keyed posts, and both are scheduler rows with
an unlimited grace: a bot that was down past a deadline closes the poll when it is back
(marked late), and a repeat posts nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from bot.core.messages import Attachment, OutgoingMessage
from bot.delivery import Target
from bot.plugin import PluginContext
from plugins.polls.chart import ChartText, render_png
from plugins.polls.formatting import Formatter
from plugins.polls.model import (
    CHECKPOINT_JOB,
    CLOSING,
    DEADLINE_JOB,
    TALLY_JOB,
    PollRecord,
    ack_prefix,
    end_key,
    job_key,
    results_key,
    start_key,
)
from plugins.polls.settings import PollsSettings
from plugins.polls.storage import Store
from plugins.polls.tally import Tally, count
from plugins.polls.traces import Traces
from plugins.polls.voting import Voting

log = logging.getLogger(__name__)

FOREVER: Final = timedelta(days=3650)
# Answers to voters still unsent are looked at again this much later.
_WIPE_RETRY: Final = timedelta(minutes=10)
# An answer to a receipt check is usually sent within this.
_WIPE_AFTER_ANSWER: Final = timedelta(minutes=1)


def verify_prefix(poll_id: int) -> str:
    return f"poll:{poll_id}:verify:"


class Closer:
    def __init__(
        self,
        ctx: PluginContext,
        store: Store,
        fmt: Formatter,
        voting: Voting,
        settings: PollsSettings,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.fmt = fmt
        self.voting = voting
        self.settings = settings
        self.traces = Traces(ctx.db)

    async def end(
        self, poll: PollRecord, at: datetime, *, by_command: bool, late: bool = False
    ) -> bool:
        """Step 1; False if the poll was not open."""
        # Only platforms that report votes late (Discord's final voter list, a Matrix
        # catch-up) need the wait; a console-only poll is counted at once, so that a
        # demo's `poll close` shows its results before the input ends.
        remote = any(room.platform != "console" for room in poll.rooms)
        settle = self.settings.settle if remote else timedelta(0)
        async with self.voting.lock(poll.id), self.store.db.transaction():
            if not await self.store.begin_close(poll.id, at):
                return False
            for room in poll.rooms:
                lang = self.ctx.associations.language_for(room)
                await self.ctx.delivery.close_poll(
                    end_key(poll.id, room),
                    Target(key=start_key(poll.id, room)),
                    room,
                    OutgoingMessage(text=self.fmt.ended(poll, lang)),
                )
            if by_command:
                await self.ctx.scheduler.cancel(job_key(DEADLINE_JOB, poll.id))
            await self.ctx.scheduler.at(
                job_key(TALLY_JOB, poll.id),
                max(at, self.ctx.clock.now()) + settle,
                TALLY_JOB,
                {"poll": poll.id, "late": late},
                grace=FOREVER,
            )
        log.info("poll %d ended; counting in %s", poll.id, settle)
        if not settle:
            # The scheduled count stays as the fallback should this one fail.
            await self.count(poll.id, late=late)
        return True

    async def count(self, poll_id: int, *, late: bool = False) -> bool:
        """Step 2; False if the poll was not waiting to be counted."""
        async with self.voting.lock(poll_id):
            poll = await self.store.get(poll_id)
            if poll is None or poll.state != CLOSING:
                return False
            tally = count(
                await self.store.ballots(poll),
                poll.answer_ids,
                poll.associations,
                self.settings.min_group,
            )
            charts = await self._charts(poll, tally)
            async with self.store.db.transaction():
                if not await self.store.finish_close(poll.id, tally):
                    return False
                if poll.secret:
                    await self.store.shuffle_receipts(poll.id)
                closed = await self.store.get(poll.id)
                assert closed is not None
                for room in poll.rooms:
                    lang = self.ctx.associations.language_for(room)
                    chart = charts.get(lang)
                    message = OutgoingMessage(
                        text=self.fmt.results(closed, tally, lang, late=late),
                        attachments=(chart,) if chart else (),
                    )
                    await self.ctx.delivery.send(results_key(poll.id, room), room, message)
        log.info(
            "poll %d counted: %d voter(s), results to %d room(s)",
            poll.id,
            tally.voters,
            len(poll.rooms),
        )
        if poll.secret:
            await self.wipe(poll.id, (ack_prefix(poll.id), verify_prefix(poll.id)))
        return True

    async def _charts(self, poll: PollRecord, tally: Tally) -> dict[str, Attachment]:
        if not self.settings.chart:
            return {}
        charts: dict[str, Attachment] = {}
        for lang in dict.fromkeys(self.ctx.associations.language_for(r) for r in poll.rooms):
            text = ChartText(
                title=self.fmt.t("polls.chart.title", lang, id=poll.id, question=poll.question),
                axis=self.fmt.t("polls.chart.axis", lang),
                labels=tuple(f"{a}. {poll.label(a)}" for a in poll.answer_ids),
                values=tuple(
                    f"{tally.counts.get(a, 0)} ({self.fmt.percent(tally.share(a), lang)})"
                    for a in poll.answer_ids
                ),
            )
            counts = [tally.counts.get(a, 0) for a in poll.answer_ids]
            try:
                png = await asyncio.to_thread(render_png, text, counts)
            except Exception:
                # The results matter more than their picture: post them without it.
                log.exception("could not draw the chart of poll %d", poll.id)
                continue
            name = self.fmt.t("polls.chart.filename", lang, id=poll.id)
            charts[lang] = Attachment(name, "image/png", png, size=len(png))
        return charts

    async def wipe(self, poll_id: int, prefixes: Sequence[str]) -> None:
        """Forget the answers sent to a secret poll's voters, then truncate the WAL. An
        answer still waiting to go out is looked at again later."""
        forgotten = 0
        for prefix in prefixes:
            forgotten += await self.traces.forget_deliveries(prefix)
        waiting = 0
        for prefix in prefixes:
            waiting += await self.traces.pending_deliveries(prefix)
        done = await self.traces.checkpoint()
        if waiting or not done:
            await self.wipe_later(poll_id, prefixes, _WIPE_RETRY)
        log.info(
            "poll %d: %d answer(s) to voters forgotten, %d waiting; log truncated: %s",
            poll_id,
            forgotten,
            waiting,
            done,
        )

    async def wipe_later(
        self, poll_id: int, prefixes: Sequence[str], after: timedelta = _WIPE_AFTER_ANSWER
    ) -> None:
        when = self.ctx.clock.now() + after
        # A key per instant: a scheduler row that ran is never run again.
        await self.ctx.scheduler.at(
            job_key(CHECKPOINT_JOB, poll_id) + f":{int(when.timestamp())}",
            when,
            CHECKPOINT_JOB,
            {"poll": poll_id, "prefixes": list(prefixes)},
            grace=FOREVER,
        )
