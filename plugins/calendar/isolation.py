"""Feeds parsed in a process of their own, under a time and a memory budget.

A hostile or merely huge calendar costs the worker (`worker.py`), never the bot: the
event loop goes on answering commands meanwhile, a parse past its time is killed with
its process, one past its memory ends its process, and either is refused with a reason
that says which budget it exceeded. The worker is kept between parses (a new one costs
a quarter of a second), started again whenever one is needed, and gets an environment
with nothing in it but the way to our code: no token or password of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.calendar.errors import FeedError
from plugins.calendar.parsing import Parsed, Window
from plugins.calendar.worker import EXIT_MEMORY, FRAME, decode

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]
# How the worker starts: `plugins.calendar` is registered as a bare package first, so
# that its `__init__` (the plugin, and through it the whole bot) is not imported: the
# worker needs icalendar and the parsing modules only.
_BOOT = (
    "import sys, types\n"
    "package = types.ModuleType('plugins.calendar')\n"
    "package.__path__ = [sys.argv[1]]\n"
    "sys.modules['plugins.calendar'] = package\n"
    "from plugins.calendar.worker import main\n"
    "sys.exit(main())\n"
)
# CPU time one series may take before it is left out on its own: a lazy expansion to the
# per-series cap takes milliseconds; a rule that never matches would search until 9999.
SERIES_CPU = 2.0
_STDERR_KEPT = 4000  # bytes of the worker's stderr kept for the log when it fails

# (logger name, level, message, arguments): a log record made in the worker.
Record = tuple[str, int, str, tuple[Any, ...]]
Say = Callable[[Record], None]


@dataclass(frozen=True, slots=True)
class Budget:
    seconds: float  # the whole parse, a new process's start included
    memory_mib: int
    series_cpu: float = SERIES_CPU


def say_in_log(record: Record) -> None:
    name, level, message, args = record
    logging.getLogger(name).log(level, message, *args)


class _Died(Exception):
    """The worker ended before it answered."""


class Stopping(Exception):
    """The worker was let go (the bot stops) before it answered: no answer about the
    feed either way."""


class ParseWorker:
    """One worker process, used for one parse at a time."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._memory = 0
        self._stderr: deque[bytes] = deque()
        self._drain: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The worker's process id while one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def parse(
        self,
        body: bytes,
        *,
        source: str,
        associations: tuple[str, ...],
        window: Window,
        budget: Budget,
        say: Say = say_in_log,
        label: str | None = None,
    ) -> Parsed:
        """Parse in the worker; raises FeedError when the feed is refused or a budget is
        exceeded. The worker's log records (which name the feed by `label`) go to `say`."""
        header = {
            "source": label or source,
            "start": window.start.timestamp(),
            "end": window.end.timestamp(),
            "tz": window.tz.key,
            "max_occurrences": window.max_occurrences,
            "max_per_series": window.max_per_series,
            "seconds": budget.seconds,
            "series_cpu": budget.series_cpu,
        }
        request = json.dumps(header).encode() + b"\n" + body
        async with self._lock:
            if self._closed:
                raise Stopping
            try:
                answer = await asyncio.wait_for(
                    self._ask(request, budget.memory_mib), budget.seconds
                )
            except TimeoutError:
                await self._kill()
                raise _too_slow(budget) from None
            except _Died:
                if self._closed:
                    raise Stopping from None
                raise await self._death(source, budget) from None
            except BaseException:
                await self._kill()  # cancelled mid-parse: the answer would come to no one
                raise
            parsed, records, size_kib = await asyncio.to_thread(
                _read_answer, answer, source, associations
            )
            if size_kib * 1024 > budget.memory_mib * 2**20 // 2:
                await self._let_go()  # grown: the next parse gets a new process
        for record in records:
            say(record)
        if isinstance(parsed, FeedError):
            raise parsed
        if parsed is None:
            raise _too_slow(budget)
        return parsed

    async def start(self, memory_mib: int) -> None:
        """Start the worker ahead of its first parse: it reads its imports while the bot
        goes on starting."""
        async with self._lock:
            if not self._closed:
                await self._started(memory_mib)

    async def close(self) -> None:
        """Let the worker go for good. Idle, it leaves when its stdin closes; busy, it is
        killed (the parse in hand raises Stopping): a stop does not wait for a parse."""
        self._closed = True
        if self._lock.locked():
            await self._kill()
        else:
            await self._let_go()

    async def _let_go(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 2)
        await self._kill()

    async def _ask(self, request: bytes, memory_mib: int) -> bytes:
        proc = await self._started(memory_mib)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(len(request).to_bytes(FRAME, "big") + request)
            await proc.stdin.drain()
            size = int.from_bytes(await proc.stdout.readexactly(FRAME), "big")
            return await proc.stdout.readexactly(size)
        except (ConnectionError, asyncio.IncompleteReadError):
            raise _Died from None

    async def _started(self, memory_mib: int) -> asyncio.subprocess.Process:
        proc = self._proc
        if proc is not None and proc.returncode is None and self._memory == memory_mib:
            return proc
        await self._kill()
        self._stderr.clear()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BOOT,
            str(_HERE),
            str(memory_mib * 2**20),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PYTHONPATH": str(_ROOT), "LC_ALL": "C.UTF-8"},
            cwd=str(_ROOT),
        )
        self._proc, self._memory = proc, memory_mib
        self._drain = asyncio.create_task(self._keep_stderr(proc))
        return proc

    async def _keep_stderr(self, proc: asyncio.subprocess.Process) -> None:
        """Read the worker's stderr as it comes (a full pipe would stop it), keeping the
        end of it for the log."""
        assert proc.stderr is not None
        kept = 0
        while chunk := await proc.stderr.read(4096):
            self._stderr.append(chunk)
            kept += len(chunk)
            while kept > _STDERR_KEPT and len(self._stderr) > 1:
                kept -= len(self._stderr.popleft())

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._drain is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._drain, 1)
            self._drain = None

    async def _death(self, source: str, budget: Budget) -> FeedError:
        """The reason a worker that ended mid-parse gives the feed."""
        proc = self._proc
        code = await proc.wait() if proc is not None else None
        await self._kill()
        stderr = b"".join(self._stderr)
        if code == EXIT_MEMORY or b"MemoryError" in stderr:
            return FeedError(
                f"reading it needs more memory than the budget of {budget.memory_mib} MiB",
                "calendar.reason.parse_memory",
                mib=budget.memory_mib,
            )
        log.error(
            "calendar feed %s: the parsing process failed (exit status %s):\n%s",
            source,
            code,
            stderr.decode("utf-8", errors="replace"),
        )
        return FeedError(
            "an unexpected error while reading it (the log has the traceback)",
            "calendar.reason.unexpected",
        )


def _too_slow(budget: Budget) -> FeedError:
    seconds = f"{budget.seconds:g}"
    return FeedError(
        f"reading it takes longer than the budget of {seconds} s",
        "calendar.reason.parse_slow",
        seconds=seconds,
    )


def _read_answer(
    out: bytes, source: str, associations: tuple[str, ...]
) -> tuple[Parsed | FeedError | None, list[Record], int]:
    """What the worker answered: occurrences, a refusal, or None (out of CPU time);
    the log records; how large the worker is now, in KiB."""
    data = json.loads(out)
    records: list[Record] = [
        (str(name), int(level), str(message), tuple(args))
        for name, level, message, args in data.get("log", [])
    ]
    size = int(data.get("size_kib", 0))
    refused = data.get("refused")
    if refused is not None:
        message, key, params = refused
        return FeedError(str(message), str(key), **dict(params)), records, size
    if data.get("slow"):
        return None, records, size
    return decode(data, source, associations), records, size
