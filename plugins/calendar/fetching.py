"""A calendar feed's bytes, through the bot's one fetcher (`ctx.fetcher`).

The fetcher does the work (caps, conditional requests, the guard against request
forgery, local paths); here the answer is put in the calendar's terms: `body` None when
the feed has not changed, a fingerprint of the bytes (so that a server without
validators that sends the same file again costs no parse), and a `FeedError` whatever
goes wrong, in plain words for the log and as a translatable reason for organisers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.fetching import Fetcher, FetchError
from plugins.calendar.errors import FeedError
from plugins.calendar.settings import FeedSettings

__all__ = ["Conditional", "FeedError", "Fetched", "fetch"]

ACCEPT = "text/calendar, */*;q=0.5"


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
    fetcher: Fetcher,
    since: Conditional | None,
    *,
    max_bytes: int,
    timeout: float,
) -> Fetched:
    try:
        got = await fetcher.fetch(
            feed.url,
            etag=since.etag if since is not None else None,
            last_modified=since.last_modified if since is not None else None,
            max_bytes=max_bytes,
            timeout=timeout,
            accept=ACCEPT,
        )
    except FetchError as exc:
        raise FeedError.of(exc) from None
    if got.unchanged:
        assert since is not None  # only a conditional fetch is answered 304
        return Fetched(
            None,
            got.etag or since.etag,
            got.last_modified or since.last_modified,
            since.fingerprint,
        )
    return Fetched(got.body, got.etag, got.last_modified, hashlib.sha256(got.body).hexdigest())
