"""The national bench's peers and measures: what the bench saw (the ledger), Matrix
through raw client-server calls, and the bot as a process whose stdin and stdout are the
console. Apart from bench/national_bench.py, which drives them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.matrix.synapse import Account  # noqa: E402

TZ = ZoneInfo("Europe/Stockholm")
BRIDGED = re.compile(r"\b(x\d{7})\b")
DUE = re.compile(r"\b(q\d{5})\b")
CREATED = re.compile(r"Omröstning (\d+) är skapad")
WEBHOOK_POST = "POST /webhooks/{webhook_id}/{webhook_token}"
POST = "POST /channels/{channel_id}/messages"
TAKEOVER = "the active instance is gone; taking over"
SYNC_FILTER = json.dumps(
    {
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "room": {
            "timeline": {"limit": 5000},
            "ephemeral": {"not_types": ["*"]},
            "state": {"lazy_load_members": True},
            "account_data": {"not_types": ["*"]},
        },
    }
)
FILTER_Q = quote(SYNC_FILTER)


# -- what the bench saw ----------------------------------------------------------------


@dataclass
class Ledger:
    """Every bridged message sent (marker -> source room, send time, rooms it must reach),
    every copy seen (room, marker) -> arrival times, and the reminders due and seen."""

    sent: dict[str, tuple[str, float, list[str]]] = field(default_factory=dict)
    seen: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    due: dict[str, tuple[float, str]] = field(default_factory=dict)  # q-marker -> (due, room)
    reminders: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    puts: list[float] = field(default_factory=list)  # members' sends to Synapse, seconds
    accepted: dict[str, float] = field(default_factory=dict)  # marker -> Synapse's stamp

    def copy(self, room: str, text: str, at: float) -> None:
        found = BRIDGED.search(text)
        if found:
            self.seen.setdefault((room, found[1]), []).append(at)
            return
        found = DUE.search(text)
        if found:
            self.reminders.setdefault((room, found[1]), []).append(at)

    def copies(self) -> int:
        return sum(len(v) for v in self.seen.values())

    def expected(self) -> int:
        return sum(len(t) for _r, _at, t in self.sent.values())

    def hops(self) -> tuple[dict[str, list[float]], int, int]:
        """Latencies of every first copy, by platforms (`m>d`: Matrix to Discord, and
        `all`); copies missing; copies doubled."""
        latencies: dict[str, list[float]] = {"all": []}
        lost = doubled = 0
        for marker, (source, began, targets) in self.sent.items():
            for target in targets:
                arrivals = self.seen.get((target, marker))
                if not arrivals:
                    lost += 1
                    continue
                doubled += len(arrivals) - 1
                hop = min(arrivals) - began
                latencies["all"].append(hop)
                latencies.setdefault(f"{source[0]}>{target[0]}", []).append(hop)
                if marker in self.accepted:  # from Matrix: the part after Synapse took it
                    since = min(arrivals) - self.accepted[marker]
                    latencies.setdefault(f"{source[0]}>{target[0]} after Synapse", []).append(since)
        return latencies, lost, doubled

    def lateness(self) -> tuple[list[float], int, int, int]:
        """Lateness of each reminder due in the window; missing, doubled, elsewhere."""
        late: list[float] = []
        lost = doubled = 0
        for marker, (due, room) in self.due.items():
            arrivals = self.reminders.get((room, marker))
            if not arrivals:
                lost += 1
                continue
            doubled += len(arrivals) - 1
            late.append(min(arrivals) - due)
        elsewhere = sum(
            len(v)
            for (room, m), v in self.reminders.items()
            if self.due.get(m, (0, room))[1] != room
        )
        return late, lost, doubled, elsewhere


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def proc_status(pid: int, key: str) -> float:
    """A /proc/<pid>/status figure in MiB (VmRSS, VmHWM)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- Matrix: raw client-server calls and one member's sync -----------------------------


class Matrix:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        for attempt in range(5):
            async with self.http.request(method, self.url + path, json=body, headers=headers) as r:
                data = await r.json(content_type=None)
                if r.status == 429 and attempt < 4:
                    await asyncio.sleep(data.get("retry_after_ms", 500) / 1000)
                    continue
                assert r.status == 200, (path, r.status, data)
                return data
        raise AssertionError("unreachable")

    async def send(self, account: Account, room: str, body: str, txn: str) -> None:
        path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"
        await self.call("PUT", path, account.access_token, {"msgtype": "m.text", "body": body})


class Watcher:
    """One member's sync over every Matrix room: the bot's posts, stamped with the time
    Synapse took them (origin_server_ts)."""

    def __init__(self, mx: Matrix, account: Account, bot_id: str, ledger: Ledger) -> None:
        self.mx, self.account, self.bot_id, self.ledger = mx, account, bot_id, ledger
        self.texts: list[str] = []
        self.limited = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        first = await self._sync(None, 0)
        self.task = asyncio.create_task(self._loop(first["next_batch"]))

    async def _sync(self, since: str | None, timeout: int) -> Any:
        path = f"/_matrix/client/v3/sync?timeout={timeout}&filter={FILTER_Q}"
        if since:
            path += f"&since={since}"
        return await self.mx.call("GET", path, self.account.access_token)

    async def _loop(self, since: str) -> None:
        while True:
            try:
                answer = await self._sync(since, 30000)
            except (aiohttp.ClientError, AssertionError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            since = answer["next_batch"]
            for room_id, room in answer.get("rooms", {}).get("join", {}).items():
                timeline = room.get("timeline", {})
                self.limited += bool(timeline.get("limited"))
                for event in timeline.get("events", []):
                    if event.get("sender") != self.bot_id:
                        found = BRIDGED.search(str(event.get("content", {}).get("body", "")))
                        if found:  # a member's message: when Synapse took it
                            self.ledger.accepted[found[1]] = event["origin_server_ts"] / 1000
                        continue
                    body = str(event.get("content", {}).get("body", ""))
                    self.texts.append(body)
                    self.ledger.copy(f"m:{room_id}", body, event["origin_server_ts"] / 1000)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# -- the bot as a process: stdin and stdout are the console ----------------------------


class Bot:
    def __init__(self, config: Path, work: Path, name: str, ledger: Ledger) -> None:
        self.config, self.work, self.name, self.ledger = config, work, name, ledger
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.log = work / f"{name}.log"
        # Its own working folder: on PostgreSQL the heartbeat file goes to ./data/.
        self.cwd = work / name
        self.cwd.mkdir(exist_ok=True)

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("SAMVERKAN_CONFIG", None)
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(self.config),
                cwd=self.cwd, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log, limit=2**20,
            )  # fmt: skip
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        room = ""
        while line := await self.proc.stdout.readline():
            now = time.time()
            text = line.decode(errors="replace")
            if text.startswith("[#"):
                room = text[2 : text.index("]")]
            self.ledger.copy(f"c:{room}", text, now)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def role(self) -> str:
        """The role its heartbeat file says (active or standby), or ""."""
        for where in (self.cwd / "data" / "heartbeat", self.work / "heartbeat"):
            with contextlib.suppress(OSError):
                return where.read_text().splitlines()[1]
        return ""

    async def wait_for(self, words: str, timeout: float) -> float:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while words not in self.text():
            if self.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited: {self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {words!r}; see {self.log}")
            await asyncio.sleep(0.05)
        return time.time()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 40)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self.reader, 5)
