"""Prometheus metrics of one App, in a registry of its own (never the global one, so
that two Apps in one test process do not collide).

Counters and the send-time histogram move as things happen; the gauges that describe
state (the outbox, the adapters, the database, what plugins count) are read when
`/metrics` is scraped, in `refresh`. Plugins add gauges through `ctx.metrics`.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

PREFIX: Final = "samverkan_"
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,60}$")
# Seconds a platform takes to accept a post: from a console write to a slow homeserver.
_SEND_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

GaugeFn = Callable[[], float | int | Awaitable[float | int]]


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_age: float  # seconds


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sends = Counter(
            PREFIX + "sends", "Posts the platforms accepted", ["platform"], registry=r
        )
        self.send_failures = Counter(
            PREFIX + "send_failures",
            "Attempts a platform did not accept (kind: transient, permanent, unexpected)",
            ["platform", "kind"],
            registry=r,
        )
        self.send_seconds = Histogram(
            PREFIX + "send_seconds",
            "Time a platform took to answer one attempt",
            ["platform"],
            buckets=_SEND_BUCKETS,
            registry=r,
        )
        self.inbound = Counter(
            PREFIX + "inbound_events", "Events the adapters handed over", ["platform"], registry=r
        )
        self.last_event_age = Gauge(
            PREFIX + "last_event_age_seconds",
            "Seconds since the adapter's last event (since the start if none yet)",
            ["platform"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            PREFIX + "outbox_pending", "Posts waiting in the outbox", ["platform"], registry=r
        )
        self.outbox_oldest = Gauge(
            PREFIX + "outbox_oldest_pending_seconds",
            "Age of the oldest post waiting in the outbox (0 when none waits)",
            ["platform"],
            registry=r,
        )
        self.connected = Gauge(
            PREFIX + "adapter_connected",
            "1 while the adapter is connected",
            ["platform"],
            registry=r,
        )
        self.writable = Gauge(
            PREFIX + "database_writable", "1 while the database takes writes", registry=r
        )
        self.active = Gauge(
            PREFIX + "instance_active",
            "1 while this instance is the active one, 0 while it is a warm standby",
            registry=r,
        )
        self._started = time.monotonic()
        self._last_event: dict[str, float] = {}
        self._gauges: list[tuple[str, Gauge, GaugeFn]] = []
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    # -- as things happen -------------------------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        # `labels()` validates and locks on every call; the label values here are few
        # (platforms, outcomes), so each child is looked up once.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def attempt(self, platform: str, outcome: str, seconds: float) -> None:
        """One delivery attempt (`bot.delivery_actions.AttemptObserver`)."""
        self._child(self.send_seconds, platform).observe(seconds)
        if outcome == "sent":
            self._child(self.sends, platform).inc()
        else:
            self._child(self.send_failures, platform, outcome).inc()

    def event_in(self, platform: str) -> None:
        self._child(self.inbound, platform).inc()
        self._last_event[platform] = time.monotonic()

    def for_plugin(self, owner: str) -> PluginMetrics:
        return PluginMetrics(self, owner)

    def add_gauge(self, owner: str, name: str, help_text: str, fn: GaugeFn) -> None:
        if not _NAME.match(name):
            raise ValueError(f"metric name {name!r}: lower-case letters, digits and _")
        gauge = Gauge(PREFIX + name, help_text, registry=self.registry)
        self._gauges.append((owner, gauge, fn))

    # -- when scraped -----------------------------------------------------------------

    async def refresh(
        self,
        platforms: Mapping[str, bool],
        backlog: Mapping[str, Backlog],
        writable: bool,
    ) -> None:
        """Set the state gauges: `platforms` maps each adapter to whether it is
        connected; `backlog` the outbox per platform."""
        now = time.monotonic()
        for platform, up in platforms.items():
            self.connected.labels(platform).set(1 if up else 0)
            since = self._last_event.get(platform, self._started)
            self.last_event_age.labels(platform).set(now - since)
        for platform in set(platforms) | set(backlog):
            waiting = backlog.get(platform, Backlog(0, 0.0))
            self.outbox_pending.labels(platform).set(waiting.pending)
            self.outbox_oldest.labels(platform).set(waiting.oldest_age)
        self.writable.set(1 if writable else 0)
        for owner, gauge, fn in self._gauges:
            try:
                value = fn()
                if inspect.isawaitable(value):
                    value = await value
                gauge.set(float(value))
            except Exception:
                # One plugin's broken count must not take the whole scrape down.
                log.warning("plugin %s: reading gauge %s failed", owner, gauge, exc_info=True)
                gauge.set(float("nan"))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class PluginMetrics:
    """What a plugin gets as `ctx.metrics`: gauges read when metrics are scraped."""

    def __init__(self, metrics: Metrics | None, owner: str) -> None:
        self._metrics = metrics
        self._owner = owner

    def gauge(self, name: str, help_text: str, fn: GaugeFn) -> None:
        """Export `samverkan_<name>`, the value of `fn()` (a number, or an awaitable of
        one) at each scrape. Register in `on_start`."""
        if self._metrics is not None:
            self._metrics.add_gauge(self._owner, name, help_text, fn)


def no_metrics() -> PluginMetrics:
    """For a PluginContext built without an App (tests): gauges go nowhere."""
    return PluginMetrics(None, "")
