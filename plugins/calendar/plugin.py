"""The calendar plugin: reminders before events, the weekly agenda, and `event` commands.

Lifecycle: on start the refresh and agenda wake-ups are armed (the scheduler's table
holds the reminders from earlier runs); when the bot is ready the feeds are fetched once.
Commands, answers and jobs are thin here; the work is in the modules beside this one.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.commanding import CommandCall
from bot.core.commands import ID_PARAM, Flag, Kind, Param
from bot.core.errors import UserError
from bot.core.events import ButtonPressed, ReactionAdded, ReactionRemoved
from bot.core.messages import OutgoingMessage
from bot.core.permissions import Level
from bot.plugin import Plugin, PluginContext, command, job, on
from bot.scheduling import JobRun
from plugins.calendar.arming import Reminders
from plugins.calendar.feeds import FeedRefresher
from plugins.calendar.formatting import Formatter
from plugins.calendar.model import (
    JOB_PREFIX,
    MANUAL,
    Occurrence,
    occ_id,
    offset_label,
    parse_job_key,
)
from plugins.calendar.parsing import clean
from plugins.calendar.personal import CalendarData
from plugins.calendar.rsvp import (
    Answers,
    answer_of_button,
    answer_of_emoji,
    answer_of_word,
)
from plugins.calendar.settings import CalendarSettings, all_day_clock, refresh_cron
from plugins.calendar.storage import Store, migrations

_DEFAULT_LENGTH = timedelta(hours=1)
# An event lasts a minute to a year; anything longer is a typo.
_SHORTEST = timedelta(minutes=1)
_LONGEST = timedelta(days=366)
_AGENDA_DAYS = 7
_LIST_DAYS = 14
_LIST_MAX = 30
# `event list --days`: named in its errors too (the horizon check below).
DAYS = Flag("days", Kind.INTEGER, sv_name="dagar", minimum=1)
_REFRESH_GRACE = timedelta(days=3650)


def reminder_of(run: JobRun) -> tuple[str, str, str, timedelta] | None:
    """(source, uid, occ, offset) of a reminder row: from its key, or from the payload
    that rows armed by earlier versions carry."""
    p = run.payload
    if {"source", "uid", "occ", "offset"} <= p.keys():
        return str(p["source"]), str(p["uid"]), str(p["occ"]), timedelta(seconds=int(p["offset"]))
    return parse_job_key(run.key)


class CalendarPlugin(Plugin):
    name = "calendar"
    settings_key = "calendar"
    settings_type = CalendarSettings
    settings_default = CalendarSettings
    migrations = migrations
    locales = str(Path(__file__).parent / "locales")
    personal_data = CalendarData()

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.settings: CalendarSettings = ctx.settings
        self.tz = ZoneInfo(ctx.timezone_name)
        self.store = Store(ctx.db)
        self.fmt = Formatter(ctx.translator, self.tz)
        self.reminders = Reminders(
            ctx,
            self.store,
            self.fmt,
            list(self.settings.reminders),
            all_day_clock(self.settings.all_day_time),
        )
        self.answers = Answers(self.store, ctx.delivery, ctx.people, ctx.clock)
        self._unlisten: Callable[[], None] | None = None
        self.feeds: FeedRefresher | None = None
        self._rearm = True  # until the stored spec says the reminders are armed for these

    async def on_start(self) -> None:
        # Answers are kept per person: when accounts are linked, theirs merge.
        self._unlisten = self.ctx.people.on_rename(self.answers.renamed)
        self.feeds = FeedRefresher(
            self.ctx, self.settings, self.store, self.reminders, self.ctx.fetcher
        )
        await self.feeds.prepare()
        # Reminders of offsets no longer configured must not fire. With the settings the
        # reminders were last armed for, there are none (and a national calendar's
        # 100,000 rows need not be read).
        self._rearm = await self.store.armed_for() != self.reminders.spec
        if self._rearm:
            wanted = {offset_label(o) for o in self.settings.reminders}
            pending = await self.ctx.scheduler.pending(JOB_PREFIX)
            await self.ctx.scheduler.cancel_many(
                [key for key, _due in pending if key.rsplit(":", 1)[1] not in wanted]
            )
        # Reminders due at one instant are posted together (one transaction for all).
        self.ctx.scheduler.batch("reminder", self.reminder_batch)
        # A refresh missed while down is not worth a report, nor a late run: start its
        # crontab afresh (the first refresh runs when ready); a late one (a suspended
        # process) simply runs.
        await self.ctx.scheduler.cancel_every("refresh")
        await self.ctx.scheduler.every(
            "refresh",
            refresh_cron(self.settings.refresh),
            "refresh",
            grace=_REFRESH_GRACE,
        )
        await self.ctx.scheduler.every("digest", self.settings.digest, "digest")

        async def armed() -> int:
            return await self.ctx.scheduler.count_pending(JOB_PREFIX)

        metrics = self.ctx.metrics
        metrics.gauge("calendar_reminders_armed", "Reminders waiting for their time", armed)
        metrics.gauge(
            "calendar_feeds_failing", "Calendar feeds failing now", self.store.failing_feeds
        )

    async def on_ready(self) -> None:
        assert self.feeds is not None
        await self.feeds.forget_removed_feeds()
        now = self.ctx.clock.now()
        if self._rearm:
            # Offsets (or the zone) changed since the last run: arm what is still ahead.
            # Otherwise every event is armed already: `event add` stores and arms it in
            # one transaction, as a feed's refresh does.
            manual = await self.store.load_source(MANUAL, now)
            await self.reminders.arm_many([o for o in manual if not o.cancelled], now)
            await self.store.save_armed_for(self.reminders.spec)
            self._rearm = False
        await self.refresh_feeds()

    async def on_stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self.feeds is not None:
            await self.feeds.close()

    async def refresh_feeds(self) -> None:
        assert self.feeds is not None
        await self.feeds.refresh_all()

    # -- jobs ---------------------------------------------------------------------------

    @job("refresh")
    async def refresh_job(self, run: JobRun) -> None:
        await self.refresh_feeds()

    @job("reminder")
    async def reminder_job(self, run: JobRun) -> None:
        await self.reminder_batch([run])

    async def reminder_batch(self, runs: list[JobRun]) -> None:
        """The reminders due at one wake-up: their events read in a few statements, and
        every post queued in one transaction, in the order the rows fell due."""
        wanted = [(run, reminder_of(run)) for run in runs]
        found = await self.store.find_many(named[:3] for _run, named in wanted if named)
        items = []
        for run, named in wanted:
            o = found.get(named[:3]) if named else None
            if o is None or named is None:
                self.log.info("reminder %s: the event is gone; nothing to post", run.key)
                continue
            items.append((o, named[3], run.late))
        await self.reminders.post_many(items)

    @job("digest")
    async def digest_job(self, run: JobRun) -> None:
        start = run.fired_at
        items = await self.store.between(start, start + timedelta(days=_AGENDA_DAYS))
        stamp = run.due_at.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
        for assoc in self.ctx.associations.all():
            mine = [o for o in items if o.targets(assoc.id)]
            if not mine:
                continue
            for room in assoc.rooms:
                lang = self.ctx.associations.language_for(room)
                text = self.fmt.agenda(assoc.name, mine, lang, late=run.late)
                await self.ctx.delivery.send(
                    f"agenda:{stamp}:{room}", room, OutgoingMessage(text=text)
                )

    # -- answers by reaction and button -------------------------------------------------

    @on(ReactionAdded)
    async def on_reaction(self, event: ReactionAdded) -> None:
        answer = answer_of_emoji(event.key)
        if answer is None:
            return
        o = await self.answers.reminder_of(event.target)
        if o is not None and not o.cancelled:
            await self.answers.record(o, event.sender.user, answer)

    @on(ReactionRemoved)
    async def on_reaction_removed(self, event: ReactionRemoved) -> None:
        answer = answer_of_emoji(event.key)
        if answer is None:
            return
        o = await self.answers.reminder_of(event.target)
        if o is not None:
            await self.answers.withdraw(o, event.sender.user, answer)

    @on(ButtonPressed)
    async def on_button(self, event: ButtonPressed) -> None:
        answer = answer_of_button(event.custom_id)
        if answer is None:
            return
        o = await self.answers.reminder_of(event.message)
        if o is not None and not o.cancelled:
            await self.answers.record(o, event.sender.user, answer)

    # -- commands -----------------------------------------------------------------------

    @command(
        "event add",
        sv="händelse ny",
        help="calendar.help.add",
        params=(Param("title", sv_name="titel"), Param("time", Kind.TIME, sv_name="tid")),
        flags=(
            Flag("length", Kind.DURATION, sv_name="längd", minimum=_SHORTEST, maximum=_LONGEST),
            Flag("where", Kind.STRING, sv_name="plats"),
            Flag("in", Kind.ASSOCIATIONS, sv_name="i"),
        ),
        level=Level.ORGANISER,
    )
    async def add(self, call: CommandCall) -> None:
        now = self.ctx.clock.now()
        start = call.args["time"].astimezone(UTC)
        if start <= now:
            await call.reply(call.t("calendar.add.past"), ephemeral=True)
            return
        targets = call.args["in"]
        if targets is None:
            assoc = self.ctx.associations.of_room(call.room)
            if assoc is None:
                await call.reply(call.t("calendar.add.no_association"), ephemeral=True)
                return
            targets = (assoc.id,)
        title = clean(call.args["title"], 200)
        o = Occurrence(
            source=MANUAL,
            uid=f"{secrets.token_hex(8)}@samverkan",
            occ=occ_id(start, self.tz),
            start=start,
            end=start + (call.args["length"] or _DEFAULT_LENGTH),
            all_day=False,
            title=title,
            location=clean(call.args["where"] or "", 200),
            associations=tuple(targets),
            single=True,
        )
        async with self.store.db.transaction():
            o = o.with_id(await self.store.insert(o))
            await self.reminders.arm(o, now)
        detail = {"event": o.id, "in": list(o.associations)}
        await self.ctx.audit(call.sender.user, "event.added", call.room, detail)
        names = ", ".join(a.name for a in self.ctx.associations.select(o.associations))
        await call.reply(
            call.t(
                "calendar.add.done",
                id=o.id,
                title=title,
                when=self.fmt.when(o, call.language),
                where=names or "–",
            )
        )

    @command(
        "event list",
        sv="händelse lista",
        help="calendar.help.list",
        flags=(
            DAYS,
            Flag("who", sv_name="vilka"),
        ),
    )
    async def list_events(self, call: CommandCall) -> None:
        if call.args["who"] and not call.is_organiser:
            await call.reply(call.t("calendar.list.who_organisers"), ephemeral=True)
            return
        # Events are known only as far as the horizon: a longer list is refused with the
        # range rather than quietly cut.
        horizon = max(1, self.settings.horizon.days)
        days = call.args["days"]
        if days is not None and days > horizon:
            raise UserError("error.out_of_range", name=DAYS, value=str(days), low=1, high=horizon)
        days = days or min(_LIST_DAYS, horizon)
        now = self.ctx.clock.now()
        items = await self.store.between(now, now + timedelta(days=days))
        assoc = self.ctx.associations.of_room(call.room)
        if assoc is not None:
            items = [o for o in items if o.targets(assoc.id)]
        if not items:
            await call.reply(call.t("calendar.list.empty", days=days))
            return
        lines = [call.t("calendar.list.head", days=days)]
        for o in items[:_LIST_MAX]:
            line = self.fmt.line(o, call.language)
            counts = await self.store.counts(o.uid, o.occ)
            if counts:
                line += " · " + self.fmt.counts(counts, call.language)
            lines.append(line)
            if call.args["who"]:
                who = await self.answers.who(o)
                for answer in ("yes", "no"):
                    people = [u for u, a in who if a == answer]
                    if people:
                        label = call.t(f"calendar.answer.{answer}")
                        lines.append(f"    {label}: {', '.join(people)}")
        if len(items) > _LIST_MAX:
            lines.append(call.t("calendar.list.more", n=len(items) - _LIST_MAX))
        await call.reply("\n".join(lines), ephemeral=bool(call.args["who"]))

    @command(
        "event remove",
        sv="händelse ta-bort",
        help="calendar.help.remove",
        params=(ID_PARAM,),
        level=Level.ORGANISER,
    )
    async def remove(self, call: CommandCall) -> None:
        o = await self.store.get(call.args["id"])
        if o is None:
            await call.reply(call.t("calendar.not_found", id=call.args["id"]), ephemeral=True)
            return
        if o.source != MANUAL:
            await call.reply(call.t("calendar.remove.from_feed", id=o.id), ephemeral=True)
            return
        assert o.id is not None
        async with self.store.db.transaction():
            await self.reminders.drop(o, self.ctx.clock.now())
            await self.store.delete(o.id)
        await self.ctx.audit(call.sender.user, "event.removed", call.room, {"event": o.id})
        await call.reply(
            call.t("calendar.remove.done", id=o.id, title=self.fmt.title(o, call.language))
        )

    @command(
        "event rsvp",
        sv="händelse svara",
        help="calendar.help.rsvp",
        params=(
            ID_PARAM,
            Param("answer", Kind.CHOICE, sv_name="svar", choices=("yes", "no", "ja", "nej")),
        ),
    )
    async def rsvp(self, call: CommandCall) -> None:
        o = await self.store.get(call.args["id"])
        if o is None or o.cancelled or o.end <= self.ctx.clock.now():
            await call.reply(call.t("calendar.not_found", id=call.args["id"]), ephemeral=True)
            return
        answer = answer_of_word(call.args["answer"]) or "yes"
        await self.answers.record(o, call.sender.user, answer)
        counts = await self.store.counts(o.uid, o.occ)
        await call.reply(
            call.t(
                f"calendar.rsvp.{answer}",
                title=self.fmt.title(o, call.language),
                when=self.fmt.when(o, call.language),
            )
            + " "
            + self.fmt.counts(counts, call.language),
            ephemeral=True,
        )
