"""A feed server on 127.0.0.1 for the fetcher's tests, that records what it was asked
and can misbehave on purpose; and a resolver that answers from a table."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.support import serve_on_loopback

LAST_MODIFIED = "Wed, 25 Nov 2026 10:00:00 GMT"
FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>Nyheter</title></channel></rss>"
MB = 1_000_000


def gzip_bomb(inflated: int) -> bytes:
    """`inflated` zero bytes, gzipped: about a thousandth of that on the wire."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    parts = [z.compress(block) for _ in range(inflated // MB)]
    parts.append(z.flush())
    return b"".join(parts)


@dataclass
class Seen:
    path: str
    headers: Mapping[str, str]


@dataclass
class FeedServer:
    base: str = ""
    port: int = 0
    body: bytes = FEED
    seen: list[Seen] = field(default_factory=list)
    streamed: int = 0  # bytes of /big written before the client hung up
    bomb: bytes = b""
    never: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.path_qs, dict(request.headers)))
        name = request.match_info["name"]
        handler = getattr(self, f"_{name}", None)
        if handler is None:
            return web.Response(status=404, text="no such thing here")
        response: web.StreamResponse = await handler(request)
        return response

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED, "Set-Cookie": "visit=1"}
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if inm == etag or (inm is None and ims == LAST_MODIFIED):
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=self.body, headers=headers, content_type="application/rss+xml", charset="utf-8"
        )

    async def _gzip(self, request: web.Request) -> web.StreamResponse:
        coding = request.query.get("as", "gzip")
        if coding == "gzip":
            body = gzip.compress(self.body)
        elif coding == "zlib":
            body = zlib.compress(self.body)
        else:
            raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            body = raw.compress(self.body) + raw.flush()
        name = "gzip" if coding == "gzip" else "deflate"
        return web.Response(body=body, headers={"Content-Encoding": name})

    async def _brotli(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"\x8b\x02\x80hello\x03", headers={"Content-Encoding": "br"})

    async def _bomb(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.bomb, headers={"Content-Encoding": "gzip"})

    async def _big(self, request: web.Request) -> web.StreamResponse:
        """20 MB, chunked: no Content-Length to refuse it by."""
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            while self.streamed < 20 * MB:
                await response.write(chunk)
                self.streamed += len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client hung up at its cap
        return response

    async def _declared(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"y" * (2 * MB))

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await self.never.wait()  # never set: the client's time cap ends it
        return web.Response(text="too late")

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        """Headers at once, then a byte now and then, forever."""
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            while not self.never.is_set():
                await response.write(b".")
                await asyncio.sleep(0.02)
        except ConnectionError:
            pass
        return response

    async def _status(self, request: web.Request) -> web.StreamResponse:
        code = int(request.query["code"])
        headers = {"Retry-After": request.query["wait"]} if "wait" in request.query else {}
        return web.Response(status=code, text="SECRET-BODY-BYTES <b>oops</b>", headers=headers)

    async def _go(self, request: web.Request) -> web.StreamResponse:
        """A redirect to `to`, or `n` redirects in a row before the feed."""
        if "to" in request.query:
            raise web.HTTPFound(request.query["to"])
        left = int(request.query.get("n", "0"))
        if left > 0:
            raise web.HTTPMovedPermanently(f"/go?n={left - 1}")
        return await self._feed(request)

    async def _bare(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=302)  # no Location

    async def _cookie(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=request.headers.get("Cookie", "none"))


@asynccontextmanager
async def feed_server() -> AsyncIterator[FeedServer]:
    state = FeedServer()
    app = web.Application()
    app.router.add_get("/{name}", state.handle)
    runner, port = await serve_on_loopback(app, shutdown_timeout=0.1)
    state.port = port
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.never.set()
        await runner.cleanup()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TableResolver(AbstractResolver):
    """Answers names from a table (one list of addresses per lookup, the last repeated),
    so no test asks a real DNS server, and notes every question."""

    def __init__(self, table: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self.table = {name: list(answers) for name, answers in table.items()}
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        answers = self.table.get(host)
        if not answers:
            raise OSError(f"{host}: no such name in the table")
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass
