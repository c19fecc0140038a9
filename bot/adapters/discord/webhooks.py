"""Attributed posts (the bridge's): one webhook per channel, created once and reused.

The webhook of a channel is recorded in the adapter state (and found again by name if
the state was lost), never created anew per restart. Executing it goes through one
plain request per attempt rather than discord.py's webhook client, which resends on a
5xx: Discord may have stored the message before failing, and a webhook has no nonce.
So every attempt is recorded first, and a retry looks in the channel's history for a
message of this webhook with this content before sending again: only among messages after
our last post in the channel, so that the same words said twice are two posts. Once sent,
a part's record says so (`sent:<id>`) and is kept for RECORD_TTL, not dropped when `post`
returns: the delivery records the message id only after that, and a process killed in
between retries the post at its next start.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import aiohttp
import discord

from bot.adapters.discord.errors import UNKNOWN_WEBHOOK, AuthBrake, boundary
from bot.core.errors import PermanentSendError, TransientSendError
from bot.storage.state import AdapterState

log = logging.getLogger(__name__)

_RESERVED: Final = re.compile(r"(discord|clyde)", re.IGNORECASE)
_USERNAME_MAX: Final = 80
NO_MENTIONS: Final = discord.AllowedMentions.none().to_dict()
# How long a post's records are kept: longer than a bot is plausibly down between a post
# and its retry, and shorter than the outbox remembers a finished delivery (60 days), after
# which its key, and so its token, may recur and must find no record.
RECORD_TTL: Final = timedelta(days=14)
_PRUNE_EVERY: Final = 3600.0  # seconds between prunings while running
HISTORY_PAGES: Final = 10  # pages of 100 read for a post stored before its attempt failed


def safe_username(label: str) -> str:
    """Discord refuses webhook names containing "discord" or "clyde": a zero-width space
    after their first letter keeps the name readable and accepted."""
    name = _RESERVED.sub(lambda m: m[0][0] + "\u200b" + m[0][1:], label.strip()) or "?"
    return name[:_USERNAME_MAX]


@dataclass(frozen=True, slots=True)
class Hook:
    id: int
    token: str


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes
    content_type: str


class Webhooks:
    def __init__(self, state: AdapterState, brake: AuthBrake, name: str) -> None:
        self._state = state
        self._brake = brake
        self.name = safe_username(name)
        self._hooks: dict[int, Hook] = {}
        self.own_ids: set[int] = set()
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.recovered = 0
        self._last: dict[int, int] = {}  # channel id -> our last post through its webhook
        self._pruned_at = 0.0  # time.monotonic() of the last pruning

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        raw = await self._state.get("webhook_ids")
        self.own_ids = {int(i) for i in json.loads(raw)} if raw else set()
        await self.prune()

    async def prune(self) -> int:
        """Forget the records of posts older than RECORD_TTL; how many went. Each record
        holds a snowflake (the marker or the message id), and so its age."""
        self._pruned_at = time.monotonic()
        cutoff = discord.utils.time_snowflake(discord.utils.utcnow() - RECORD_TTL)
        records = await self._state.with_prefix("whsend:")
        old = [k for k, v in records.items() if _record_id(v) < cutoff]
        if old:
            await self._state.delete(old)
            log.info("forgot %d webhook post record(s) older than %s", len(old), RECORD_TTL)
        return len(old)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def hook(self, client: discord.Client, channel_id: int) -> Hook:
        cached = self._hooks.get(channel_id)
        if cached is not None:
            return cached
        raw = await self._state.get(f"webhook:{channel_id}")
        if raw:
            hook_id, _, token = raw.partition(":")
            hook = Hook(int(hook_id), token)
        else:
            hook = await self._find_or_create(client, channel_id)
            await self._state.set(f"webhook:{channel_id}", f"{hook.id}:{hook.token}")
        self._hooks[channel_id] = hook
        if hook.id not in self.own_ids:
            self.own_ids.add(hook.id)
            await self._state.set("webhook_ids", json.dumps(sorted(self.own_ids)))
        return hook

    async def _find_or_create(self, client: discord.Client, channel_id: int) -> Hook:
        assert client.user is not None
        async with boundary(self._brake):
            for data in await client.http.channel_webhooks(channel_id):
                user: dict[str, Any] = dict(data.get("user") or {})
                mine = int(user.get("id", 0)) == client.user.id
                if data.get("name") == self.name and mine and data.get("token"):
                    log.info("reusing webhook %s in channel %s", data["id"], channel_id)
                    return Hook(int(data["id"]), str(data["token"]))
            created = await client.http.create_webhook(channel_id, name=self.name)
        log.info("created webhook %s in channel %s", created["id"], channel_id)
        return Hook(int(created["id"]), str(created.get("token") or ""))

    async def forget(self, channel_id: int) -> None:
        self._hooks.pop(channel_id, None)
        await self._state.set(f"webhook:{channel_id}", "")

    async def post(
        self,
        client: discord.Client,
        channel_id: int,
        parts: list[str],
        token: str,
        *,
        username: str,
        avatar_url: str | None,
        uploads: list[Upload],
        thread: int | None = None,
    ) -> list[int]:
        """Post `parts` through the channel's webhook (into `thread`, one of the
        channel's threads, if given); the ids of the messages."""
        if time.monotonic() - self._pruned_at > _PRUNE_EVERY:
            await self.prune()
        hook = await self.hook(client, channel_id)
        where = thread or channel_id  # where the posts land, and where to look for them
        name = safe_username(username)
        posted: list[int] = []
        for i, part in enumerate(parts):
            key = f"whsend:{token}:{i}"
            done = await self._already_sent(client, where, hook, key, part, name)
            if done is None:
                # Recorded before sending: a retry after a failure knows to look first, at
                # what came after this point. Five minutes back, as clocks differ; but not
                # before our last post here, or an earlier post of the same words by the
                # same person would be taken for this one and this one never sent.
                marker = discord.utils.time_snowflake(discord.utils.utcnow() - timedelta(minutes=5))
                marker = max(marker, await self._last_post(where))
                await self._state.set(key, f"try:{marker}")
                body: dict[str, Any] = {
                    "content": part,
                    "username": name,
                    "allowed_mentions": NO_MENTIONS,
                }
                if avatar_url:
                    body["avatar_url"] = avatar_url
                last = i == len(parts) - 1
                done = await self._execute(channel_id, hook, body, uploads if last else [], thread)
                # Both written behind (`AdapterState.set_soon`), in order and before the
                # delivery's own outcome, which is queued after them: a kill that loses
                # them loses that outcome too, and the retry finds the post in the
                # history after the marker (stored above, before sending). Kept after
                # `post` returns, the last part's too: the delivery records the id only
                # then, and a kill in between retries with this token.
                self._posted_soon(where, done)
                self._state.set_soon(key, f"sent:{done}")
                self.sent += 1
            posted.append(done)
        return posted

    async def _last_post(self, channel_id: int) -> int:
        last = self._last.get(channel_id)
        if last is None:
            raw = await self._state.get(f"whlast:{channel_id}")
            last = int(raw) if raw and raw.isdigit() else 0
            self._last[channel_id] = last
        return last

    def _posted_soon(self, channel_id: int, message_id: int) -> None:
        # `_last_post` was read for this channel's marker just before: the cache holds it.
        if message_id > self._last.get(channel_id, 0):
            self._last[channel_id] = message_id
            self._state.set_soon(f"whlast:{channel_id}", str(message_id))

    async def _posted(self, channel_id: int, message_id: int) -> None:
        if message_id > await self._last_post(channel_id):
            self._last[channel_id] = message_id
            await self._state.set(f"whlast:{channel_id}", str(message_id))

    async def _already_sent(
        self,
        client: discord.Client,
        channel_id: int,
        hook: Hook,
        key: str,
        content: str,
        name: str,
    ) -> int | None:
        record = await self._state.get(key)
        if not record:
            return None
        kind, _, value = record.partition(":")
        if kind == "sent":
            # Posted by an earlier attempt: a part before one that failed, or a post whose
            # id did not reach the outbox before the process died.
            log.info("webhook post %s was sent already as %s: not sent again", key, value)
            return int(value)
        after = int(value)
        # Page by page from the marker: a busy channel can hold more than one page of
        # others' messages in the minutes since. Only a retry after a failure reads this.
        for _page in range(HISTORY_PAGES):
            async with boundary(self._brake):
                history = await client.http.logs_from(channel_id, 100, after=after)
            for data in history:
                author = data.get("author") or {}
                if (
                    int(data.get("webhook_id") or 0) == hook.id
                    and data.get("content") == content
                    and author.get("username") == name
                ):
                    log.info("webhook post %s was stored before failing: not sent again", key)
                    self.recovered += 1
                    await self._posted(channel_id, int(data["id"]))
                    await self._state.set(key, f"sent:{data['id']}")
                    return int(data["id"])
            if len(history) < 100:
                return None
            after = max(int(data["id"]) for data in history)
        log.warning(
            "webhook post %s: not found in %d messages after its attempt; sent again",
            key,
            HISTORY_PAGES * 100,
        )
        return None

    async def _execute(
        self,
        channel_id: int,
        hook: Hook,
        body: dict[str, Any],
        uploads: list[Upload],
        thread: int | None,
    ) -> int:
        url = f"{discord.http.Route.BASE}/webhooks/{hook.id}/{hook.token}"
        params = {"wait": "true", **_in_thread(thread)}
        data = await self._request("POST", url, channel_id, body, uploads, params=params)
        return int(data["id"])

    async def edit(
        self,
        client: discord.Client,
        channel_id: int,
        message_id: int,
        text: str,
        *,
        thread: int | None = None,
    ) -> None:
        hook = await self.hook(client, channel_id)
        url = f"{discord.http.Route.BASE}/webhooks/{hook.id}/{hook.token}/messages/{message_id}"
        body = {"content": text, "allowed_mentions": NO_MENTIONS}
        await self._request("PATCH", url, channel_id, body, [], params=_in_thread(thread))

    async def _request(
        self,
        method: str,
        url: str,
        channel_id: int,
        body: dict[str, Any],
        uploads: list[Upload],
        params: dict[str, str] | None = None,
    ) -> Any:
        self._brake.check()
        assert self._session is not None, "start() first"
        payload: aiohttp.FormData | str
        headers: dict[str, str] = {}
        if uploads:
            payload = aiohttp.FormData(quote_fields=False)
            payload.add_field("payload_json", json.dumps(body), content_type="application/json")
            for n, upload in enumerate(uploads):
                payload.add_field(
                    f"files[{n}]",
                    upload.data,
                    filename=upload.filename,
                    content_type=upload.content_type,
                )
        else:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, url, data=payload, headers=headers, params=params
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientSendError(f"could not reach Discord: {exc!r}") from exc
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {"message": text[:200]}
        if 200 <= status < 300:
            return data
        code = int(data.get("code", 0)) if isinstance(data, dict) else 0
        if status == 429:
            wait = float(data.get("retry_after", 1.0)) if isinstance(data, dict) else 1.0
            log.warning("webhook in channel %s rate limited: retry in %.1fs", channel_id, wait)
            raise TransientSendError("webhook rate limited", retry_after=wait)
        if status >= 500:
            raise TransientSendError(f"Discord answered {status} to a webhook post")
        if status == 404 and code == UNKNOWN_WEBHOOK:
            # Deleted by someone: make a new one on the retry.
            await self.forget(channel_id)
            raise TransientSendError("the channel's webhook was deleted; recreating it")
        if status in (401, 403):
            self._brake.record(status)
        raise PermanentSendError(f"Discord answered {status} (code {code}) to a webhook post")


def _record_id(record: str) -> int:
    """The snowflake of a `try:<marker>` or `sent:<message id>` record; 0 if unreadable."""
    value = record.partition(":")[2]
    return int(value) if value.isdigit() else 0


def _in_thread(thread: int | None) -> dict[str, str]:
    # Discord reaches a webhook's message in a thread only when told the thread.
    return {"thread_id": str(thread)} if thread else {}
