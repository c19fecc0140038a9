"""The updates plugin: news feeds and organisers' texts, posted to the associations.

Lifecycle: on start the configured feeds are written to the feeds table (a feed taken
out of the settings goes, with its entries) and the refresh tick and digest are armed;
when ready, every feed that is due (or new) is fetched. Commands are thin here; the work
is in refresh.py, posting.py and notes.py.
"""

from __future__ import annotations

import math
import secrets
from datetime import timedelta
from functools import reduce
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.commanding import CommandCall
from bot.core.commands import ID_PARAM, Flag, Kind, Param
from bot.core.errors import UserError
from bot.core.permissions import Level
from bot.core.refs import RoomRef
from bot.plugin import Plugin, PluginContext, command, job
from bot.scheduling import JobRun
from plugins.updates import text
from plugins.updates.formatting import Formatter
from plugins.updates.model import BY_ORGANISER, COMMAND, CONFIG, PENDING, Entry, FeedRow
from plugins.updates.notes import CANCELLED, POSTED, QUEUED, Notes, clean_text, job_key
from plugins.updates.personal import UpdatesData
from plugins.updates.posting import Poster
from plugins.updates.refresh import Outcome, Refresher
from plugins.updates.schema import migrations
from plugins.updates.settings import UpdatesSettings, refresh_cron
from plugins.updates.storage import FeedSpec, Store, StoredEntry

# A refresh missed while the bot was down is no news: the next tick fetches anyway.
_TICK_GRACE = timedelta(days=3650)
_PRUNE_EVERY = timedelta(hours=6)
_MODES = {"digest": "digest", "sammandrag": "digest", "instant": "instant", "direkt": "instant"}
_WORDS_MAX = 20
_LIST_MAX = 20


def _words(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    found = [text.one_line(w, 100) for w in raw.split(",")]
    return tuple(w for w in found if w)[:_WORDS_MAX]


class UpdatesPlugin(Plugin):
    name = "updates"
    settings_key = "updates"
    settings_type = UpdatesSettings
    settings_default = UpdatesSettings
    migrations = migrations
    locales = str(Path(__file__).parent / "locales")
    personal_data = UpdatesData()

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.settings: UpdatesSettings = ctx.settings
        self.store = Store(ctx.db)
        self.fmt = Formatter(ctx.translator, ZoneInfo(ctx.timezone_name))
        self.poster = Poster(ctx, self.settings, self.store, self.fmt)
        self.refresher = Refresher(ctx, self.settings, self.store, self.poster, ctx.fetcher)
        self.notes = Notes(ctx, self.poster)
        self._pruned: float | None = None

    async def on_start(self) -> None:
        await self._sync_configured()
        # The tick fetches whatever is due; it runs as often as the shortest interval
        # needs (the greatest common divisor of them all, in minutes).
        minutes = [int(self.settings.refresh.total_seconds()) // 60] + [
            int(f.refresh.total_seconds()) // 60 for f in self.settings.feeds if f.refresh
        ]
        tick = timedelta(minutes=reduce(math.gcd, minutes))
        await self.ctx.scheduler.cancel_every("refresh")
        await self.ctx.scheduler.every("refresh", refresh_cron(tick), "refresh", grace=_TICK_GRACE)
        await self.ctx.scheduler.every("digest", self.settings.schedule, "digest")

        async def failing() -> int:
            return await self.store.count_feeds(failing=True)

        async def paused() -> int:
            return await self.store.count_feeds(paused=True)

        metrics = self.ctx.metrics
        metrics.gauge("updates_feeds_failing", "News feeds in a failure streak now", failing)
        metrics.gauge("updates_feeds_paused", "News feeds paused", paused)
        metrics.gauge(
            "updates_entries_waiting",
            "Feed entries waiting for the digest",
            self.store.count_pending,
        )

    async def on_ready(self) -> None:
        await self.refresh_due()

    async def _sync_configured(self) -> None:
        now = self.ctx.clock.now().timestamp()
        wanted = {f.key for f in self.settings.feeds}
        known = self.ctx.associations.ids()
        async with self.ctx.db.transaction():
            for feed in await self.store.feeds():
                if feed.origin == CONFIG and feed.key not in wanted:
                    self.log.info("feed %s is no longer configured: forgotten", feed.label)
                    await self.store.delete_feed(feed.key)
            for f in self.settings.feeds:
                unknown = [a for a in f.associations if a != "*" and a not in known]
                if unknown:
                    self.log.warning("feed %s names unknown associations %s", f.url, unknown)
                spec = FeedSpec(
                    key=f.key,
                    origin=CONFIG,
                    url=f.url,
                    name=f.name,
                    associations=tuple(f.associations),
                    rooms=(),
                    mode=f.mode,
                    include=tuple(f.include),
                    exclude=tuple(f.exclude),
                    refresh=f.refresh.total_seconds() if f.refresh else None,
                )
                await self.store.put_feed(spec, added_by=None, now=now)

    async def refresh_due(self) -> list[Outcome]:
        now = self.ctx.clock.now()
        if self._pruned is None or now.timestamp() - self._pruned > _PRUNE_EVERY.total_seconds():
            self._pruned = now.timestamp()
            gone = await self.store.prune((now - self.settings.retention).timestamp())
            if gone:
                self.log.info("forgot %d entries gone from their feeds", gone)
        return await self.refresher.refresh_due(now)

    # -- jobs ---------------------------------------------------------------------------

    @job("refresh")
    async def refresh_job(self, run: JobRun) -> None:
        await self.refresh_due()

    @job("digest")
    async def digest_job(self, run: JobRun) -> None:
        await self.poster.digest(run.due_at, self.ctx.clock.now(), late=run.late)

    @job("post")
    async def post_job(self, run: JobRun) -> None:
        await self.notes.due(int(run.payload["id"]), late=run.late)

    # -- helpers ------------------------------------------------------------------------

    def _targets(self, call: CommandCall) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(associations, rooms) of `--in`, else the room the command came from."""
        chosen = call.args.get("in")
        if chosen:
            return tuple(chosen), ()
        return (), (str(call.room),)

    def _target_names(
        self, associations: tuple[str, ...], rooms: tuple[str, ...], lang: str
    ) -> str:
        if "*" in associations:
            return self.ctx.t("updates.everyone", lang)
        names = [a.name for a in self.ctx.associations.select(associations)]
        for raw in rooms:
            assoc = self.ctx.associations.of_room(RoomRef.parse(raw))
            names.append(f"{assoc.name} ({raw})" if assoc else raw)
        return ", ".join(names) or "–"

    async def _feed_of(self, call: CommandCall) -> FeedRow:
        feed = await self.store.feed_by_num(call.args["id"])
        if feed is None:
            raise UserError("updates.feed_not_found", id=call.args["id"])
        return feed

    # -- feed commands ------------------------------------------------------------------

    @command(
        "feed add",
        sv="flöde ny",
        help="updates.help.feed_add",
        params=(Param("url", sv_name="adress"),),
        flags=(
            Flag("name", Kind.STRING, sv_name="namn"),
            Flag("in", Kind.ASSOCIATIONS, sv_name="i"),
            Flag("mode", Kind.CHOICE, sv_name="läge", choices=tuple(_MODES)),
            Flag("include", Kind.STRING, sv_name="med"),
            Flag("exclude", Kind.STRING, sv_name="utan"),
        ),
        level=Level.ORGANISER,
    )
    async def feed_add(self, call: CommandCall) -> None:
        url = call.args["url"].strip()
        if not url.lower().startswith(("http://", "https://")):
            raise UserError("updates.add.not_http", value=url)
        existing = await self.store.feed_by_url(url)
        if existing is not None:
            raise UserError("updates.add.exists", num=existing.num, name=existing.label)
        associations, rooms = self._targets(call)
        name = text.one_line(call.args["name"], 100) if call.args["name"] else None
        spec = FeedSpec(
            key="c" + secrets.token_hex(5),
            origin=COMMAND,
            url=url,
            name=name or None,
            associations=associations,
            rooms=rooms,
            mode=_MODES[call.args["mode"] or "digest"],
            include=_words(call.args["include"]),
            exclude=_words(call.args["exclude"]),
            refresh=None,
        )
        now = self.ctx.clock.now()
        num = await self.store.put_feed(spec, added_by=str(call.sender.user), now=now.timestamp())
        feed = await self.store.feed_by_num(num)
        assert feed is not None
        outcome = await self.refresher.first(feed, now)
        if outcome.error is not None:
            raise UserError(
                "updates.add.failed",
                value=url,
                reason=outcome.error.reason(self.ctx.t, call.language),
            )
        feed = await self.store.feed_by_num(num) or feed
        await self.ctx.audit(call.sender.user, "feed.added", call.room, {"feed": num})
        lang = call.language
        lines = [
            call.t(
                "updates.add.done_latest" if self.settings.initial_posts else "updates.add.done",
                n=self.settings.initial_posts,
                num=num,
                name=self.fmt.source(feed),
                mode=self.fmt.mode(feed.mode, lang),
                targets=self._target_names(associations, rooms, lang),
            )
        ]
        latest = _latest(outcome)
        if latest is None:
            lines.append(call.t("updates.add.empty"))
        else:
            preview = StoredEntry(feed.key, "", latest, PENDING, 0, now.timestamp())
            lines.append(call.t("updates.add.preview"))
            lines.append(self.fmt.entry(preview, feed, lang, now))
        await call.reply("\n".join(lines))

    @command("feed list", sv="flöde lista", help="updates.help.feed_list", level=Level.ORGANISER)
    async def feed_list(self, call: CommandCall) -> None:
        feeds = await self.store.feeds()
        if not feeds:
            await call.reply(call.t("updates.list.none"))
            return
        lines = [call.t("updates.list.head", n=len(feeds))]
        for feed in feeds:
            targets = self._target_names(feed.associations, feed.rooms, call.language)
            lines.append(self.fmt.feed_line(feed, targets, call.language))
        await call.reply("\n".join(lines))

    @command(
        "feed remove",
        sv="flöde ta-bort",
        help="updates.help.feed_remove",
        params=(ID_PARAM,),
        level=Level.ORGANISER,
    )
    async def feed_remove(self, call: CommandCall) -> None:
        feed = await self._feed_of(call)
        if feed.origin == CONFIG:
            raise UserError("updates.remove.configured", id=feed.num, name=feed.label)
        async with self.ctx.db.transaction():
            await self.store.delete_feed(feed.key)
        await self.ctx.audit(call.sender.user, "feed.removed", call.room, {"feed": feed.num})
        await call.reply(call.t("updates.remove.done", id=feed.num, name=self.fmt.source(feed)))

    @command(
        "feed pause",
        sv="flöde pausa",
        help="updates.help.feed_pause",
        params=(ID_PARAM,),
        level=Level.ORGANISER,
    )
    async def feed_pause(self, call: CommandCall) -> None:
        feed = await self._feed_of(call)
        await self.store.set_feed(feed.key, paused=BY_ORGANISER)
        await self.ctx.audit(call.sender.user, "feed.paused", call.room, {"feed": feed.num})
        await call.reply(call.t("updates.pause.done", id=feed.num, name=self.fmt.source(feed)))

    @command(
        "feed resume",
        sv="flöde återuppta",
        help="updates.help.feed_resume",
        params=(ID_PARAM,),
        level=Level.ORGANISER,
    )
    async def feed_resume(self, call: CommandCall) -> None:
        feed = await self._feed_of(call)
        await self.store.set_feed(
            feed.key, paused=None, failures=0, failing_since=None, reported=0, next_fetch=None
        )
        outcome = await self.refresher.refresh(feed, self.ctx.clock.now())
        name = self.fmt.source(feed)
        if outcome.error is not None:
            reason = outcome.error.reason(self.ctx.t, call.language)
            await call.reply(
                call.t("updates.resume.failing", id=feed.num, name=name, reason=reason)
            )
        else:
            await call.reply(call.t("updates.resume.done", id=feed.num, name=name))

    # -- organisers' texts --------------------------------------------------------------

    @command(
        "update post",
        sv="uppdatering ny",
        help="updates.help.post",
        params=(Param("text"),),
        flags=(Flag("at", Kind.TIME, sv_name="tid"), Flag("in", Kind.ASSOCIATIONS, sv_name="i")),
        level=Level.ORGANISER,
    )
    async def update_post(self, call: CommandCall) -> None:
        body = clean_text(call.args["text"])
        if not body:
            raise UserError("error.empty_argument", name="text")
        due = call.args["at"]
        if due is not None and due <= self.ctx.clock.now():
            raise UserError("updates.post.past")
        associations, rooms = self._targets(call)
        note, posts = await self.notes.queue(body, associations, rooms, due, str(call.sender.user))
        await self.ctx.audit(call.sender.user, "update.posted", call.room, {"update": note.id})
        targets = self._target_names(associations, rooms, call.language)
        if due is None:
            await call.reply(call.t("updates.post.now", id=note.id, n=posts, targets=targets))
        else:
            when = self.fmt.when(due, call.language)
            await call.reply(call.t("updates.post.queued", id=note.id, when=when, targets=targets))

    @command("update list", sv="uppdatering lista", help="updates.help.list", level=Level.ORGANISER)
    async def update_list(self, call: CommandCall) -> None:
        notes = await self.notes.store.with_state(QUEUED, POSTED)
        if not notes:
            await call.reply(call.t("updates.post.none"))
            return
        lines = [call.t("updates.post.head")]
        # A text whose time passed while the bot was down, beyond the grace: the
        # scheduler told organisers, and it waits for nothing now.
        armed = {key for key, _ in await self.ctx.scheduler.pending("updates:post:")}
        now = self.ctx.clock.now().timestamp()
        for note in notes[-_LIST_MAX:]:
            if note.state == POSTED:
                state, at = "posted", note.posted_at
            elif note.due_at <= now and job_key(note.id) not in armed:
                state, at = "missed", note.due_at
            else:
                state, at = "queued", note.due_at
            lines.append(
                call.t(
                    f"updates.post.line_{state}",
                    id=note.id,
                    when=self.fmt.stamp(at, call.language),
                    targets=self._target_names(note.associations, note.rooms, call.language),
                    text=text.one_line(note.text, 80),
                )
            )
        await call.reply("\n".join(lines))

    @command(
        "update cancel",
        sv="uppdatering avbryt",
        help="updates.help.cancel",
        params=(ID_PARAM,),
        level=Level.ORGANISER,
    )
    async def update_cancel(self, call: CommandCall) -> None:
        note = await self.notes.store.get(call.args["id"])
        if note is None or note.state == CANCELLED:
            raise UserError("updates.post.not_found", id=call.args["id"])
        if note.state == POSTED:
            raise UserError("updates.post.already_posted", id=note.id)
        await self.notes.cancel(note)
        await self.ctx.audit(call.sender.user, "update.cancelled", call.room, {"update": note.id})
        await call.reply(call.t("updates.post.cancelled", id=note.id))

    @command(
        "update edit",
        sv="uppdatering ändra",
        help="updates.help.edit",
        params=(ID_PARAM, Param("text")),
        level=Level.ORGANISER,
    )
    async def update_edit(self, call: CommandCall) -> None:
        note = await self.notes.store.get(call.args["id"])
        if note is None or note.state == CANCELLED:
            raise UserError("updates.post.not_found", id=call.args["id"])
        body = clean_text(call.args["text"])
        if not body:
            raise UserError("error.empty_argument", name="text")
        edits = await self.notes.edit(note, body)
        await self.ctx.audit(call.sender.user, "update.edited", call.room, {"update": note.id})
        key = "updates.post.edited_posted" if note.state == POSTED else "updates.post.edited_queued"
        await call.reply(call.t(key, id=note.id, n=edits))


def _latest(outcome: Outcome) -> Entry | None:
    """The feed's latest entry: the newest by date when every entry has one, else the
    first (feeds list newest first)."""
    parsed = outcome.parsed
    if parsed is None or not parsed.entries:
        return None
    dated = [(e.published, e) for e in parsed.entries if e.published is not None]
    if len(dated) == len(parsed.entries):
        return max(dated, key=lambda pair: pair[0])[1]
    return parsed.entries[0]
