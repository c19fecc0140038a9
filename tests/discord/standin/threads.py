"""Threads in the stand-in, as Discord has them: a public thread (channel type 11) started
from a message takes the starter message's id, lives among the channels (so history,
messages, edits and reactions work on its id), and is reached by a webhook of its parent
channel only with `?thread_id=`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tests.discord.standin.model import Channel, Json, Message, User, Webhook
from tests.discord.standin.ratelimits import json_response
from tests.discord.standin.validation import ApiError, invalid_form

if TYPE_CHECKING:
    from tests.discord.standin.server import StandIn

NAME_CHARS = 100
ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)  # minutes, the only values Discord takes
HAS_THREAD = 32  # message flag


def check_thread_body(body: Json) -> tuple[str, int]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_form("name", "This field is required")
    if len(name) > NAME_CHARS:
        raise invalid_form("name", f"Must be {NAME_CHARS} or fewer in length.")
    duration = body.get("auto_archive_duration")
    if duration is None:
        duration = 1440
    if duration not in ARCHIVE_DURATIONS:
        raise invalid_form(
            "auto_archive_duration", f"Value must be one of {set(ARCHIVE_DURATIONS)}."
        )
    return name, int(duration)


def not_a_thread(channel: Channel) -> Channel:
    """Threads in threads, webhooks of a thread: Discord refuses both."""
    if channel.is_thread:
        raise ApiError(400, 50024, "Cannot execute action on this channel type")
    return channel


def create_thread(
    s: StandIn, message: Message, owner: User, name: str, auto_archive_duration: int = 1440
) -> Channel:
    """The thread on `message` (same id), recorded on the starter message as Discord
    does: its `thread` field and the HAS_THREAD flag."""
    parent = not_a_thread(s.channel(message.channel_id))
    if message.id in s.channels:
        raise ApiError(400, 160004, "A thread has already been created for this message")
    thread = Channel(
        message.id,
        parent.guild_id,
        name,
        parent_id=parent.id,
        owner_id=owner.id,
        auto_archive_duration=auto_archive_duration,
    )
    s.channels[thread.id] = thread
    message.data["flags"] = int(message.data.get("flags") or 0) | HAS_THREAD
    message.data["thread"] = thread.payload()
    return thread


async def announce(s: StandIn, thread: Channel) -> None:
    await s.gateway.dispatch("THREAD_CREATE", {**thread.payload(), "newly_created": True})


def counted(s: StandIn, channel: Channel, message_id: int, delta: int) -> None:
    """A message was posted (+1) or deleted (-1) in `channel`: a thread's counts follow,
    and so does the copy of the thread on its starter message."""
    if delta > 0:
        channel.last_message_id = message_id
    if not channel.is_thread:
        return
    channel.message_count = max(0, channel.message_count + delta)
    if delta > 0:
        channel.total_message_sent += delta
    starter = s.messages.get(channel.id)
    if starter is not None and "thread" in starter.data:
        starter.data["thread"] = channel.payload()


def webhook_channel(s: StandIn, hook: Webhook, thread_id: str | None) -> Channel:
    """Where a webhook request goes: the webhook's channel, or with `thread_id` one of
    that channel's threads (anything else is an unknown channel, as on Discord)."""
    if not thread_id:
        return s.channel(hook.channel_id)
    thread = s.channels.get(int(thread_id)) if thread_id.isdigit() else None
    if thread is None or thread.parent_id != hook.channel_id:
        raise ApiError(400, 10003, "Unknown Channel")
    return thread


def add_thread_routes(app: web.Application, s: StandIn, api: str) -> None:
    from tests.discord.standin.rest import JSON_KEY

    async def start_from_message(request: web.Request) -> web.Response:
        info = request.match_info
        name, duration = check_thread_body(request[JSON_KEY] or {})
        channel = not_a_thread(s.channel(info["channel_id"]))
        message = s.message(channel.id, info["message_id"])
        thread = create_thread(s, message, s.bot, name, duration)
        await announce(s, thread)
        return json_response(thread.payload(), 201)

    app.router.add_route(
        "POST", api + "/channels/{channel_id}/messages/{message_id}/threads", start_from_message
    )
