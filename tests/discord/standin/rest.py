"""The stand-in's REST routes: what the bot calls, checked and answered as Discord does."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from tests.discord.standin.model import Json, Webhook, new_token
from tests.discord.standin.ratelimits import json_response
from tests.discord.standin.store import (
    attachments,
    delete,
    edit,
    followup,
    put_commands,
    webhook,
    webhook_message,
)
from tests.discord.standin.threads import not_a_thread, webhook_channel
from tests.discord.standin.validation import (
    ApiError,
    check_message,
    check_webhook_name,
    invalid_form,
)

if TYPE_CHECKING:
    from tests.discord.standin.server import StandIn

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON_KEY: Final[web.RequestKey[Any]] = web.RequestKey("json", object)
FILES_KEY: Final[web.RequestKey[list[tuple[str, bytes]]]] = web.RequestKey("files", list)
INTERACTION_WINDOW = 3.0  # seconds to answer an interaction before its token expires
# The callback types each kind of interaction takes: a message (4), a deferral (5), a
# deferred update of the clicked message (6, components only), an update of it (7),
# autocomplete choices (8), a modal (9).
CALLBACK_TYPES = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}}


async def _read_body(request: web.Request) -> tuple[Any, list[tuple[str, bytes]]]:
    ctype = request.headers.get("Content-Type", "")
    if ctype.startswith("multipart/"):
        form = await request.post()
        files: list[tuple[str, bytes]] = []
        payload: Any = None
        for name, value in form.items():
            if name == "payload_json":
                raw = value.file.read() if isinstance(value, web.FileField) else value
                payload = json.loads(raw)
            elif isinstance(value, web.FileField):
                files.append((value.filename, value.file.read()))
        return payload, files
    if request.can_read_body:
        raw = await request.read()
        return (json.loads(raw) if raw else None), []
    return None, []


async def record_and_run(
    standin: StandIn, request: web.Request, handler: Handler
) -> web.StreamResponse:
    from tests.discord.standin.server import API, Recorded

    resource = request.match_info.route.resource
    template = resource.canonical[len(API) :] if resource is not None else request.path
    route = f"{request.method} {template}"
    body, files = await _read_body(request)
    request[JSON_KEY], request[FILES_KEY] = body, files
    headers = {
        k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in request.headers.items()
    }
    rec = Recorded(
        request.method,
        request.path,
        route,
        dict(request.query),
        headers,
        body,
        [f for f, _ in files],
    )
    standin.requests.append(rec)
    response = await _answer(standin, request, handler, route, template)
    rec.status = response.status
    for listener in standin.listeners:
        listener(rec)
    return response


async def _answer(
    standin: StandIn, request: web.Request, handler: Handler, route: str, template: str
) -> web.StreamResponse:
    if request.match_info.route.resource is None:
        return json_response({"message": "404: Not Found", "code": 0}, 404)
    tokenless = template.startswith(("/webhooks/{webhook_id}/{webhook_token}", "/interactions/"))
    if not tokenless and request.headers.get("Authorization") != f"Bot {standin.token}":
        return json_response({"message": "401: Unauthorized", "code": 0}, 401)
    blocked = standin.limiter.global_blocked()
    if blocked > 0:
        body = {"message": "You are being rate limited.", "retry_after": blocked, "global": True}
        return json_response(body, 429, {"Via": "1.1 google", "X-RateLimit-Global": "true"})
    injection = standin.limiter.take_injection(route)
    if injection is not None and not injection.after_store:
        return injection.response()
    info = request.match_info
    major = "+".join(
        info[k] for k in ("channel_id", "guild_id", "webhook_id", "webhook_token") if k in info
    )
    rl_headers, wait = standin.limiter.consume(route, major)
    if wait > 0:
        body = {"message": "You are being rate limited.", "retry_after": wait, "global": False}
        return json_response(body, 429, {**rl_headers, "Via": "1.1 google"})
    try:
        response = await handler(request)
    except ApiError as err:
        response = json_response(err.body(), err.status)
    if injection is not None:
        return injection.response()
    response.headers.update(rl_headers)
    return response


def add_routes(app: web.Application, s: StandIn, api: str) -> None:
    def route(method: str, path: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            app.router.add_route(method, api + path, fn)
            return fn

        return register

    @route("GET", "/users/@me")
    async def me(request: web.Request) -> web.Response:
        return json_response(
            {**s.bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0}
        )

    @route("GET", "/oauth2/applications/@me")
    async def application(request: web.Request) -> web.Response:
        return json_response(
            {
                "id": str(s.bot.id),
                "name": s.bot.name,
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": s.bot.payload(),
                "verify_key": "00",
                "flags": 0,
                "team": None,
            }
        )

    @route("GET", "/channels/{channel_id}")
    async def get_channel(request: web.Request) -> web.Response:
        return json_response(s.channel(request.match_info["channel_id"]).payload())

    @route("GET", "/guilds/{guild_id}/members/{user_id}")
    async def get_member(request: web.Request) -> web.Response:
        user = s.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return json_response(user.member(int(request.match_info["guild_id"])))

    @route("POST", "/channels/{channel_id}/messages")
    async def post_message(request: web.Request) -> web.Response:
        channel = s.channel(request.match_info["channel_id"])
        body: Json = request[JSON_KEY] or {}
        files = request[FILES_KEY]
        check_message(body, has_files=bool(files))
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            for old in s.by_nonce.get((channel.id, str(nonce)), ()):
                if old.author_id == s.bot.id and not old.deleted and not old.ephemeral:
                    return json_response(old.data)  # Discord answers the first message again
        ref = body.get("message_reference")
        if ref and int(ref["message_id"]) not in s.messages and ref.get("fail_if_not_exists", True):
            raise ApiError(400, 50035, "Invalid Form Body: message_reference: Unknown message")
        msg = s.create_message(channel, s.bot, body, attachments=attachments(s, files))
        await s.gateway.dispatch("MESSAGE_CREATE", msg.data)
        return json_response(msg.data)

    @route("GET", "/channels/{channel_id}/messages")
    async def history(request: web.Request) -> web.Response:
        channel = s.channel(request.match_info["channel_id"])
        limit = min(100, int(request.query.get("limit", "50")))
        msgs = s.channel_messages(channel.id)
        if "after" in request.query:
            after = int(request.query["after"])
            picked = [m for m in msgs if m.id > after][:limit]
            picked.reverse()
        elif "before" in request.query:
            before = int(request.query["before"])
            picked = [m for m in msgs if m.id < before][-limit:][::-1]
        else:
            picked = msgs[-limit:][::-1]
        return json_response([m.data for m in picked])

    @route("GET", "/channels/{channel_id}/messages/{message_id}")
    async def get_message(request: web.Request) -> web.Response:
        info = request.match_info
        return json_response(s.message(info["channel_id"], info["message_id"]).data)

    @route("PATCH", "/channels/{channel_id}/messages/{message_id}")
    async def edit_message(request: web.Request) -> web.Response:
        info = request.match_info
        msg = s.message(info["channel_id"], info["message_id"])
        if msg.author_id != s.bot.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        return json_response(await edit(s, msg, request[JSON_KEY] or {}))

    @route("DELETE", "/channels/{channel_id}/messages/{message_id}")
    async def delete_message(request: web.Request) -> web.Response:
        info = request.match_info
        msg = s.message(info["channel_id"], info["message_id"])
        delete(s, msg)
        await s.gateway.dispatch(
            "MESSAGE_DELETE",
            {
                "id": str(msg.id),
                "channel_id": str(msg.channel_id),
                "guild_id": msg.data["guild_id"],
            },
        )
        return json_response(None, 204)

    @route("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
    async def react(request: web.Request) -> web.Response:
        info = request.match_info
        msg = s.message(info["channel_id"], info["message_id"])
        msg.data.setdefault("reactions", []).append(
            {"emoji": {"id": None, "name": info["emoji"]}, "count": 1, "me": True}
        )
        return json_response(None, 204)

    @route("GET", "/channels/{channel_id}/webhooks")
    async def list_webhooks(request: web.Request) -> web.Response:
        channel = not_a_thread(s.channel(request.match_info["channel_id"]))
        if channel.id in s.no_webhooks:
            raise ApiError(403, 50013, "Missing Permissions")
        hooks = [w for w in s.webhooks.values() if w.channel_id == channel.id]
        return json_response([w.payload(s.users[w.creator_id]) for w in hooks])

    @route("POST", "/channels/{channel_id}/webhooks")
    async def create_webhook(request: web.Request) -> web.Response:
        channel = not_a_thread(s.channel(request.match_info["channel_id"]))
        if channel.id in s.no_webhooks:
            raise ApiError(403, 50013, "Missing Permissions")
        name = str((request[JSON_KEY] or {}).get("name") or "")
        check_webhook_name(name)
        hook = Webhook(s.ids.next(), channel.id, channel.guild_id, name, new_token(), s.bot.id)
        s.webhooks[hook.id] = hook
        return json_response(hook.payload(s.bot))

    @route("POST", "/webhooks/{webhook_id}/{webhook_token}")
    async def execute(request: web.Request) -> web.Response:
        info = request.match_info
        body: Json = request[JSON_KEY] or {}
        check_message(body, has_files=bool(request[FILES_KEY]))
        if int(info["webhook_id"]) == s.bot.id:
            return await followup(s, info["webhook_token"], body)
        hook = webhook(s, info["webhook_id"], info["webhook_token"])
        username = body.get("username")
        if username is not None:
            check_webhook_name(str(username), "username")
        channel = webhook_channel(s, hook, request.query.get("thread_id"))
        msg = s.create_message(
            channel,
            None,
            body,
            webhook=hook,
            username=username,
            attachments=attachments(s, request[FILES_KEY]),
        )
        await s.gateway.dispatch("MESSAGE_CREATE", msg.data)
        wait = request.query.get("wait", "").lower() in {"1", "true"}
        return json_response(msg.data) if wait else json_response(None, 204)

    @route("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
    async def edit_webhook_message(request: web.Request) -> web.Response:
        msg = webhook_message(s, request)
        return json_response(await edit(s, msg, request[JSON_KEY] or {}))

    @route("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
    async def delete_webhook_message(request: web.Request) -> web.Response:
        msg = webhook_message(s, request)
        delete(s, msg)
        for inter in s.interactions.values():
            if inter.original_id == msg.id:
                inter.loading = False
        return json_response(None, 204)

    @route("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
    async def get_webhook_message(request: web.Request) -> web.Response:
        return json_response(webhook_message(s, request).data)

    @route("POST", "/interactions/{interaction_id}/{interaction_token}/callback")
    async def callback(request: web.Request) -> web.Response:
        info = request.match_info
        inter = s.interactions.get(int(info["interaction_id"]))
        if inter is None or inter.token != info["interaction_token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        if time.monotonic() - inter.created_at > INTERACTION_WINDOW:
            raise ApiError(404, 10062, "Unknown interaction")
        if inter.acknowledged is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        body: Json = request[JSON_KEY] or {}
        kind = int(body.get("type", 0))
        data: Json = body.get("data") or {}
        if kind not in CALLBACK_TYPES.get(inter.kind, set()):
            raise invalid_form(
                "type", "Interaction response type is not valid for this interaction"
            )
        inter.acknowledged, inter.answered_at = kind, time.monotonic()
        resource: Json = {"type": kind}
        channel = s.channel(inter.channel_id)
        if kind == 4:
            check_message(data)
            msg = s.create_message(
                channel,
                s.bot,
                data,
                ephemeral=bool(int(data.get("flags", 0)) & 64),
                interaction=inter,
            )
            inter.original_id = msg.id
            resource["message"] = msg.data
            if not msg.ephemeral:
                await s.gateway.dispatch("MESSAGE_CREATE", msg.data)
        elif kind == 5:
            inter.deferred_ephemeral = bool(int(data.get("flags", 0)) & 64)
            thinking = s.create_message(
                channel, s.bot, {}, ephemeral=inter.deferred_ephemeral, interaction=inter
            )
            thinking.data["flags"] |= 128  # LOADING
            inter.original_id, inter.loading = thinking.id, True
            resource["message"] = thinking.data
            if not thinking.ephemeral:
                await s.gateway.dispatch("MESSAGE_CREATE", thinking.data)
        elif kind == 7 and inter.message_id is not None:
            resource["message"] = await edit(s, s.message(inter.channel_id, inter.message_id), data)
        answer = {
            "interaction": {
                "id": str(inter.id),
                "type": 2,
                "response_message_id": str(inter.original_id) if inter.original_id else None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": inter.deferred_ephemeral,
            },
            "resource": resource,
        }
        if request.query.get("with_response") in {"1", "true"}:
            return json_response(answer)
        return json_response(None, 204)

    @route("PUT", "/applications/{application_id}/commands")
    async def global_commands(request: web.Request) -> web.Response:
        return put_commands(s, "global", request[JSON_KEY] or [])

    @route("PUT", "/applications/{application_id}/guilds/{guild_id}/commands")
    async def guild_commands(request: web.Request) -> web.Response:
        guild_id = request.match_info["guild_id"]
        if int(guild_id) not in s.guilds:
            raise ApiError(403, 50001, "Missing Access")
        return put_commands(s, guild_id, request[JSON_KEY] or [])
