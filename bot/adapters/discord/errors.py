"""discord.py's errors into the core's send errors, in one place, and the brake that stops
a storm of 401/403 answers (Discord bans clients that keep sending refused requests)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import aiohttp
import discord

from bot.core.errors import PermanentSendError, TransientSendError

log = logging.getLogger(__name__)

# Discord's codes for things that do not exist (any more): retrying cannot help.
UNKNOWN_CHANNEL: Final = 10003
UNKNOWN_MESSAGE: Final = 10008
UNKNOWN_WEBHOOK: Final = 10015
CANNOT_EDIT_OTHERS: Final = 50005
THREAD_EXISTS: Final = 160004  # a thread was already started on this message
# An interaction's token has expired (15 minutes): a 401 that says nothing of the bot's
# own token, so it must not count towards the AuthBrake.
INVALID_WEBHOOK_TOKEN: Final = 50027
POLL_EXPIRED: Final = 520001


class AuthBrake:
    """Counts refused requests (401, 403) in a sliding window; past `limit` the adapter
    stops calling Discord for `pause` seconds instead of looping into a ban."""

    def __init__(self, limit: int = 10, window: float = 60.0, pause: float = 600.0) -> None:
        self.limit = limit
        self.window = window
        self.pause = pause
        self._hits: deque[float] = deque()
        self.until = 0.0
        self.unauthorized = False

    def record(self, status: int) -> None:
        now = time.monotonic()
        if status == 401:
            # A 401 means the token itself is refused: nothing will work until it changes.
            if not self.unauthorized:
                log.error("Discord refused the bot token (401): check discord.token")
            self.unauthorized = True
        self._hits.append(now)
        while self._hits and self._hits[0] < now - self.window:
            self._hits.popleft()
        if len(self._hits) >= self.limit and self.until <= now:
            self.until = now + self.pause
            log.error(
                "%d refused Discord requests in %.0fs: pausing calls for %.0fs",
                len(self._hits),
                self.window,
                self.pause,
            )

    def check(self) -> None:
        if self.unauthorized:
            raise PermanentSendError("Discord refused the bot token (401)")
        wait = self.until - time.monotonic()
        if wait > 0:
            raise TransientSendError("paused after repeated refusals by Discord", retry_after=wait)


def convert(exc: BaseException, brake: AuthBrake | None = None) -> Exception:
    """The core error for a discord.py / aiohttp failure."""
    if isinstance(exc, discord.RateLimited):
        log.warning("Discord asks to wait %.1fs; the delivery retries then", exc.retry_after)
        return TransientSendError("rate limited by Discord", retry_after=exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        status = exc.status
        if status in (401, 403) and brake is not None and exc.code != INVALID_WEBHOOK_TOKEN:
            brake.record(status)
        if status == 429 or status >= 500:
            return TransientSendError(f"Discord answered {status}: {exc.text[:200]}")
        return PermanentSendError(f"Discord answered {status} (code {exc.code}): {exc.text[:200]}")
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return TransientSendError(f"could not reach Discord: {exc!r}")
    if isinstance(exc, TransientSendError | PermanentSendError):
        return exc
    return exc if isinstance(exc, Exception) else RuntimeError(repr(exc))


@asynccontextmanager
async def boundary(brake: AuthBrake) -> AsyncIterator[None]:
    """Run a call to Discord: refuse while braked, convert what it raises."""
    brake.check()
    try:
        yield
    except (TransientSendError, PermanentSendError):
        raise
    except (discord.DiscordException, aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise convert(exc, brake) from exc
