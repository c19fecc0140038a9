"""Reading a body within a cap: an HTTP response as it streams, or a local file.

The cap counts the body as the caller gets it, after decompression, and the bytes on
the wire too: a gzip bomb (a few kilobytes that inflate to gigabytes) stops as soon as
its output passes the cap, and each inflate step makes at most what is left under the
cap, so memory stays near the cap whatever the ratio. aiohttp's own decompression is
off (the session asks for `auto_decompress=False`); we ask for gzip and deflate only.
"""

from __future__ import annotations

import asyncio
import email.utils
import mimetypes
import os
import stat
import zlib
from pathlib import Path

import aiohttp

from bot.fetching_types import Fetched, FetchError

CHUNK = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS


class _Inflater:
    """Streams one gzip or deflate body into `out`, never past the cap."""

    def __init__(self, coding: str) -> None:
        self._wbits = _GZIP if coding in ("gzip", "x-gzip") else _ZLIB
        # "deflate" is zlib-wrapped by the standard, raw by some servers: either works.
        self._may_be_raw = self._wbits == _ZLIB
        self._z = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes, out: bytearray, cap: int) -> None:
        while data:
            try:
                piece = self._z.decompress(data, cap - len(out) + 1)
            except zlib.error:
                if self._may_be_raw and not self._started:
                    self._may_be_raw = False
                    self._wbits = _RAW
                    self._z = zlib.decompressobj(_RAW)
                    continue
                raise FetchError.undecodable() from None
            self._started = True
            out += piece
            if len(out) > cap:
                raise FetchError.too_large(cap)
            data = self._z.unconsumed_tail
            if self._z.eof:
                # A gzip body may hold several members, one after the other.
                data = self._z.unused_data
                if data:
                    self._z = zlib.decompressobj(self._wbits)

    def finish(self, out: bytearray, cap: int) -> None:
        if not self._started:
            return
        while not self._z.eof:
            try:
                piece = self._z.decompress(b"", cap - len(out) + 1)
            except zlib.error:
                raise FetchError.undecodable() from None
            if not piece:
                break
            out += piece
            if len(out) > cap:
                raise FetchError.too_large(cap)
        if not self._z.eof:
            raise FetchError.undecodable()  # cut short


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body of `resp`, decompressed, at most `cap` bytes on the wire and after."""
    coding = resp.headers.get("Content-Encoding", "").strip().lower()
    if coding in ("", "identity"):
        inflater = None
    elif coding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(coding)
    else:
        raise FetchError.encoding(coding)
    declared = resp.content_length
    if declared is not None and declared > cap:
        raise FetchError.too_large(cap, declared)
    out = bytearray()
    wire = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        wire += len(chunk)
        if wire > cap:
            raise FetchError.too_large(cap)
        if inflater is None:
            out += chunk
            if len(out) > cap:
                raise FetchError.too_large(cap)
        else:
            inflater.feed(chunk, out, cap)
    if inflater is not None:
        inflater.finish(out, cap)
    return bytes(out)


def file_tag(st: os.stat_result) -> str:
    """A local file's validator, as an ETag: it changes with its size or mtime."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def _not_modified_since(st: os.stat_result, last_modified: str) -> bool:
    try:
        since = email.utils.parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False
    return int(st.st_mtime) <= since.timestamp()


def _read(path: Path, cap: int) -> tuple[os.stat_result, bytes]:
    # Checked through the descriptor, so what was checked is what is read; opened
    # without blocking, so a FIFO put in its place cannot hold a thread for good.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FetchError.not_a_file()
        if st.st_size > cap:
            raise FetchError.too_large(cap, st.st_size)
        body = fh.read(cap + 1)
    if len(body) > cap:  # it grew since
        raise FetchError.too_large(cap)
    return st, body


def _stat(path: Path) -> os.stat_result:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise FetchError.not_a_file()
    return st


async def read_file(
    location: str, *, etag: str | None, last_modified: str | None, cap: int
) -> Fetched:
    """A local file as a fetch: 304 when its size and mtime are as `etag` says (or it
    is no newer than `last_modified`), else its bytes, at most `cap`."""
    path = Path(location)
    try:
        st = await asyncio.to_thread(_stat, path)
        if (etag is not None and etag == file_tag(st)) or (
            etag is None and last_modified is not None and _not_modified_since(st, last_modified)
        ):
            return Fetched(304, b"", location, etag, last_modified)
        st, body = await asyncio.to_thread(_read, path, cap)
    except FileNotFoundError:
        raise FetchError.file_unreadable("no such file") from None
    except OSError as exc:
        raise FetchError.file_unreadable(exc.strerror or exc.__class__.__name__) from None
    return Fetched(
        200,
        body,
        location,
        etag=file_tag(st),
        last_modified=email.utils.formatdate(st.st_mtime, usegmt=True),
        content_type=mimetypes.guess_type(path.name)[0],
    )
