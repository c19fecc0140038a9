"""Starting the adapters, each on its own, so that no platform holds up the others.

A platform that does not answer at start (`PlatformUnavailable`, or a database that
cannot be written yet) is tried again with backoff while the console and the other
platforms run; delivery holds its posts for that platform until it is ready. A platform
that refuses the bot (`StartRefused`: a bad password or token) stops the whole bot with
one line and exit code 2, as any configuration mistake does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from bot.core.errors import PlatformUnavailable, StartRefused
from bot.core.platform import Adapter, AdapterHost
from bot.delivery import Delivery
from bot.storage.health import StorageUnavailable

log = logging.getLogger(__name__)

# How long the App's start waits for every adapter's first try before going on.
FIRST_TRY_WAIT: Final = 10.0
# Capped low: a failed connect is cheap, and the bot should be back soon after the
# platform is.
BACKOFF_MAX: Final = 15.0


class AdapterStarter:
    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        host_for: Callable[[Adapter], AdapterHost],
        delivery: Delivery,
        stopping: asyncio.Event,
        request_stop: Callable[[], None],
        *,
        backoff: float = 1.0,
    ) -> None:
        self._adapters = dict(adapters)
        self._host_for = host_for
        self._delivery = delivery
        self._stopping = stopping
        self._request_stop = request_stop
        self._backoff = backoff
        self._started = {name: asyncio.Event() for name in self._adapters}
        self._tried = {name: asyncio.Event() for name in self._adapters}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.fatal: BaseException | None = None
        self.problems: dict[str, str] = {}  # why an adapter is not started yet
        self._ready_line: str | None = None

    def started(self, name: str) -> bool:
        return self._started[name].is_set()

    def spawn_all(self) -> None:
        """Start every adapter in the background; delivery holds each platform's posts
        until its adapter has started."""
        for name, adapter in self._adapters.items():
            self._delivery.hold(adapter.platform)
            self._tasks[name] = asyncio.create_task(
                self._start(name, adapter), name=f"start:{name}"
            )

    async def first_tries(self, first_try_wait: float = FIRST_TRY_WAIT) -> None:
        """Return once each adapter has tried once (or after `first_try_wait`). Raises
        what stopped the bot, if it already did."""
        tries = [asyncio.ensure_future(e.wait()) for e in self._tried.values()]
        if tries:
            _, pending = await asyncio.wait(tries, timeout=first_try_wait)
            for waiting in pending:
                waiting.cancel()
        if self.fatal is not None:
            raise self.fatal

    def announce(self, plugins: str) -> None:
        """The ready line, now if every adapter has started, else when the last does."""
        self._ready_line = (
            f"ready: adapters {', '.join(self._adapters) or 'none'}, plugins {plugins}"
        )
        waiting = [n for n in self._adapters if not self.started(n)]
        if waiting:
            log.warning("running; still connecting: %s", ", ".join(waiting))
        else:
            log.info("%s", self._ready_line)

    async def _start(self, name: str, adapter: Adapter) -> None:
        delay = self._backoff
        while True:
            log.info("starting the %s adapter", name)
            try:
                await adapter.start(self._host_for(adapter))
            except (PlatformUnavailable, StorageUnavailable) as exc:
                self.problems[name] = str(exc)
                self._tried[name].set()
                log.warning("%s is not reachable (%s); trying again in %.0fs", name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(BACKOFF_MAX, delay * 2)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # StartRefused, or a bug: the bot stops and `App.run` raises it.
                self._give_up(name, exc)
                return
            break
        self.problems.pop(name, None)
        self._started[name].set()
        self._tried[name].set()
        self._delivery.release(adapter.platform)
        if self._ready_line is not None and all(e.is_set() for e in self._started.values()):
            log.info("%s", self._ready_line)

    def _give_up(self, name: str, exc: BaseException) -> None:
        self.problems[name] = str(exc)
        if self.fatal is None:
            self.fatal = exc
            self._request_stop()
        self._tried[name].set()

    async def serve(self, name: str, adapter: Adapter) -> None:
        """The adapter's input, once it has started (nothing if the bot stops first)."""
        started = asyncio.ensure_future(self._started[name].wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        given_up = self._tasks.get(name)
        waits: set[asyncio.Future[Any]] = {started, stopping}
        if given_up is not None:
            waits.add(given_up)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        stopping.cancel()
        if not self.started(name):
            return
        try:
            await adapter.run()
        except StartRefused as exc:
            # Refused after connecting (a platform that checks credentials late).
            self._give_up(name, exc)

    async def stop(self) -> None:
        """Stop trying to start adapters that have not started yet."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
