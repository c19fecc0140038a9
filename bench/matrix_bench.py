"""Matrix adapter figures against a local Synapse, beside a bare matrix-nio bot.

Prints, from one run with the samples interleaved (ours, bare, ours, bare, ...):
- the round trip of a command: a user's send until the user's client sees the reply
  (p50, p99), for our bot (the whole App, `samverkan run`) and a ~30-line nio bot;
- each bot's CPU time per command (user + system time of its process over the run);
- the resident memory of each bot with 20 joined rooms;
- the time from process start to ready;
- where the round trip goes: from the command's send to the reply's creation (the
  server's timestamp), and what each bot's long polls cost Synapse (its access log).

Each sample is followed by a pause (--settle), so that one bot's trailing work (the bare
bot syncs its own echo, ours saves its position) does not fall into the other's sample.

Run: .venv/bin/python bench/matrix_bench.py [--samples 100]
Needs .venv-synapse (make test builds it) or SAMVERKAN_SYNAPSE_PYTHON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nio import AsyncClient, RoomSendResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.matrix.synapse import Account, Synapse  # noqa: E402

COMMAND = "!hjälp"

BARE_BOT = """
import asyncio, json, sys
from nio import AsyncClient, RoomMessageText

REPLY = json.loads(sys.argv[5])  # the same answer as ours gives

async def main() -> None:
    homeserver, user, token, device = sys.argv[1:5]
    client = AsyncClient(homeserver, user)
    client.restore_login(user, device, token)
    first = await client.sync(timeout=0, full_state=True)

    async def on_message(room, event) -> None:
        if event.sender != user and event.body.startswith("!hjälp"):
            await client.room_send(room.room_id, "m.room.message", {
                **REPLY, "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
            })

    client.add_event_callback(on_message, RoomMessageText)
    print("ready", flush=True)
    await client.sync_forever(timeout=30000, since=first.next_batch)

asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_line(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"not ready; see {path}")
        time.sleep(0.005)


class Watcher:
    """The user's client: records when each reply (by the event it answers) arrives."""

    def __init__(self, synapse: Synapse, account: Account) -> None:
        self.client = AsyncClient(synapse.url, account.user_id)
        self.client.restore_login(account.user_id, account.device_id, account.access_token)
        self.arrived: dict[str, float] = {}
        self.replies: dict[str, str] = {}
        self.contents: dict[str, dict[str, Any]] = {}
        self.created: dict[str, float] = {}  # origin_server_ts of each reply, in seconds
        self.task: asyncio.Task[Any] | None = None
        self.bot_share: list[float] = []

    async def start(self) -> None:
        await self.client.sync(timeout=0, full_state=True)

        async def on_event(room: Any, event: Any) -> None:
            rel = event.source.get("content", {}).get("m.relates_to", {})
            origin = rel.get("m.in_reply_to", {}).get("event_id")
            if origin:
                self.arrived.setdefault(origin, time.perf_counter())
                self.replies.setdefault(origin, event.event_id)
                self.contents.setdefault(origin, dict(event.source.get("content", {})))
                self.created.setdefault(origin, event.server_timestamp / 1000)

        from nio import RoomMessageNotice

        self.client.add_event_callback(on_event, RoomMessageNotice)
        self.task = asyncio.create_task(self.client.sync_forever(timeout=30000))

    async def round_trip(self, room: str, element_like: bool = False) -> float:
        """One command; `element_like` adds what a member's client sends around it:
        typing notices while writing and a read receipt once the reply is shown."""
        if element_like:
            await self.client.room_typing(room, True, 5000)
        began = time.perf_counter()
        began_wall = time.time()
        answer = await self.client.room_send(
            room, "m.room.message", {"msgtype": "m.text", "body": COMMAND}
        )
        assert isinstance(answer, RoomSendResponse), answer
        if element_like:
            await self.client.room_typing(room, False)
        while answer.event_id not in self.arrived:
            if time.perf_counter() - began > 30:
                raise TimeoutError("no reply in 30 s")
            await asyncio.sleep(0.001)
        took = self.arrived[answer.event_id] - began
        self.bot_share.append(self.created[answer.event_id] - began_wall)
        if element_like:
            reply = self.replies[answer.event_id]
            await self.client.room_read_markers(room, reply, reply)
        return took

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.close()


def comparison(
    latency: dict[str, list[float]],
    cpu: dict[str, float],
    cpu_label: str,
    targets: tuple[float | None, float | None, float | None],
) -> str:
    """Our figures beside the bare ones', and their ratios against the targets."""
    ms = 1000
    lines = []
    for name in ("ours", "bare"):
        p50, p99 = pct(latency[name], 50) * ms, pct(latency[name], 99) * ms
        mean = statistics.mean(latency[name]) * ms
        lines.append(
            f"  {name:5} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   mean {mean:7.2f} ms"
            f"   {cpu_label} {cpu[name] * ms:6.2f} ms"
        )
    ratios = (
        pct(latency["ours"], 50) / pct(latency["bare"], 50),
        pct(latency["ours"], 99) / pct(latency["bare"], 99),
        cpu["ours"] / cpu["bare"],
    )
    parts = [
        f"{label} {ratio:.2f}" + (f" (target <= {target})" if target is not None else "")
        for label, ratio, target in zip(("p50", "p99", "CPU"), ratios, targets, strict=True)
    ]
    lines.append("  ratio ours/bare: " + ", ".join(parts))
    return "\n".join(lines)


_PROCESSED = re.compile(
    r"\{(?P<user>@[^}]+)\} Processed request: .*? ru=\((?P<u>[\d.]+)sec, (?P<s>[\d.]+)sec\)"
    r" db=\([\d.]+sec/[\d.]+sec/(?P<txns>\d+)\) .*\"GET /_matrix/client/v3/sync\?(?P<q>\S+)"
)


def synapse_sync_work(log: Path, users: dict[str, str]) -> dict[str, tuple[int, float, float]]:
    """From Synapse's access log: per bot, the long polls it answered and, on average,
    the database transactions and CPU each cost the server (where a bot's sync filter
    shows)."""
    found: dict[str, list[tuple[int, float]]] = {name: [] for name in users}
    names = {user: name for name, user in users.items()}
    for line in log.read_text(errors="replace").splitlines():
        match = _PROCESSED.search(line)
        if match is None or "timeout=0" in match["q"] or match["user"] not in names:
            continue
        cpu = float(match["u"]) + float(match["s"])
        found[names[match["user"]]].append((int(match["txns"]), cpu))
    return {
        name: (
            len(rows),
            statistics.mean(r[0] for r in rows) if rows else float("nan"),
            statistics.mean(r[1] for r in rows) * 1000 if rows else float("nan"),
        )
        for name, rows in found.items()
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def bench(samples: int, settle: float, work: Path) -> None:
    synapse = Synapse(work / "synapse")
    synapse.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ours, bare, user = synapse.register("ours"), synapse.register("bare"), synapse.register("u")
        watcher = Watcher(synapse, user)
        rooms: list[str] = []
        for _ in range(20):
            created = synapse.request(
                "POST", "/_matrix/client/v3/createRoom",
                {"invite": [ours.user_id]}, token=user.access_token,
            )  # fmt: skip
            rooms.append(created["room_id"])
        # The bare bot is in as many rooms as ours and is asked in them in the same turn:
        # a homeserver's sync work grows with the rooms a user is in.
        bare_rooms: list[str] = []
        for _ in range(len(rooms)):
            bare_room = synapse.request(
                "POST", "/_matrix/client/v3/createRoom", {"invite": [bare.user_id]},
                token=user.access_token,
            )["room_id"]  # fmt: skip
            synapse.request(
                "POST", f"/_matrix/client/v3/join/{bare_room}", {}, token=bare.access_token
            )
            bare_rooms.append(bare_room)
        config = work / "bot.toml"
        room_list = ", ".join(f'"matrix:{r}"' for r in rooms)
        config.write_text(
            f"""
[bot]
database = "{work / "bot.db"}"
[matrix]
homeserver = "{synapse.url}"
user_id = "{ours.user_id}"
password = "{ours.password}"
store_path = "{work / "store"}"
pickle_key = "bench-pickle-key"
[[associations]]
id = "falun"
name = "Falun"
rooms = [{room_list}]
""",
            encoding="utf-8",
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("SAMVERKAN_CONFIG", None)
        # Start to ready, twice for ours: a fresh store (login, keys, cross-signing) and
        # a restart (the usual case).
        ready: list[float] = []
        for run in range(2):
            log = work / f"ours{run}.log"
            began = time.perf_counter()
            # BENCH_PROFILE="-m cProfile -o FILE" profiles our bot.
            profile = os.environ.get("BENCH_PROFILE", "").split()
            proc = subprocess.Popen(  # noqa: ASYNC220 (set-up, before anything is timed)
                [sys.executable, *profile, "-m", "bot", "run", "--config", str(config)],
                cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            wait_line(log, "ready: adapters", proc, 60)
            ready.append(time.perf_counter() - began)
            if run == 0:
                proc.terminate()
                proc.wait(30)
        procs.append(proc)
        ours_pid = proc.pid
        await watcher.start()
        for room in rooms:  # warm-up, not counted: every room once
            await watcher.round_trip(room)
        # The bare bot gives exactly our answer, so that both send the same event.
        reply = next(iter(watcher.contents.values()))
        reply.pop("m.relates_to", None)
        script = work / "bare_bot.py"
        script.write_text(BARE_BOT, encoding="utf-8")
        log = work / "bare.log"
        began = time.perf_counter()
        bare_proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, str(script), synapse.url, bare.user_id, bare.access_token,
             bare.device_id, json.dumps(reply)],
            cwd=work, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(bare_proc)
        wait_line(log, "ready", bare_proc, 60)
        bare_ready = time.perf_counter() - began

        for bare_room in bare_rooms:  # warm-up, not counted: every room once
            await watcher.round_trip(bare_room)
        await asyncio.sleep(0.5)
        results = []
        shares: list[dict[str, list[float]]] = []
        for element_like in (False, True):
            rtt: dict[str, list[float]] = {"ours": [], "bare": []}
            share: dict[str, list[float]] = {"ours": [], "bare": []}
            cpu0 = {"ours": cpu_seconds(ours_pid), "bare": cpu_seconds(bare_proc.pid)}
            for i in range(samples):
                # Interleaved so that both see the same machine and server load.
                ours_room = rooms[i % len(rooms)]
                rtt["ours"].append(await watcher.round_trip(ours_room, element_like))
                share["ours"].append(watcher.bot_share[-1])
                # Settled: the other bot's trailing work (the bare one's sync of its own
                # echo, our saves) must not fall into this sample.
                await asyncio.sleep(settle)
                bare_room = bare_rooms[i % len(bare_rooms)]
                rtt["bare"].append(await watcher.round_trip(bare_room, element_like))
                share["bare"].append(watcher.bot_share[-1])
                await asyncio.sleep(settle)
            await asyncio.sleep(0.5)  # let the last replies' bookkeeping finish
            cpu = {
                "ours": (cpu_seconds(ours_pid) - cpu0["ours"]) / samples,
                "bare": (cpu_seconds(bare_proc.pid) - cpu0["bare"]) / samples,
            }
            results.append((element_like, rtt, cpu))
            shares.append(share)
        mem_ours, mem_bare = rss_mib(ours_pid), rss_mib(bare_proc.pid)
        await watcher.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        synapse.stop()
    sync_work = synapse_sync_work(synapse.log_path, {"ours": ours.user_id, "bare": bare.user_id})

    for (element_like, rtt, cpu), share in zip(results, shares, strict=True):
        who = (
            "a member whose client sends typing notices and read receipts (as Element does)"
            if element_like
            else "a member who sends only the command"
        )
        print(f"Command round trip, {samples} samples each, interleaved; {who}:")
        print(comparison(rtt, cpu, "CPU/command", targets=(1.0, None, 0.9)))
        # The server's clock stamps the reply when it is created: the command's send, the
        # bot's sync, its work and the reply's creation, without the way back.
        print(
            "  command sent to reply created, p50: "
            + ", ".join(f"{k} {pct(v, 50) * 1000:.1f} ms" for k, v in share.items())
        )
    for name, (count, txns, cpu_ms) in sync_work.items():
        print(
            f"Synapse per long poll answered ({name}): {txns:.1f} database transactions,"
            f" {cpu_ms:.2f} ms CPU, over {count} syncs"
        )
    print(f"Memory (RSS) with 20 joined rooms: ours {mem_ours:.1f} MiB; bare {mem_bare:.1f} MiB")
    print(
        f"Start to ready: ours {ready[0]:.2f} s on a fresh store, {ready[1]:.2f} s on restart; "
        f"bare {bare_ready:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--settle", type=float, default=0.1, help="seconds of quiet after each sample"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="matrix-bench-") as tmp:
        asyncio.run(bench(args.samples, args.settle, Path(tmp)))


if __name__ == "__main__":
    main()
