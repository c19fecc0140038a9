"""The heartbeat: a file the running bot touches, whose age `samverkan health` reads
(bot/cli.py) when no HTTP service is configured; its second line is the role."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from bot.core.clock import Clock
from bot.settings import RootSettings
from bot.storage.target import local_dir

log = logging.getLogger(__name__)

EVERY: Final = 30.0

__all__ = ["EVERY", "beat", "heartbeat_path"]


def heartbeat_path(settings: RootSettings) -> Path:
    """Beside the SQLite file, or in `data/` for a database on a server."""
    return local_dir(settings.bot.database) / "heartbeat"


async def beat(path: Path, clock: Clock, role: Callable[[], str]) -> None:
    """Touch `path` every EVERY seconds, until cancelled."""
    # Beside a SQLite file the folder exists; for a database on a server it is data/,
    # which nothing else may have made.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            # The role on a line of its own: `samverkan health` says which it is. A few
            # bytes every 30 s: on the loop, as before, not worth a thread.
            path.write_text(f"{clock.now().isoformat()}\n{role()}\n", "utf-8")  # noqa: ASYNC240
        except OSError:
            log.warning("cannot write the heartbeat file %s", path, exc_info=True)
        await asyncio.sleep(EVERY)
