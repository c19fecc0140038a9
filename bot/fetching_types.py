"""What a fetch gives: the answer (`Fetched`) or why there is none (`FetchError`).

A `FetchError` has a kind for the caller's policy, a reason for organisers and a phrase
for the log.

`kind` is what a consumer decides on (back off when offline, pause on 410 Gone, give up
on blocked); `reason_key` and `params` are an i18n key under `fetching.` in
bot/locales, in plain words and never with bytes of the response; `str()` is a short
English phrase for log lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

FetchKind = Literal["blocked", "offline", "http", "too_large", "bad_content"]

Translate = Callable[..., str]


@dataclass(frozen=True, slots=True)
class Fetched:
    """One answer. `status` is 200, or 304 when the source has not changed since the
    `etag` / `last_modified` given (then `body` is empty). `url` is where the body came
    from in the end (after redirects; a local path as given). `headers` holds the few
    response headers a parser needs (lower-case names: content-type, content-location,
    content-language, etag, last-modified, date, cache-control, expires)."""

    status: int
    body: bytes
    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def unchanged(self) -> bool:
        return self.status == 304


def size_label(limit: int) -> str:
    """A cap as people read it: "100 kB", "5 MB" (rounded; the exact figure is logged)."""
    if limit >= 1_000_000:
        return f"{round(limit / 1_000_000)} MB"
    return f"{max(1, round(limit / 1000))} kB"


class FetchError(Exception):
    """A fetch that gave nothing usable. `status` is set for kind "http" (404 and 410
    are told apart by it); `retry_after` is the server's wish in seconds (429, 503)."""

    def __init__(
        self,
        kind: FetchKind,
        message: str,
        reason_key: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        **params: object,
    ) -> None:
        super().__init__(message)
        self.kind: FetchKind = kind
        self.reason_key = reason_key
        self.params: dict[str, object] = params
        self.status = status
        self.retry_after = retry_after

    @property
    def gone(self) -> bool:
        """410 Gone: the source says it is removed for good."""
        return self.kind == "http" and self.status == 410

    def reason(self, t: Translate, language: str | None = None) -> str:
        """The reason in `language`, e.g. `err.reason(ctx.t, lang)`."""
        return t(self.reason_key, language, **self.params)

    # -- the ways a fetch fails ----------------------------------------------------------

    @classmethod
    def scheme(cls) -> FetchError:
        return cls("blocked", "not an http(s) address", "fetching.scheme")

    @classmethod
    def local_refused(cls) -> FetchError:
        return cls("blocked", "a local path is not accepted here", "fetching.local_refused")

    @classmethod
    def address(cls, what: str) -> FetchError:
        # `what` names the range (loopback, private...) for the log; organisers only
        # hear that the address is internal.
        return cls("blocked", f"the address is {what} and not allowed", "fetching.internal")

    @classmethod
    def not_a_file(cls) -> FetchError:
        return cls("blocked", "it is not a regular file", "fetching.not_a_file")

    @classmethod
    def no_such_name(cls, host: str) -> FetchError:
        return cls(
            "offline", f"could not reach it: no such name {host}", "fetching.no_name", host=host
        )

    @classmethod
    def unreachable(cls, detail: str) -> FetchError:
        return cls("offline", f"could not reach it: {detail}", "fetching.offline")

    @classmethod
    def timeout(cls, seconds: float) -> FetchError:
        return cls(
            "offline",
            f"no complete answer within {seconds:g} s",
            "fetching.timeout",
            seconds=f"{seconds:g}",
        )

    @classmethod
    def tls(cls) -> FetchError:
        return cls(
            "offline", "could not reach it: its TLS certificate is not valid", "fetching.tls"
        )

    @classmethod
    def file_unreadable(cls, detail: str) -> FetchError:
        return cls("offline", f"cannot read the file: {detail}", "fetching.file_unreadable")

    @classmethod
    def http(cls, status: int, retry_after: float | None = None) -> FetchError:
        key = {
            404: "fetching.not_found",
            410: "fetching.gone",
            429: "fetching.busy",
            503: "fetching.busy",
        }.get(status, "fetching.http")
        return cls(
            "http",
            f"the server answered HTTP {status}",
            key,
            status=status,
            retry_after=retry_after,
            code=status,
        )

    @classmethod
    def redirects(cls, status: int, limit: int) -> FetchError:
        return cls(
            "http",
            f"too many redirects (more than {limit})",
            "fetching.redirects",
            status=status,
            limit=limit,
        )

    @classmethod
    def bad_redirect(cls, status: int) -> FetchError:
        return cls(
            "http",
            f"a redirect ({status}) without a usable Location",
            "fetching.bad_redirect",
            status=status,
        )

    @classmethod
    def too_large(cls, limit: int, size: int | None = None) -> FetchError:
        message = (
            f"it is {size} bytes, more than the cap of {limit}"
            if size is not None
            else f"it is larger than the cap of {limit} bytes"
        )
        return cls("too_large", message, "fetching.too_large", limit=size_label(limit))

    @classmethod
    def encoding(cls, name: str) -> FetchError:
        # The header's value is the server's; only a short printable piece is logged.
        shown = "".join(c for c in name[:32] if c.isprintable())
        return cls(
            "bad_content", f"it came in an encoding we cannot read ({shown!r})", "fetching.encoding"
        )

    @classmethod
    def malformed(cls) -> FetchError:
        return cls("bad_content", "the answer is not valid HTTP", "fetching.malformed")

    @classmethod
    def undecodable(cls) -> FetchError:
        return cls("bad_content", "its compressed body is damaged", "fetching.damaged")
