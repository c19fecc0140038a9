"""The IDENTIFY guard: Discord resets a bot's token after 1000 gateway logins a day, and
a crash loop (or a failover that logs in too often) gets there in hours.

Every IDENTIFY (the first of a start and each re-identify after a lost session; a RESUME
is not one) is counted in the database (`bot.storage.logins`), across instances and
restarts, against the injected clock. At `discord.identify_warn` organisers are told in
chat once a day (a delivery keyed by the date, so a second instance or a restart does
not tell them again); at `discord.identify_limit` the login is refused before it is
sent, the adapter stops with one error line saying when it may log in again, and a
start while the count is still there does not connect at all. Past a burst of logins
within ten minutes each start waits longer first (the crash-loop backoff).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Final

from bot.core.clock import Clock
from bot.core.platform import AdapterHost
from bot.storage.logins import GatewayLogins, Logins

log = logging.getLogger(__name__)

BURST_WINDOW: Final = timedelta(minutes=10)


class IdentifyLimitReached(Exception):
    """Raised from the identify hook: discord.py does not send the IDENTIFY and its
    connect loop ends (the exception is none of those it retries)."""

    def __init__(self, logins: Logins, limit: int) -> None:
        super().__init__(limit_reason(logins, limit))
        self.logins = logins
        self.limit = limit


def limit_reason(logins: Logins, limit: int) -> str:
    again = logins.allowed_again(limit)
    when = again.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if again else "now"
    return (
        f"{logins.count} gateway logins (IDENTIFY) to Discord in the last 24 h reach "
        f"discord.identify_limit ({limit}): not connecting to Discord before {when}"
    )


class IdentifyGuard:
    def __init__(
        self,
        logins: GatewayLogins,
        clock: Clock,
        *,
        warn: int,
        limit: int,
        backoff: float = 30.0,
        burst: int = 5,
        cap: float = 900.0,
    ) -> None:
        self.logins = logins
        self.clock = clock
        self.warn = warn
        self.limit = limit
        self.backoff = backoff
        self.burst = burst
        self.cap = cap
        self._warned: str | None = None  # the UTC day organisers were told about

    async def take(self) -> Logins:
        """Count this IDENTIFY; raises IdentifyLimitReached (and counts nothing) when
        the limit is reached."""
        logins = await self.logins.take(self.clock.now(), self.limit)
        if not logins.taken:
            raise IdentifyLimitReached(logins, self.limit)
        return logins

    async def blocked(self) -> IdentifyLimitReached | None:
        """At a start: the refusal, while the day's logins are still at the limit."""
        logins = await self.logins.recent(self.clock.now())
        return IdentifyLimitReached(logins, self.limit) if logins.count >= self.limit else None

    def should_warn(self, logins: Logins) -> bool:
        return logins.count >= self.warn

    async def warn_once(self, logins: Logins, host: AdapterHost) -> None:
        """Past the warning: tell organisers once a day (the delivery key holds the
        date: another instance, or this one started again, does not tell them twice)."""
        today = warn_date(self.clock.now())
        if not self.should_warn(logins) or self._warned == today:
            return
        self._warned = today
        log.warning(
            "%d gateway logins (IDENTIFY) to Discord in the last 24 h: past "
            "discord.identify_warn (%d); at discord.identify_limit (%d) the bot stops "
            "connecting to Discord",
            logins.count,
            self.warn,
            self.limit,
        )
        try:
            await host.alert(
                f"identify-warn:{today}",
                "gateway.identify_warn",
                count=logins.count,
                warn=self.warn,
                limit=self.limit,
            )
        except Exception:
            log.exception("could not tell organisers about the Discord gateway logins")

    async def startup_delay(self) -> float:
        """Seconds to wait before this start's login: none until `burst` logins within
        ten minutes, then `backoff` doubling with each further one, up to `cap`."""
        now = self.clock.now()
        logins = await self.logins.recent(now)
        since = (now - BURST_WINDOW).timestamp()
        recent = sum(1 for t in logins.times if t > since)
        if recent < self.burst or self.backoff <= 0:
            return 0.0
        return float(min(self.cap, self.backoff * 2 ** (recent - self.burst)))


def warn_date(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()
