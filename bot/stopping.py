"""Stopping between events: signals ask for a stop, each adapter finishes the event in
hand, posts in flight go out while the platforms answer; a second signal hurries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any, Final

from bot.core.platform import Adapter
from bot.delivery import Delivery

log = logging.getLogger(__name__)

# How long a stop waits for the adapters to finish the events in hand.
INPUT_STOP_TIMEOUT: Final = 20.0


def on_stop_signals(request_stop: Callable[[signal.Signals], None]) -> None:
    """SIGINT, SIGTERM and SIGHUP all ask for a graceful stop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        # Not possible outside the main thread (tests) or on some platforms.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, request_stop, sig)


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def log_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("adapter %s stopped with an error", task.get_name(), exc_info=task.exception())


async def stop_inputs(running: dict[asyncio.Task[Any], Adapter], hurry_flag: asyncio.Event) -> None:
    """Ask each adapter still receiving to stop after the event in hand, and wait for
    it; only one that does not stop in time is cancelled."""
    if not running:
        return
    asks = []
    for task, adapter in running.items():
        stopper = getattr(adapter, "stop_receiving", None)
        if stopper is None:
            task.cancel()  # an adapter that cannot stop between events
        else:
            asks.append(asyncio.create_task(stopper()))
    hurry = asyncio.create_task(hurry_flag.wait())
    waiting = set(running) | set(asks)
    deadline = loop_time() + INPUT_STOP_TIMEOUT
    while waiting - set(asks) and not hurry_flag.is_set():
        left = deadline - loop_time()
        if left <= 0:
            break
        _, waiting = await asyncio.wait(
            waiting | {hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.discard(hurry)
    hurry.cancel()
    for task in running:
        if not task.done():
            log.warning("adapter %s did not stop in time; cut off", task.get_name())
            task.cancel()
    await asyncio.gather(*running, *asks, return_exceptions=True)
    for task in asks:
        if not task.cancelled() and task.exception() is not None:
            log.error("stopping an adapter's input failed", exc_info=task.exception())


async def drained(delivery: Delivery, hurry_flag: asyncio.Event, timeout: float) -> bool:
    """Whether every post went out within `timeout` (False too when told to hurry)."""
    idle = asyncio.create_task(delivery.wait_idle(timeout))
    hurry = asyncio.create_task(hurry_flag.wait())
    await asyncio.wait({idle, hurry}, return_when=asyncio.FIRST_COMPLETED)
    hurry.cancel()
    if not idle.done():
        idle.cancel()
        return False
    return idle.result()
