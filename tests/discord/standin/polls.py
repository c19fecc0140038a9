"""Native polls in the stand-in, as Discord has them.

A poll lives on its message: answers numbered from 1, an expiry 1 to 768 hours away, one
answer per voter or several (`allow_multiselect`). Members vote (apps cannot); each vote
added or taken back is one `MESSAGE_POLL_VOTE_ADD` / `_REMOVE` per answer, sent only to
sessions that asked for the poll intents, and only about messages that session has seen
(a client started after the poll was posted hears nothing of it). The voters of each
answer are listed over REST, by user id, at most 100 a page. Only the poll's author may
end it early; ending finalises the counts in the message's `poll.results` and posts
Discord's "poll has closed" message (type 46).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from tests.discord.standin.model import Json, Message, User, iso
from tests.discord.standin.ratelimits import json_response
from tests.discord.standin.validation import ApiError, invalid_form

if TYPE_CHECKING:
    from tests.discord.standin.server import StandIn

GUILD_MESSAGE_POLLS = 1 << 24
DIRECT_MESSAGE_POLLS = 1 << 25
VOTERS_DEFAULT = 25
VOTERS_MAX = 100
POLL_RESULT = 46  # the message type of "X's poll has closed"

POLL_VOTING_BLOCKED = 520000
POLL_EXPIRED = 520001
CANNOT_EDIT_POLL = 520003
NOT_A_POLL = 520006


@dataclass
class PollState:
    message_id: int
    channel_id: int
    author_id: int
    question: str
    answers: dict[int, str]  # answer id -> text
    expiry: float
    multiselect: bool
    votes: dict[int, list[int]] = field(default_factory=dict)  # answer id -> voter ids
    finalized: bool = False

    @property
    def expired(self) -> bool:
        return self.finalized or time.time() >= self.expiry

    def chosen_by(self, user_id: int) -> list[int]:
        return [a for a, voters in self.votes.items() if user_id in voters]

    def counts(self) -> dict[int, int]:
        return {a: len(self.votes.get(a, [])) for a in self.answers}

    def results(self) -> Json:
        return {
            "is_finalized": self.finalized,
            "answer_counts": [
                {"id": a, "count": n, "me_voted": False} for a, n in self.counts().items() if n
            ],
        }


def create(s: StandIn, message_id: int, channel_id: int, author_id: int, poll: Json) -> Json:
    """Record a new poll (already validated) and give its payload for the message."""
    answers = {i: str(a["poll_media"]["text"]) for i, a in enumerate(poll["answers"], 1)}
    state = PollState(
        message_id,
        channel_id,
        author_id,
        str(poll["question"]["text"]),
        answers,
        time.time() + 3600 * int(poll.get("duration", 24)),
        bool(poll.get("allow_multiselect")),
    )
    s.polls[message_id] = state
    return {
        "question": {"text": state.question},
        "answers": [
            {"answer_id": i, "poll_media": a.get("poll_media") or {}}
            for i, a in enumerate(poll["answers"], 1)
        ],
        "expiry": iso(state.expiry),
        "allow_multiselect": state.multiselect,
        "layout_type": poll.get("layout_type", 1),
        "results": state.results(),
    }


def poll_of(s: StandIn, message: Message) -> PollState:
    state = s.polls.get(message.id)
    if state is None or message.deleted:
        raise ApiError(400, NOT_A_POLL, "Cannot expire a non-poll message")
    return state


def _refresh(message: Message, state: PollState) -> None:
    message.data["poll"]["results"] = state.results()


async def vote(s: StandIn, message: Message, user: User, answer_id: int, *, add: bool) -> bool:
    """`user` ticks (or unticks) answer `answer_id` in Discord's client. A click that
    changes nothing sends nothing; in a single-choice poll a new answer first takes the
    old one back, as the client does. False when nothing changed."""
    state = s.polls.get(message.id)
    if state is None:
        raise AssertionError(f"message {message.id} has no poll to vote in")
    if user.bot:
        raise ApiError(403, POLL_VOTING_BLOCKED, "Poll voting blocked")  # apps cannot vote
    if state.expired:
        raise ApiError(400, POLL_EXPIRED, "Poll expired")
    if answer_id not in state.answers:
        raise AssertionError(f"poll {message.id} has no answer {answer_id}")
    voters = state.votes.setdefault(answer_id, [])
    if add == (user.id in voters):
        return False
    if add and not state.multiselect:
        for old in state.chosen_by(user.id):
            state.votes[old].remove(user.id)
            await _announce(s, state, user, old, add=False)
    if add:
        voters.append(user.id)
    else:
        voters.remove(user.id)
    _refresh(message, state)
    await _announce(s, state, user, answer_id, add=add)
    return True


async def _announce(s: StandIn, state: PollState, user: User, answer_id: int, *, add: bool) -> None:
    channel = s.channels[state.channel_id]
    await s.gateway.dispatch(
        "MESSAGE_POLL_VOTE_ADD" if add else "MESSAGE_POLL_VOTE_REMOVE",
        {
            "user_id": str(user.id),
            "channel_id": str(channel.id),
            "message_id": str(state.message_id),
            "guild_id": str(channel.guild_id),
            "answer_id": answer_id,
        },
        intent=GUILD_MESSAGE_POLLS,
        about=state.message_id,
    )


async def expire(s: StandIn, message: Message, by: int) -> Json:
    """End the poll now; only its author may."""
    state = poll_of(s, message)
    if state.author_id != by:
        raise ApiError(403, 50005, "Cannot edit a message authored by another user")
    if state.expired:
        raise ApiError(400, POLL_EXPIRED, "Poll expired")
    state.expiry = time.time()
    await finalise(s, message, state)
    return dict(message.data)


async def finalise(s: StandIn, message: Message, state: PollState) -> None:
    """What Discord does when a poll ends: final counts, an update, a result message."""
    state.finalized = True
    message.data["poll"]["expiry"] = iso(state.expiry)
    _refresh(message, state)
    await s.gateway.dispatch("MESSAGE_UPDATE", message.data)
    counts = state.counts()
    total = sum(counts.values())
    victor = max(counts, key=lambda a: counts[a]) if total else None
    fields = [
        {"name": "poll_question_text", "value": state.question, "inline": False},
        {"name": "victor_answer_votes", "value": str(counts[victor] if victor else 0)},
        {"name": "total_votes", "value": str(total)},
    ]
    if victor is not None:
        fields += [
            {"name": "victor_answer_id", "value": str(victor)},
            {"name": "victor_answer_text", "value": state.answers[victor]},
        ]
    channel = s.channels[state.channel_id]
    author = s.users.get(state.author_id) or s.bot
    result = s.create_message(
        channel,
        author,
        {
            "content": "",
            "embeds": [{"type": "poll_result", "fields": fields}],
            "message_reference": {"message_id": state.message_id},
        },
    )
    result.data["type"] = POLL_RESULT
    await s.gateway.dispatch("MESSAGE_CREATE", result.data)


def voters(state: PollState, answer_id: int, after: int, limit: int) -> list[int]:
    """One page of an answer's voters: user ids above `after`, lowest first."""
    return sorted(u for u in state.votes.get(answer_id, []) if u > after)[:limit]


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_form(name, "Value must be a valid integer.", "NUMBER_TYPE_COERCE") from None


def add_poll_routes(app: web.Application, s: StandIn, api: str) -> None:
    async def answer_voters(request: web.Request) -> web.Response:
        info = request.match_info
        s.channel(info["channel_id"])
        message = s.message(info["channel_id"], info["message_id"])
        state = s.polls.get(message.id)
        if state is None:
            raise ApiError(404, 10008, "Unknown Message")
        raw = info["answer_id"]
        answer_id = int(raw) if raw.isdigit() else 0
        if answer_id not in state.answers:
            raise invalid_form("answer_id", "Value is not a valid answer.", "POLL_ANSWER_INVALID")
        limit = _int_query(request, "limit", VOTERS_DEFAULT)
        if limit < 1:
            raise invalid_form(
                "limit", "int value should be greater than or equal to 1.", "NUMBER_TYPE_MIN"
            )
        if limit > VOTERS_MAX:
            raise invalid_form(
                "limit",
                f"int value should be less than or equal to {VOTERS_MAX}.",
                "NUMBER_TYPE_MAX",
            )
        after = _int_query(request, "after", 0)
        page = voters(state, answer_id, after, limit)
        return json_response({"users": [s.users[u].payload() for u in page]})

    async def expire_poll(request: web.Request) -> web.Response:
        info = request.match_info
        message = s.message(info["channel_id"], info["message_id"])
        return json_response(await expire(s, message, by=s.bot.id))

    app.router.add_route(
        "GET", api + "/channels/{channel_id}/polls/{message_id}/answers/{answer_id}", answer_voters
    )
    app.router.add_route(
        "POST", api + "/channels/{channel_id}/polls/{message_id}/expire", expire_poll
    )
