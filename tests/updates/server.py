"""A news server on 127.0.0.1 for the updates tests: feeds by path, with ETags and
Last-Modified (or only one of them), whose entries a test changes between fetches, and
paths that misbehave on purpose. Every request is recorded."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

from tests.support import serve_on_loopback


@dataclass
class Asked:
    path: str
    if_none_match: str | None
    if_modified_since: str | None
    status: int


@dataclass
class Served:
    body: bytes
    content_type: str
    etag: bool = True
    last_modified: bool = True
    status: int = 200  # anything else: that status, with a body nobody should see
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None  # answer 302 to this address
    changed: datetime = field(default_factory=lambda: datetime(2026, 11, 1, tzinfo=UTC))


@dataclass
class NewsServer:
    port: int = 0
    feeds: dict[str, Served] = field(default_factory=dict)
    asked: list[Asked] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/rss+xml",
        *,
        etag: bool = True,
        last_modified: bool = True,
        status: int = 200,
        headers: dict[str, str] | None = None,
        redirect: str | None = None,
    ) -> None:
        old = self.feeds.get(path)
        served = Served(body, content_type, etag, last_modified, status, headers or {}, redirect)
        if old is not None and old.body != body:
            # A new version: a later Last-Modified, as a server's clock would say.
            served.changed = datetime.fromtimestamp(old.changed.timestamp() + 60, UTC)
        elif old is not None:
            served.changed = old.changed
        self.feeds[path] = served

    def fail(self, path: str, status: int) -> None:
        self.feeds[path].status = status

    def statuses(self, path: str) -> list[int]:
        return [a.status for a in self.asked if a.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        served = self.feeds.get(request.path)

        def answer(status: int) -> None:
            self.asked.append(Asked(request.path, inm, ims, status))

        if served is None:
            answer(404)
            return web.Response(status=404, text="SECRET-BODY-BYTES nothing here")
        if served.status != 200:
            answer(served.status)
            return web.Response(status=served.status, text="SECRET-BODY-BYTES <b>oops</b>")
        if served.redirect is not None:
            answer(302)
            return web.Response(status=302, headers={"Location": served.redirect})
        headers = dict(served.headers)
        etag = '"' + hashlib.sha256(served.body).hexdigest()[:16] + '"'
        modified = format_datetime(served.changed, usegmt=True)
        if served.etag:
            headers["ETag"] = etag
        if served.last_modified:
            headers["Last-Modified"] = modified
        fresh = (served.etag and inm == etag) or (
            served.last_modified and inm is None and ims == modified
        )
        if fresh:
            answer(304)
            return web.Response(status=304, headers=headers)
        answer(200)
        return web.Response(body=served.body, headers=headers, content_type=served.content_type)


@asynccontextmanager
async def news_server() -> AsyncIterator[NewsServer]:
    state = NewsServer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.handle)
    runner, port = await serve_on_loopback(app, shutdown_timeout=0.1)
    state.port = port
    try:
        yield state
    finally:
        await runner.cleanup()
