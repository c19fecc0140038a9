"""Rate-limit buckets and injected failures, answered the way Discord answers them."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer whose content type is exactly `application/json`, as Discord's is
    (discord.py parses bodies only for that exact value)."""
    out = {"Content-Type": "application/json", **(headers or {})}
    if status == 204:
        return web.Response(
            status=204, headers={k: v for k, v in out.items() if k != "Content-Type"}
        )
    return web.Response(status=status, body=json.dumps(data).encode(), headers=out)


@dataclass
class Injection:
    """The next `count` requests whose route template contains `route` fail with
    `status`. 429s carry `Via` and `retry_after` (route or global scope); other statuses
    carry `code`. `after_store`: the request takes effect first, then fails (a 5xx after
    Discord stored the message)."""

    route: str
    status: int = 429
    count: int = 1
    retry_after: float = 0.2
    global_: bool = False
    code: int = 0
    after_store: bool = False
    via: bool = True
    used: int = 0

    def matches(self, route: str) -> bool:
        return self.used < self.count and self.route in route

    def response(self) -> web.Response:
        if self.status == 429:
            headers = {"Retry-After": str(max(1, round(self.retry_after)))}
            if self.via:
                headers["Via"] = "1.1 google"
            headers["X-RateLimit-Scope"] = "global" if self.global_ else "user"
            if self.global_:
                headers["X-RateLimit-Global"] = "true"
            body = {
                "message": "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.global_,
            }
            return json_response(body, 429, headers)
        return json_response({"message": f"injected {self.status}", "code": self.code}, self.status)


class RateLimiter:
    """Per-bucket limits (route template + major parameter), with Discord's headers."""

    def __init__(self, limit: int = 50, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._buckets: dict[str, tuple[int, float]] = {}
        self.injections: list[Injection] = []
        self.global_until = 0.0

    def take_injection(self, route: str) -> Injection | None:
        for injection in self.injections:
            if injection.matches(route):
                injection.used += 1
                if injection.status == 429 and injection.global_:
                    self.global_until = time.monotonic() + injection.retry_after
                return injection
        return None

    def global_blocked(self) -> float:
        return max(0.0, self.global_until - time.monotonic())

    def consume(self, route: str, major: str) -> tuple[dict[str, str], float]:
        """Take one request from the bucket: its headers, and a wait (> 0: answer 429)."""
        key = f"{route}:{major}"
        now = time.monotonic()
        remaining, reset_at = self._buckets.get(key, (self.limit, now + self.window))
        if now >= reset_at:
            remaining, reset_at = self.limit, now + self.window
        wait = 0.0
        if remaining <= 0:
            wait = reset_at - now
        else:
            remaining -= 1
        self._buckets[key] = (remaining, reset_at)
        reset_after = max(0.0, reset_at - now)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(route.encode()).hexdigest()[:16],
        }
        return headers, wait
