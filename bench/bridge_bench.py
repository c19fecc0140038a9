"""Bridge figures against a local Synapse, beside a minimal relay, from one run.

Prints:
- the end-to-end latency of a bridged message Matrix room -> Matrix room (a member's
  send until the member's client sees the copy), p50 and p99, for our bot (the whole
  App with the bridge plugin, `samverkan run`) and a minimal relay (a bare matrix-nio
  client that forwards what it receives, no database), samples interleaved (ours, bare,
  ours, ...), as ratios (targets: p50 <= 1.2, p99 <= 1.5);
- fan-out of one message to 20 Matrix rooms: time until the last copy arrives, against
  20 sequential sends by a bare client (interleaved too);
- CPU time per relayed message (user + system time of each process over the latency
  samples);
- loss and duplicates in a burst of 300 messages across two source rooms, and in a burst
  during which our bot is SIGKILLed and started again (targets: zero).

Run: .venv/bin/python bench/bridge_bench.py [--samples 100]
Needs .venv-synapse (make test builds it) or SAMVERKAN_SYNAPSE_PYTHON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from nio import AsyncClient, RoomSendResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.matrix_bench import comparison, cpu_seconds, wait_line  # noqa: E402
from tests.matrix.synapse import Account, Synapse  # noqa: E402

MARK = re.compile(r"\b(m\d+)\b")
FILTER = {
    "presence": {"not_types": ["*"]},
    "room": {"timeline": {"limit": 1000}, "ephemeral": {"not_types": ["*"]}},
}

BARE_RELAY = """
import asyncio, sys
from nio import AsyncClient, RoomMessageText

async def main() -> None:
    homeserver, user, token, device, source, target = sys.argv[1:7]
    client = AsyncClient(homeserver, user)
    client.restore_login(user, device, token)
    first = await client.sync(timeout=0, full_state=True)

    async def on_message(room, event) -> None:
        if room.room_id == source and event.sender != user:
            name = room.user_name(event.sender) or event.sender
            await client.room_send(target, "m.room.message",
                                   {"msgtype": "m.text", "body": f"{name}: {event.body}"})

    client.add_event_callback(on_message, RoomMessageText)
    print("ready", flush=True)
    await client.sync_forever(timeout=30000, since=first.next_batch)

asyncio.run(main())
"""


class Member:
    """The member's client: sends, and records when each copy (by marker) arrives where."""

    def __init__(self, synapse: Synapse, account: Account) -> None:
        self.user_id = account.user_id
        self.client = AsyncClient(synapse.url, account.user_id)
        self.client.restore_login(account.user_id, account.device_id, account.access_token)
        self.seen: dict[tuple[str, str], list[float]] = {}  # (room, marker) -> arrivals
        self.order: dict[str, list[str]] = {}  # room -> markers in timeline order
        self.task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        first = await self.client.sync(timeout=0, full_state=True, sync_filter=FILTER)

        async def on_event(room: Any, event: Any) -> None:
            if event.sender == self.user_id:
                return
            found = MARK.search(str(event.source.get("content", {}).get("body", "")))
            if found:
                now = time.perf_counter()
                self.seen.setdefault((room.room_id, found[1]), []).append(now)
                self.order.setdefault(room.room_id, []).append(found[1])

        from nio import RoomMessageText

        self.client.add_event_callback(on_event, RoomMessageText)
        self.task = asyncio.create_task(
            self.client.sync_forever(timeout=30000, sync_filter=FILTER, since=first.next_batch)
        )

    async def say(self, room: str, text: str) -> float:
        began = time.perf_counter()
        answer = await self.client.room_send(
            room, "m.room.message", {"msgtype": "m.text", "body": text}
        )
        assert isinstance(answer, RoomSendResponse), answer
        return began

    async def arrival(self, room: str, marker: str, timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        while (room, marker) not in self.seen:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{marker} did not arrive in {room}")
            await asyncio.sleep(0.0005)
        return self.seen[(room, marker)][0]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.close()


def create_room(synapse: Synapse, owner: Account, invite: list[Account]) -> str:
    room: str = synapse.request(
        "POST", "/_matrix/client/v3/createRoom",
        {"invite": [a.user_id for a in invite]}, token=owner.access_token,
    )["room_id"]  # fmt: skip
    return room


def join(synapse: Synapse, account: Account, room: str) -> None:
    synapse.request("POST", f"/_matrix/client/v3/join/{room}", {}, token=account.access_token)


def config_text(synapse: Synapse, ours: Account, work: Path, bridges: list[list[str]]) -> str:
    rooms = sorted({r for b in bridges for r in b})
    listed = ", ".join(f'"matrix:{r}"' for r in rooms)
    bridge_text = "".join(
        f'[[bridges]]\nid = "b{n}"\nrooms = {json.dumps([f"matrix:{r}" for r in b])}\n'
        for n, b in enumerate(bridges)
    )
    return f"""
[bot]
database = "{work / "bot.db"}"
plugins = ["plugins.bridge"]
[matrix]
homeserver = "{synapse.url}"
user_id = "{ours.user_id}"
password = "{ours.password}"
store_path = "{work / "store"}"
pickle_key = "bench-pickle-key"
[[associations]]
id = "falun"
name = "Falun"
rooms = [{listed}]
{bridge_text}
"""


class Ours:
    """Our bot as a process; started again after a kill with the same configuration."""

    def __init__(self, config: Path, work: Path) -> None:
        self.config = config
        self.work = work
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("SAMVERKAN_CONFIG", None)
        self.runs += 1
        log = self.work / f"ours{self.runs}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(self.config)],
            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_line(log, "ready: adapters", self.proc, 60)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def copies_in(member: Member, rooms: list[str]) -> int:
    return sum(len(v) for (room, _), v in member.seen.items() if room in rooms)


async def wait_copies(member: Member, rooms: list[str], count: int, timeout: float) -> None:
    """Until `count` copies arrived in `rooms` or the time is up (then loss shows)."""
    deadline = time.perf_counter() + timeout
    while copies_in(member, rooms) < count and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


def loss_and_doubles(
    member: Member, sent: dict[str, list[str]], targets: dict[str, list[str]]
) -> tuple[int, int, int]:
    """Over every (source room -> target room): copies missing, copies doubled, and
    source rooms whose messages arrived out of order somewhere."""
    lost = doubled = disordered = 0
    for source, markers in sent.items():
        for target in targets[source]:
            arrived = [m for m in member.order.get(target, []) if m in set(markers)]
            counts = Counter(arrived)
            lost += sum(1 for m in markers if m not in counts)
            doubled += sum(n - 1 for n in counts.values() if n > 1)
            firsts = list(dict.fromkeys(arrived))
            disordered += firsts != [m for m in markers if m in counts]
    return lost, doubled, disordered


async def burst(
    member: Member, rooms: list[str], per_room: int, start: int
) -> dict[str, list[str]]:
    """`per_room` messages into each room, in order per room, the rooms at once."""
    sent = {
        r: [f"m{start + i * len(rooms) + k}" for i in range(per_room)] for k, r in enumerate(rooms)
    }

    async def one_room(room: str) -> None:
        for marker in sent[room]:
            await member.say(room, f"{marker} i skuren")

    await asyncio.gather(*(one_room(r) for r in rooms))
    return sent


async def bare_streams(
    client: AsyncClient, rooms: list[str], per_room: int, start: int
) -> dict[str, list[str]]:
    """A bare client's `per_room` messages into each room, in order, the rooms at once."""
    sent = {
        r: [f"m{start + i * len(rooms) + k}" for i in range(per_room)] for k, r in enumerate(rooms)
    }

    async def one_room(room: str) -> None:
        for marker in sent[room]:
            body = {"msgtype": "m.text", "body": f"u: {marker} i skuren"}
            answer = await client.room_send(room, "m.room.message", body)
            assert isinstance(answer, RoomSendResponse), answer

    await asyncio.gather(*(one_room(r) for r in rooms))
    return sent


async def bench(samples: int, work: Path) -> None:
    synapse = Synapse(work / "synapse")
    synapse.start()
    ours_bot: Ours | None = None
    bare_proc: subprocess.Popen[bytes] | None = None
    member: Member | None = None
    try:
        ours, bare, user = synapse.register("ours"), synapse.register("bare"), synapse.register("u")
        lat = [create_room(synapse, user, [ours]) for _ in range(2)]
        fan = [create_room(synapse, user, [ours]) for _ in range(21)]
        # The bare client's 20 rooms are its own: in ours, the bridge would relay it.
        bare_fan = [create_room(synapse, user, [bare]) for _ in range(20)]
        for room in bare_fan:
            join(synapse, bare, room)
        burst_rooms = [create_room(synapse, user, [ours]) for _ in range(3)]
        kill_rooms = [create_room(synapse, user, [ours]) for _ in range(3)]
        # The burst's floor: the member's two rooms and the bare client's four.
        floor_rooms = [create_room(synapse, user, [bare]) for _ in range(6)]
        for room in floor_rooms[2:]:
            join(synapse, bare, room)
        bare_rooms = [create_room(synapse, user, [bare]) for _ in range(2)]
        for room in bare_rooms:
            join(synapse, bare, room)
        config = work / "bot.toml"
        text = config_text(synapse, ours, work, [lat, fan, burst_rooms, kill_rooms])
        config.write_text(text, encoding="utf-8")
        ours_bot = Ours(config, work)
        ours_bot.start()
        script = work / "bare_relay.py"
        script.write_text(BARE_RELAY, encoding="utf-8")
        bare_log = work / "bare.log"
        bare_proc = subprocess.Popen(  # noqa: ASYNC220 (set-up, before anything is timed)
            [sys.executable, str(script), synapse.url, bare.user_id, bare.access_token,
             bare.device_id, bare_rooms[0], bare_rooms[1]],
            cwd=work, stdout=bare_log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_line(bare_log, "ready", bare_proc, 60)
        member = Member(synapse, user)
        await member.start()
        bare_client = AsyncClient(synapse.url, bare.user_id)
        bare_client.restore_login(bare.user_id, bare.device_id, bare.access_token)
        await bare_client.sync(timeout=0, full_state=True)
        n = 0

        async def relay_once(source: str, target: str) -> float:
            nonlocal n
            n += 1
            marker = f"m{n}"
            began = await member.say(source, f"{marker} hej")
            return await member.arrival(target, marker) - began

        for _ in range(5):  # warm-up, not counted
            await relay_once(lat[0], lat[1])
            await relay_once(bare_rooms[0], bare_rooms[1])
        assert ours_bot.proc is not None
        ours_pid = ours_bot.proc.pid
        latency: dict[str, list[float]] = {"ours": [], "bare": []}
        cpu0 = {"ours": cpu_seconds(ours_pid), "bare": cpu_seconds(bare_proc.pid)}
        for _ in range(samples):
            latency["ours"].append(await relay_once(lat[0], lat[1]))
            latency["bare"].append(await relay_once(bare_rooms[0], bare_rooms[1]))
        await asyncio.sleep(0.5)  # the last relays' bookkeeping
        cpu = {
            "ours": (cpu_seconds(ours_pid) - cpu0["ours"]) / samples,
            "bare": (cpu_seconds(bare_proc.pid) - cpu0["bare"]) / samples,
        }

        fan_times: dict[str, list[float]] = {"ours": [], "bare": []}
        for _ in range(10):
            n += 1
            marker = f"m{n}"
            began = await member.say(fan[0], f"{marker} till alla")
            last = max([await member.arrival(r, marker) for r in fan[1:]])
            fan_times["ours"].append(last - began)
            n += 1
            marker = f"m{n}"
            began = time.perf_counter()
            for room in bare_fan:
                await bare_client.room_send(
                    room, "m.room.message", {"msgtype": "m.text", "body": f"u: {marker} till alla"}
                )
            last = max([await member.arrival(r, marker) for r in bare_fan])
            fan_times["bare"].append(last - began)
        # The floor of the burst: the same events with no bridge in between, all at once:
        # the member's 300 in two rooms, and the 600 copies sent by a bare client in four
        # sequential streams (as our four lanes are), until the last of those arrives.
        began = time.perf_counter()
        floor = await asyncio.gather(
            burst(member, floor_rooms[:2], 150, n + 1),
            bare_streams(bare_client, floor_rooms[2:], 150, n + 1000),
        )
        n += 2000
        await wait_copies(member, floor_rooms, sum(len(m) for m in floor[1].values()), 120)
        floor_seconds = time.perf_counter() - began
        await bare_client.close()

        # A burst of 300 across two source rooms of a three-room bridge.
        began = time.perf_counter()
        sent = await burst(member, burst_rooms[:2], 150, n + 1)
        n += 400
        targets = {r: [o for o in burst_rooms if o != r] for r in burst_rooms[:2]}
        expected = sum(len(m) * 2 for m in sent.values())
        await wait_copies(member, burst_rooms, expected, 120)
        burst_seconds = time.perf_counter() - began
        await asyncio.sleep(1.0)
        burst_result = loss_and_doubles(member, sent, targets)

        # The same during which our bot is SIGKILLed and started again.
        kill_targets = {r: [o for o in kill_rooms if o != r] for r in kill_rooms[:2]}
        sending = asyncio.create_task(burst(member, kill_rooms[:2], 100, n + 1))
        await wait_copies(member, kill_rooms, 60, 60)
        ours_bot.kill()
        at_kill = copies_in(member, kill_rooms)
        ours_bot.start()
        sent = await sending
        expected = sum(len(m) * 2 for m in sent.values())
        await wait_copies(member, kill_rooms, expected, 120)
        await asyncio.sleep(1.5)
        kill_result = loss_and_doubles(member, sent, kill_targets)
    finally:
        if member is not None:
            await member.close()
        if ours_bot is not None:
            ours_bot.stop()
        if bare_proc is not None and bare_proc.poll() is None:
            bare_proc.terminate()
            bare_proc.wait(15)
        synapse.stop()

    ms = 1000
    print(f"Bridged message Matrix room -> Matrix room, {samples} samples each, interleaved:")
    print(comparison(latency, cpu, "CPU/relayed message", targets=(1.2, 1.5, None)))
    fan_ours, fan_bare = statistics.median(fan_times["ours"]), statistics.median(fan_times["bare"])
    print(
        f"Fan-out of one message to 20 rooms, until the last copy arrives (median of 10): "
        f"ours {fan_ours * ms:.1f} ms, 20 sequential sends by a bare client "
        f"{fan_bare * ms:.1f} ms, ratio {fan_ours / fan_bare:.2f}"
    )
    lost, doubled, disordered = burst_result
    print(
        f"Burst of 300 across 2 source rooms (600 copies) in {burst_seconds:.1f} s "
        f"(floor: the same events sent by the member and a bare client, {floor_seconds:.1f} s): "
        f"lost {lost}, doubled {doubled}, rooms out of order {disordered}"
    )
    lost, doubled, disordered = kill_result
    print(
        f"Burst of 200 with a SIGKILL after {at_kill} of 400 copies and a restart: "
        f"lost {lost}, doubled {doubled}, rooms out of order {disordered}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp:
        asyncio.run(bench(args.samples, Path(tmp)))


if __name__ == "__main__":
    main()
