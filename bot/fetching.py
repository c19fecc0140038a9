"""The one way the bot fetches from the web (calendar feeds, news feeds): `Fetcher`.

    fetched = await ctx.fetcher.fetch(url, etag=last.etag, last_modified=last.last_modified)
    if fetched.unchanged: ...              # 304: keep what you have
    else: parse(fetched.body, fetched.headers)

Failures raise `FetchError` (`kind`: blocked, offline, http, too_large, bad_content;
`reason(ctx.t, lang)` for organisers, `str()` for the log; `status` and `retry_after`
for kind http). What every fetch gets:

- a total time cap (connecting, redirects and body together) and a size cap counted
  after decompression and on the wire (see bot/fetching_body.py);
- conditional requests: pass the `etag` / `last_modified` of the last good fetch and an
  unchanged source answers 304 (`Fetched.unchanged`, an empty body);
- redirects followed by us, at most five, each hop checked like the first: only http
  and https, and only addresses the SSRF guard lets through (bot/fetching_guard.py;
  `[fetching] allow` names the internal networks that may be fetched anyway);
- a User-Agent naming the bot; no cookies kept; no proxy from the environment.

A location without a scheme is a local path (relative to the working directory), read
with the same cap, 304 while its size and mtime are unchanged (its `etag` says so).
Anything with another scheme (file:, ftp:, javascript:, data: ...) is refused. Pass
`local=False` for an address typed in chat, so that a path is refused too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import ClientResponse
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot import __version__
from bot.core.clock import Clock
from bot.fetching_body import ACCEPT_ENCODING, read_capped, read_file
from bot.fetching_guard import AddressPolicy, GuardedResolver, Network, Refused, literal, pinned
from bot.fetching_types import Fetched, FetchError, FetchKind

if TYPE_CHECKING:
    from bot.settings import FetchingSettings

__all__ = ["FetchError", "FetchKind", "Fetched", "Fetcher"]

log = logging.getLogger(__name__)

USER_AGENT: Final = f"Samverkan/{__version__} (feed and calendar fetcher)"
DEFAULT_MAX_BYTES: Final = 10_000_000
DEFAULT_TIMEOUT: Final = 30.0
MAX_REDIRECTS: Final = 5
# A server's Retry-After beyond this is taken as this: a consumer retries after a day.
MAX_RETRY_AFTER: Final = 86_400.0
# Polite to one server hosting many feeds, and a bound on sockets in all.
CONNECTIONS: Final = 32
CONNECTIONS_PER_HOST: Final = 8

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_KEPT = (
    "content-type",
    "content-language",
    "content-location",
    "etag",
    "last-modified",
    "date",
    "cache-control",
    "expires",
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def is_path(location: str) -> bool:
    """True for a local path: no `scheme:` before the first slash."""
    return _SCHEME.match(location.strip()) is None


class Fetcher:
    """Made once by the App and shared by every plugin (`ctx.fetcher`); `close()` at
    the end. Its aiohttp session is made on first use, inside the running loop."""

    def __init__(
        self,
        allow: Iterable[Network] = (),
        *,
        resolver: AbstractResolver | None = None,
        clock: Clock | None = None,
        user_agent: str = USER_AGENT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        max_redirects: int = MAX_REDIRECTS,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self.policy = AddressPolicy(allow)
        self._resolver = GuardedResolver(self.policy, resolver)
        self._clock = clock
        self._user_agent = user_agent
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._traces = list(trace_configs)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: FetchingSettings, *, clock: Clock | None = None) -> Fetcher:
        return cls(settings.allow, clock=clock)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=self._resolver,
                # Each new connection looks the name up and checks it again.
                use_dns_cache=False,
                limit=CONNECTIONS,
                limit_per_host=CONNECTIONS_PER_HOST,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent, "Accept-Encoding": ACCEPT_ENCODING},
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None),  # ours covers every step
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                trace_configs=self._traces or None,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._resolver.close()

    async def fetch(
        self,
        location: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,
        accept: str | None = None,
        local: bool = True,
    ) -> Fetched:
        """Fetch `location` (an http(s) URL, or a local path when `local`)."""
        cap = max_bytes or self.max_bytes
        seconds = timeout or self.timeout
        try:
            async with asyncio.timeout(seconds):
                if is_path(location):
                    if not local:
                        raise FetchError.local_refused()
                    return await read_file(
                        location.strip(), etag=etag, last_modified=last_modified, cap=cap
                    )
                return await self._web(location.strip(), etag, last_modified, cap, accept)
        except TimeoutError:
            raise FetchError.timeout(seconds) from None

    async def _web(
        self,
        location: str,
        etag: str | None,
        last_modified: str | None,
        cap: int,
        accept: str | None,
    ) -> Fetched:
        headers = {"Accept": accept or "*/*"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            url = URL(location)
        except ValueError:
            raise FetchError.scheme() from None
        for hop in range(self.max_redirects + 1):
            answer = await self._check(url)
            with pinned(url.raw_host or "", answer):
                async with self._get(url, headers) as resp:
                    if resp.status not in _REDIRECTS:
                        return await self._answer(resp, headers, cap)
                    if hop == self.max_redirects:
                        raise FetchError.redirects(resp.status, self.max_redirects)
                    url = _redirect_target(resp)
                    log.debug("fetch: %s redirects (%d)", resp.url.host, resp.status)
        raise AssertionError("unreachable: the last hop returns or raises")

    async def _check(self, url: URL) -> list[ResolveResult]:
        """Refuse a hop before any packet leaves: its scheme, and every address its
        host is; the answer returned is what the connection may use."""
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise FetchError.scheme()
        host = url.raw_host
        ip = literal(host)
        if ip is not None:
            # aiohttp connects to a literal without asking the resolver: check it here.
            self.policy.check(ip)
            return []
        return await self._resolver.lookup(host, url.port or 0)

    @asynccontextmanager
    async def _get(self, url: URL, headers: dict[str, str]) -> AsyncIterator[ClientResponse]:
        """One GET without aiohttp's redirects, its failures turned into FetchError."""
        try:
            resp = await self._http().get(url, headers=headers, allow_redirects=False)
        except (aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, url) from None
        try:
            yield resp
        except (aiohttp.ClientError, OSError) as exc:  # while the body streamed
            resp.close()
            raise _translate(exc, url) from None
        except BaseException:
            # Closed, not released: a body left unread (over the cap, say) is not
            # drained for the pool; its connection is dropped.
            resp.close()
            raise
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()  # an error page, unread

    async def _answer(self, resp: ClientResponse, headers: dict[str, str], cap: int) -> Fetched:
        conditional = "If-None-Match" in headers or "If-Modified-Since" in headers
        kept = MappingProxyType({k: resp.headers[k] for k in _KEPT if k in resp.headers})
        url = str(resp.url.with_user(None))
        if resp.status == 304 and conditional:
            return Fetched(
                304,
                b"",
                url,
                kept.get("etag") or headers.get("If-None-Match"),
                kept.get("last-modified") or headers.get("If-Modified-Since"),
                None,
                kept,
            )
        if resp.status != 200:
            raise FetchError.http(resp.status, self._retry_after(resp))
        body = await read_capped(resp, cap)
        content_type = kept.get("content-type")
        return Fetched(
            200,
            body,
            url,
            kept.get("etag"),
            kept.get("last-modified"),
            content_type.split(";", 1)[0].strip().lower() if content_type else None,
            kept,
        )

    def _retry_after(self, resp: ClientResponse) -> float | None:
        value = resp.headers.get("Retry-After", "").strip()
        if not value:
            return None
        if value.isdigit():
            return min(float(value), MAX_RETRY_AFTER)
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        now = self._clock.now().timestamp() if self._clock is not None else time.time()
        return min(max(0.0, when - now), MAX_RETRY_AFTER)


def _redirect_target(resp: ClientResponse) -> URL:
    target = resp.headers.get("Location", "").strip()
    if not target:
        raise FetchError.bad_redirect(resp.status)
    try:
        return resp.url.join(URL(target))
    except ValueError:
        raise FetchError.bad_redirect(resp.status) from None


def _translate(exc: aiohttp.ClientError | OSError, url: URL) -> FetchError:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, Refused):
            return exc.os_error.error
        return FetchError.no_such_name(url.raw_host or "")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return FetchError.tls()
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchError.scheme()
    if isinstance(exc, aiohttp.ClientResponseError):
        return FetchError.malformed()
    detail = exc.__class__.__name__
    if isinstance(exc, aiohttp.ClientOSError) and exc.strerror:
        detail += f": {exc.strerror}"
    return FetchError.unreachable(detail)
