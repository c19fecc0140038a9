"""One running Samverkan per database.

Two processes on one database would both deliver its outbox (the row claims in
`bot.outbox` keep them from sending a row twice, but not from fighting over every lane),
both answer every command and both run every job. So a process holds an exclusive lock
for its lifetime: for SQLite an `flock` on `<database>.lock` beside the file, with the
holder's pid and host written into it so that a second process can say who has it. The
kernel drops the lock when the process dies, however it dies, so a SIGKILL leaves
nothing to clean up. On PostgreSQL the lock is a session advisory lock of the same shape
(`bot.storage.advisory`), which can also be waited for (the warm standby) and can be
lost (fencing, `bot.fence`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from bot.storage.checks import DatabaseOpenError, os_reason

if TYPE_CHECKING:
    from bot.fence import Fence

log = logging.getLogger(__name__)

_HOLDER_MAX: Final = 512


class InstanceLockedError(DatabaseOpenError):
    """Another Samverkan already runs on this database."""

    def __init__(self, path: str, holder: str | None) -> None:
        who = f" ({holder})" if holder else ""
        super().__init__(path, f"is in use by another samverkan{who}")
        self.holder = holder


class InstanceLock(Protocol):
    def hold(self, fence: Fence) -> None:
        """Set `fence` for this lock at once (before anything can be posted)."""

    async def watch(self, fence: Fence, on_lost: Callable[[str], None]) -> None:
        """Keep `fence` open while the lock holds; close it and call `on_lost` when
        the lock is lost (a lock only the process's death ends returns at once)."""

    async def release(self) -> None: ...


class _Unlosable:
    """A lock that only the process's end takes away: the fence stays open."""

    def hold(self, fence: Fence) -> None:
        return None

    async def watch(self, fence: Fence, on_lost: Callable[[str], None]) -> None:
        return None


class _NoLock(_Unlosable):
    """`:memory:` is private to its process: nothing to share, nothing to lock."""

    async def release(self) -> None:
        return None


class _FileLock(_Unlosable):
    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    async def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # The file stays: removing it would let a process that opened it before the
        # removal lock the old file while a third creates and locks a new one.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock
        log.debug("released the instance lock %s", self.path)


def lock_path(database: str | Path) -> Path:
    path = Path(database)
    return path.with_name(path.name + ".lock")


async def acquire(database: str | Path) -> InstanceLock:
    """Take the database's instance lock for this process, or raise
    `InstanceLockedError` naming the process that has it."""
    if str(database) == ":memory:":
        return _NoLock()
    path = lock_path(database)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise DatabaseOpenError(
            str(database), f"its lock file cannot be opened ({os_reason(exc)})"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise InstanceLockedError(str(database), holder) from None
    except OSError as exc:
        os.close(fd)
        raise DatabaseOpenError(
            str(database), f"its lock file cannot be locked ({os_reason(exc)})"
        ) from None
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(), 0)
    except OSError:
        # The lock holds without the note; a second instance just cannot name us.
        log.warning("could not write the holder into %s", path, exc_info=True)
    log.debug("took the instance lock %s", path)
    return _FileLock(fd, path)


def _read_holder(fd: int) -> str | None:
    """'pid 1234 on host x' from the lock file, if the holder has written it yet."""
    try:
        raw = os.pread(fd, _HOLDER_MAX, 0)
        note = json.loads(raw.decode("utf-8"))
        pid, host = int(note["pid"]), str(note["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # The note is read from a file anyone with access could have written: keep the
    # line printable and short.
    host = "".join(ch for ch in host if ch.isprintable())[:100]
    return f"pid {pid} on host {host}" if host else f"pid {pid}"
