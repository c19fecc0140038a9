"""Fetching a feed's bytes ourselves: conditional requests, a size cap and a time cap.

HTTP feeds send If-None-Match / If-Modified-Since from the last good fetch and get 304
when nothing changed; local files compare their modification time and size. Whatever
goes wrong becomes a `FeedError` with a reason fit for a log line and for organisers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from plugins.calendar.settings import FeedSettings

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_MAX_REDIRECTS = 5


class FeedError(Exception):
    """A feed could not be used this time; `str()` says why, in plain words."""


@dataclass(frozen=True, slots=True)
class Conditional:
    etag: str | None = None
    last_modified: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """`body` is None when the source did not change since `Conditional`."""

    body: bytes | None
    etag: str | None
    last_modified: str | None
    fingerprint: str | None


async def fetch(
    feed: FeedSettings,
    session: aiohttp.ClientSession,
    since: Conditional | None,
    *,
    max_bytes: int,
    timeout: float,
) -> Fetched:
    try:
        async with asyncio.timeout(timeout):
            if feed.is_remote:
                return await _fetch_http(feed.url, session, since, max_bytes)
            return await _read_local(feed.url, since, max_bytes)
    except TimeoutError:
        raise FeedError(f"no complete answer within {timeout:g} s") from None


async def _fetch_http(
    url: str, session: aiohttp.ClientSession, since: Conditional | None, max_bytes: int
) -> Fetched:
    headers = {"Accept": "text/calendar, */*;q=0.5"}
    if since is not None and since.etag:
        headers["If-None-Match"] = since.etag
    if since is not None and since.last_modified:
        headers["If-Modified-Since"] = since.last_modified
    try:
        async with session.get(url, headers=headers, max_redirects=_MAX_REDIRECTS) as resp:
            if resp.status == 304 and since is not None:
                return Fetched(None, since.etag, since.last_modified, since.fingerprint)
            if resp.status != 200:
                raise FeedError(f"the server answered HTTP {resp.status}")
            declared = resp.content_length
            if declared is not None and declared > max_bytes:
                raise FeedError(f"it is {declared} bytes, more than the cap of {max_bytes}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"it is larger than the cap of {max_bytes} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            return Fetched(
                body,
                resp.headers.get("ETag"),
                resp.headers.get("Last-Modified"),
                hashlib.sha256(body).hexdigest(),
            )
    except aiohttp.TooManyRedirects:
        raise FeedError("too many redirects") from None
    except aiohttp.ClientError as exc:
        raise FeedError(f"could not reach it: {exc.__class__.__name__}: {exc}") from None


async def _read_local(location: str, since: Conditional | None, max_bytes: int) -> Fetched:
    path = Path(location.removeprefix("file://"))
    try:
        stat = await asyncio.to_thread(path.stat)
    except OSError as exc:
        raise FeedError(f"cannot read the file: {exc.strerror or exc}") from None
    fingerprint = f"{stat.st_mtime_ns}:{stat.st_size}"
    if since is not None and since.fingerprint == fingerprint:
        return Fetched(None, None, None, fingerprint)
    if stat.st_size > max_bytes:
        raise FeedError(f"it is {stat.st_size} bytes, more than the cap of {max_bytes}")
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise FeedError(f"cannot read the file: {exc.strerror or exc}") from None
    if len(body) > max_bytes:  # it grew between stat and read
        raise FeedError(f"it is larger than the cap of {max_bytes} bytes")
    return Fetched(body, None, None, fingerprint)
