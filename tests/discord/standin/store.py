"""Helpers of the stand-in's routes: commands, attachments, webhooks, edits, followups."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.discord.standin.model import Json, Message, Webhook, iso
from tests.discord.standin.ratelimits import json_response
from tests.discord.standin.threads import counted, webhook_channel
from tests.discord.standin.validation import ApiError, check_commands, check_message

if TYPE_CHECKING:
    from tests.discord.standin.server import StandIn


def put_commands(s: StandIn, scope: str, commands: list[Json]) -> web.Response:
    check_commands(commands)
    stored = [
        {**c, "id": str(s.ids.next()), "application_id": str(s.bot.id), "version": "1"}
        for c in commands
    ]
    s.commands[scope] = stored
    return json_response(stored)


def attachments(s: StandIn, files: list[tuple[str, bytes]]) -> list[Json]:
    return [
        {
            "id": str(s.ids.next()),
            "filename": name,
            "size": len(data),
            "url": f"{s.url}/attachments/{name}",
            "proxy_url": f"{s.url}/attachments/{name}",
            "content_type": "application/octet-stream",
        }
        for name, data in files
    ]


def webhook(s: StandIn, webhook_id: str, token: str) -> Webhook:
    hook = s.webhooks.get(int(webhook_id))
    if hook is None or hook.token != token:
        raise ApiError(404, 10015, "Unknown Webhook")
    return hook


def webhook_message(s: StandIn, request: web.Request) -> Message:
    """The message a webhook route names. A webhook's message in a thread is found only
    with that thread's `thread_id`, as on Discord (without it: Unknown Message)."""
    info, thread_id = request.match_info, request.query.get("thread_id")
    if int(info["webhook_id"]) == s.bot.id:
        inter = next((i for i in s.interactions.values() if i.token == info["webhook_token"]), None)
        if inter is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        mid = inter.original_id if info["message_id"] == "@original" else int(info["message_id"])
        msg = s.messages.get(mid or 0)
    else:
        hook = webhook(s, info["webhook_id"], info["webhook_token"])
        channel = webhook_channel(s, hook, thread_id)
        msg = s.messages.get(int(info["message_id"]))
        if msg is not None and (msg.webhook_id != hook.id or msg.channel_id != channel.id):
            msg = None
    if msg is None or msg.deleted:
        raise ApiError(404, 10008, "Unknown Message")
    return msg


def delete(s: StandIn, msg: Message) -> None:
    msg.deleted = True
    channel = s.channels.get(msg.channel_id)
    if channel is not None and not msg.ephemeral:
        counted(s, channel, msg.id, -1)


async def edit(s: StandIn, msg: Any, body: Json) -> Json:
    if "poll" in body and msg.id in s.polls:
        raise ApiError(400, 520003, "Cannot edit a poll message")
    check_message({**msg.data, **body, "content": body.get("content", msg.data["content"])})
    for key in ("content", "components", "embeds"):
        if key in body:
            msg.data[key] = body[key]
    msg.data["edited_timestamp"] = iso()
    await s.gateway.dispatch("MESSAGE_UPDATE", msg.data)
    return dict(msg.data)


async def followup(s: StandIn, token: str, body: Json) -> web.Response:
    inter = next((i for i in s.interactions.values() if i.token == token), None)
    if inter is None or inter.acknowledged is None:
        raise ApiError(404, 10015, "Unknown Webhook")
    if time.monotonic() - inter.created_at > s.followup_window:
        raise ApiError(401, 50027, "Invalid Webhook Token")
    channel = s.channel(inter.channel_id)
    original = s.messages.get(inter.original_id or 0)
    if inter.loading and original is not None and not original.deleted:
        # The first followup after a deferral fills the "thinking" message: its
        # visibility is the deferral's, whatever this request's flags say.
        inter.loading = False
        original.data["content"] = body.get("content") or ""
        original.data["flags"] &= ~128
        if not original.ephemeral:
            await s.gateway.dispatch("MESSAGE_UPDATE", original.data)
        return json_response(original.data)
    ephemeral = bool(int(body.get("flags", 0)) & 64)
    msg = s.create_message(channel, s.bot, body, ephemeral=ephemeral, interaction=inter)
    if inter.original_id is None:
        inter.original_id = msg.id
    if not ephemeral:
        await s.gateway.dispatch("MESSAGE_CREATE", msg.data)
    return json_response(msg.data)
