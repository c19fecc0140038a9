"""The polls plugin: `poll` commands, votes from every platform, deadlines and results.

One poll is posted into the rooms of every target association (`poll:<id>:start:<room>`)
and tallied once. Votes arrive as native votes (`PollVoteReceived`, a Discord voter
list as `PollVotesSnapshot`, a button press) or as `vote` commands; each is mapped to
its poll through the delivery key of the post it was cast on. Commands and handlers are
thin here; the work is in voting.py, closing.py and creating.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.commanding import CommandCall
from bot.core.commands import Flag, Kind, Param
from bot.core.errors import UserError
from bot.core.events import ButtonPressed, PollVoteReceived, PollVotesSnapshot
from bot.core.messages import Attachment, OutgoingMessage, Poll, PollAnswer
from bot.core.permissions import Level
from bot.core.refs import MessageRef
from bot.delivery import Target
from bot.plugin import Plugin, PluginContext, command, job, on
from bot.scheduling import JobRun
from plugins.polls.closing import FOREVER, Closer, verify_prefix
from plugins.polls.creating import read
from plugins.polls.formatting import Formatter, export_csv
from plugins.polls.model import (
    CHECKPOINT_JOB,
    CLOSED,
    CLOSING,
    DEADLINE_JOB,
    MAX_ID,
    OPEN,
    TALLY_JOB,
    PollRecord,
    ack_key,
    job_key,
    remind_key,
    start_key,
)
from plugins.polls.personal import PollsData
from plugins.polls.schema import migrations
from plugins.polls.settings import PollsSettings
from plugins.polls.storage import Store
from plugins.polls.tally import Tally, count
from plugins.polls.voting import Reply, Voting, receipt_hash

BUTTON_PREFIX = "vote:"  # what the Discord adapter puts on a poll's buttons


class PollsPlugin(Plugin):
    name = "polls"
    settings_key = "polls"
    settings_type = PollsSettings
    settings_default = PollsSettings
    migrations = migrations
    locales = str(Path(__file__).parent / "locales")
    personal_data = PollsData()

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.settings: PollsSettings = ctx.settings
        self.store = Store(ctx.db)
        self.fmt = Formatter(ctx.translator, ZoneInfo(ctx.timezone_name), ctx.associations)
        self.voting = Voting(ctx, self.store, self.fmt)
        self.closer = Closer(ctx, self.store, self.fmt, self.voting, self.settings)
        self._unlisten: Callable[[], None] | None = None

    async def on_start(self) -> None:
        await self.closer.traces.secure_delete()
        self._unlisten = self.ctx.people.on_rename(self.voting.renamed)

        async def open_polls() -> int:
            return len(await self.store.in_states(OPEN))

        self.ctx.metrics.gauge("polls_open", "Polls open for votes now", open_polls)

    async def on_stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    async def on_ready(self) -> None:
        """Whatever the scheduler could not do (a job that failed) is done now: an open
        poll past its deadline ends, an ended one is counted."""
        pending = {key for key, _ in await self.ctx.scheduler.pending("polls:")}
        now = self.ctx.clock.now()
        for poll in await self.store.in_states(OPEN):
            key = job_key(DEADLINE_JOB, poll.id)
            if key in pending:
                continue
            if poll.closes_at <= now:
                await self.closer.end(poll, poll.closes_at, by_command=False, late=True)
            else:
                await self._arm(poll)
        for poll in await self.store.in_states(CLOSING):
            if job_key(TALLY_JOB, poll.id) not in pending:
                await self.closer.count(poll.id, late=True)

    async def _arm(self, poll: PollRecord) -> None:
        await self.ctx.scheduler.at(
            job_key(DEADLINE_JOB, poll.id),
            poll.closes_at,
            DEADLINE_JOB,
            {"poll": poll.id},
            grace=FOREVER,
        )

    # -- jobs ---------------------------------------------------------------------------

    @job(DEADLINE_JOB)
    async def deadline_job(self, run: JobRun) -> None:
        poll = await self.store.get(int(run.payload["poll"]))
        if poll is not None and poll.state == OPEN:
            await self.closer.end(poll, poll.closes_at, by_command=False, late=run.late)

    @job(TALLY_JOB)
    async def tally_job(self, run: JobRun) -> None:
        late = run.late or bool(run.payload.get("late"))
        await self.closer.count(int(run.payload["poll"]), late=late)

    @job(CHECKPOINT_JOB)
    async def checkpoint_job(self, run: JobRun) -> None:
        prefixes = [str(p) for p in run.payload.get("prefixes", [])]
        await self.closer.wipe(int(run.payload["poll"]), prefixes)

    # -- native votes -------------------------------------------------------------------

    @on(PollVoteReceived)
    async def on_vote(self, event: PollVoteReceived) -> None:
        await self._native(
            event.poll, event, event.answers, toggle=event.toggle, origin=event.origin
        )

    @on(ButtonPressed)
    async def on_button(self, event: ButtonPressed) -> None:
        # A poll button the adapter did not recognise as such: one answer, toggled.
        if event.custom_id.startswith(BUTTON_PREFIX):
            answer = event.custom_id[len(BUTTON_PREFIX) :]
            await self._native(event.message, event, (answer,), toggle=True, origin=event.origin)

    @on(PollVotesSnapshot)
    async def on_snapshot(self, event: PollVotesSnapshot) -> None:
        await self.voting.reconcile(event)

    async def _native(
        self,
        post: MessageRef,
        event: PollVoteReceived | ButtonPressed,
        answers: tuple[str, ...],
        *,
        toggle: bool,
        origin: MessageRef | None,
    ) -> None:
        found = await self.voting.poll_of_post(post)
        if found is None or found[1] != event.room:
            return
        poll = found[0]
        # With an origin (a Discord interaction) the answer reaches the voter alone;
        # without one (a Matrix poll response) a counted vote shows on the poll itself.
        reply = Reply(
            key=ack_key(poll.id, event.room.platform, event.event_id),
            room=event.room,
            reply_to=origin,
            ephemeral=True,
            language=self.ctx.associations.language_for(event.room),
            confirm=origin is not None,
        )
        if poll.secret and origin is None:
            # A room event anyone in the room can read: never a secret ballot.
            await self.voting.tell(
                reply, self.fmt.t("polls.vote.secret_native", reply.language, id=poll.id)
            )
            return
        try:
            await self.voting.cast(
                poll.id,
                user=event.sender.user,
                room=event.room,
                answers=answers,
                at=event.at,
                source=str(event.room),
                reply=reply,
                toggle=toggle,
            )
        except UserError as err:
            if origin is None:
                self.log.info("poll %d: a native vote was refused (%s)", poll.id, err.key)
                return
            await self.voting.tell(reply, self._error(err, reply.language))

    def _error(self, err: UserError, language: str) -> str:
        return self.ctx.t(err.key, language, **err.params_in(language))

    # -- commands -----------------------------------------------------------------------

    async def _poll(self, poll_id: int) -> PollRecord:
        poll = await self.store.get(poll_id) if 1 <= poll_id <= MAX_ID else None
        if poll is None:
            raise UserError("polls.not_found", id=poll_id)
        return poll

    @command(
        "poll new",
        sv="omröstning ny",
        help="polls.help.new",
        params=(
            Param("question", sv_name="fråga"),
            Param("answers", sv_name="svar", variadic=True),
        ),
        flags=(
            Flag("multi", Kind.INTEGER, sv_name="flera"),
            Flag("secret", sv_name="hemlig"),
            Flag("for", Kind.DURATION, sv_name="längd"),
            Flag("until", Kind.TIME, sv_name="till"),
            Flag("in", Kind.ASSOCIATIONS, sv_name="i"),
        ),
        level=Level.ORGANISER,
    )
    async def new(self, call: CommandCall) -> None:
        now = self.ctx.clock.now()
        spec = read(
            call.args,
            now=now,
            default_duration=self.settings.default_duration,
            room=call.room,
            directory=self.ctx.associations,
        )
        creator = await self.ctx.people.person_of(call.sender.user)
        native = Poll(
            question=spec.question,
            answers=tuple(PollAnswer(str(n), a) for n, a in enumerate(spec.answers, 1)),
            max_selections=spec.max_selections,
            secret=spec.secret,
            hours=spec.hours(now),
        )
        async with self.store.db.transaction():
            poll_id = await self.store.create(
                question=spec.question,
                answers=spec.answers,
                max_selections=spec.max_selections,
                secret=spec.secret,
                creator=creator,
                now=now,
                closes_at=spec.closes_at,
                associations=spec.associations,
                rooms=spec.rooms,
            )
            poll = await self._poll(poll_id)
            for room in poll.rooms:
                text = self.fmt.post(poll, room, self.ctx.associations.language_for(room))
                message = OutgoingMessage(text=text, poll=native)
                await self.ctx.delivery.send(start_key(poll.id, room), room, message)
            await self._arm(poll)
        self.log.info("poll %d created for %d room(s)", poll.id, len(poll.rooms))
        await self.ctx.audit(
            call.sender.user,
            "poll.created",
            call.room,
            {"poll": poll.id, "in": list(poll.associations)},
        )
        names = ", ".join(self.fmt.association(a, call.language) for a in poll.associations)
        await call.reply(
            call.t(
                "polls.new.done",
                id=poll.id,
                rooms=len(poll.rooms),
                where=names,
                when=self.fmt.when(poll.closes_at, call.language),
            )
        )

    @command(
        "poll close",
        sv="omröstning stäng",
        help="polls.help.close",
        params=(Param("id", Kind.INTEGER),),
    )
    async def close(self, call: CommandCall) -> None:
        poll = await self._poll(call.args["id"])
        if poll.state != OPEN:
            raise UserError("polls.close.already", id=poll.id)
        me = await self.ctx.people.person_of(call.sender.user)
        if not call.is_organiser and me != poll.creator:
            raise UserError("polls.close.not_allowed", id=poll.id)
        if not await self.closer.end(poll, self.ctx.clock.now(), by_command=True):
            raise UserError("polls.close.already", id=poll.id)
        await self.ctx.audit(call.sender.user, "poll.closed", call.room, {"poll": poll.id})
        await call.reply(call.t("polls.close.done", id=poll.id, rooms=len(poll.rooms)))

    async def _tally(self, poll: PollRecord) -> Tally:
        if poll.state == CLOSED:
            stored = await self.store.tally_of(poll.id)
            if stored is not None:
                return stored
        if poll.secret:
            raise UserError("polls.results.secret_open", id=poll.id)
        ballots = await self.store.ballots(poll)
        return count(ballots, poll.answer_ids, poll.associations, self.settings.min_group)

    @command(
        "poll results",
        sv="omröstning resultat",
        help="polls.help.results",
        params=(Param("id", Kind.INTEGER),),
    )
    async def results(self, call: CommandCall) -> None:
        poll = await self._poll(call.args["id"])
        tally = await self._tally(poll)
        await call.reply(self.fmt.results(poll, tally, call.language))

    @command(
        "poll export",
        sv="omröstning export",
        help="polls.help.export",
        params=(Param("id", Kind.INTEGER),),
        level=Level.ORGANISER,
    )
    async def export(self, call: CommandCall) -> None:
        poll = await self._poll(call.args["id"])
        data = export_csv(poll, await self._tally(poll), self.fmt, call.language)
        name = call.t("polls.export.filename", id=poll.id)
        message = OutgoingMessage(
            text=call.t("polls.export.done", id=poll.id),
            attachments=(Attachment(name, "text/csv", data, size=len(data)),),
            reply_to=call.origin,
            ephemeral=True,
        )
        key = f"poll:{poll.id}:export:{call.room.platform}:{call.event_id}"
        await self.ctx.delivery.send(key, call.room, message)

    @command(
        "vote",
        sv="rösta",
        help="polls.help.vote",
        params=(Param("id", Kind.INTEGER), Param("choice", Kind.NUMBERS, sv_name="val")),
    )
    async def vote(self, call: CommandCall) -> None:
        poll = await self._poll(call.args["id"])
        reply = Reply(
            key=ack_key(poll.id, call.room.platform, call.event_id),
            room=call.room,
            reply_to=call.origin,
            ephemeral=True,
            language=call.language,
        )
        shared = self.ctx.associations.of_room(call.room) is not None
        if poll.secret and shared and call.room.platform not in self.settings.secret_votes_in_rooms:
            # Everyone in the room read it: not counted, and taken away where we may.
            if call.origin is not None:
                removal = ack_key(poll.id, call.room.platform, call.event_id, "removed")
                await self.ctx.delivery.delete(removal, Target(ref=call.origin), call.room)
            await self.voting.tell(reply, call.t("polls.vote.secret_in_room", id=poll.id))
            return
        try:
            await self.voting.cast(
                poll.id,
                user=call.sender.user,
                room=call.room,
                answers=[str(n) for n in call.args["choice"]],
                at=self.ctx.clock.now(),
                source="text",
                reply=reply,
            )
        except UserError as err:
            await self.voting.tell(reply, self._error(err, call.language))

    @command("poll list", sv="omröstning lista", help="polls.help.list")
    async def list_polls(self, call: CommandCall) -> None:
        polls = await self.store.in_states(OPEN)
        if self.ctx.associations.of_room(call.room) is not None:
            polls = [p for p in polls if call.room in p.rooms]
        elif not call.is_organiser:
            mine = set(await self.ctx.member_rooms(call.sender.user))
            polls = [p for p in polls if mine & set(p.rooms)]
        if not polls:
            await call.reply(call.t("polls.list.empty"))
            return
        lines = [call.t("polls.list.head")]
        for poll in polls:
            voters = sum((await self.store.voters_per_association(poll)).values())
            lines.append(self.fmt.list_line(poll, voters, call.language))
        await call.reply("\n".join(lines))

    @command(
        "poll remind",
        sv="omröstning påminn",
        help="polls.help.remind",
        params=(Param("id", Kind.INTEGER),),
        level=Level.ORGANISER,
    )
    async def remind(self, call: CommandCall) -> None:
        poll = await self._poll(call.args["id"])
        if poll.state != OPEN:
            raise UserError("polls.close.already", id=poll.id)
        voters = await self.store.voters_per_association(poll)
        stamp = self.ctx.clock.now().strftime("%Y%m%dT%H%M%S")
        for room in poll.rooms:
            text = self.fmt.reminder(poll, voters, self.ctx.associations.language_for(room))
            await self.ctx.delivery.send(
                remind_key(poll.id, stamp, room), room, OutgoingMessage(text=text)
            )
        await call.reply(call.t("polls.remind.done", id=poll.id, rooms=len(poll.rooms)))

    @command(
        "poll verify",
        sv="omröstning kontrollera",
        help="polls.help.verify",
        params=(Param("id", Kind.INTEGER), Param("code", sv_name="kod")),
    )
    async def verify(self, call: CommandCall) -> None:
        poll = await self._poll(call.args["id"])
        if not poll.secret:
            raise UserError("polls.verify.not_secret", id=poll.id)
        if poll.state != CLOSED:
            raise UserError("polls.verify.open", id=poll.id)
        code = str(call.args["code"])
        answers = await self.store.receipt(poll.id, receipt_hash(poll.id, code))
        if answers is None:
            text = call.t("polls.verify.unknown", id=poll.id)
        else:
            text = call.t("polls.verify.counted", id=poll.id, choice=self.fmt.choice(poll, answers))
        # Keyed under the poll, so that the answer (which names a choice) is forgotten
        # from the outbox once sent, like the answers to votes.
        prefix = verify_prefix(poll.id)
        message = OutgoingMessage(text=text, reply_to=call.origin, ephemeral=True)
        await self.ctx.delivery.send(
            f"{prefix}{call.room.platform}:{call.event_id}", call.room, message
        )
        await self.closer.wipe_later(poll.id, (prefix,))
