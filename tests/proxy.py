"""A reverse proxy on 127.0.0.1 in front of a peer (Synapse, the Discord stand-in): every
call goes through unchanged, and a subclass sees each answer before it is passed back
(`answered`), to record it or to act on it (kill the bot after the peer acted on a call
and before the bot hears of it)."""

from __future__ import annotations

import time
from typing import Final

from aiohttp import ClientSession, ClientTimeout, web

from tests.support import serve_on_loopback

# Headers of one hop, not passed on. Without accept-encoding the peer answers
# uncompressed, so a listener reads the body as it is.
HOP_HEADERS: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)


class ReverseProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # No timeout: long polls of /sync stay open for their whole duration.
        self._session = ClientSession(timeout=ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner, self.port = await serve_on_loopback(app, shutdown_timeout=1.0)

    async def stop(self) -> None:
        # Upstream first: long polls of killed bots would hold the server's shutdown.
        if self._session is not None:
            await self._session.close()
        runner, self._runner = self._runner, None  # a second stop finds nothing
        if runner is not None:
            await runner.cleanup()

    def answered(
        self, request: web.Request, body: bytes, status: int, data: bytes, sent_at: float
    ) -> None:
        """The peer answered `request` (its `body`) with `status` and `data`; `sent_at`
        is when the request reached the proxy (monotonic)."""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        sent_at = time.monotonic()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + str(request.rel_url),
            data=body or None,
            headers=headers,
            allow_redirects=False,
        ) as upstream:
            data = await upstream.read()
            status = upstream.status
            back = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in HOP_HEADERS and k.lower() != "content-encoding"
            }
        self.answered(request, body, status, data, sent_at)
        return web.Response(status=status, body=data, headers=back)
