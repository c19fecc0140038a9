"""Polls figures against a local Synapse and the Discord stand-in, from one run.

One open poll in 20 rooms (10 Matrix rooms, 10 Discord channels), 5,000 votes cast the
way members cast them (Matrix poll responses in the unstable and stable forms, some
taken back; Discord native votes, some changed), with our bot (`samverkan run`, help and
polls) SIGKILLed in the middle of the second burst and started again. Prints:
- lost and counted twice: each room's results post against the bench's own ledger of
  every vote cast (targets: zero);
- the time from `poll close` to the results posted in all 20 rooms (target under 10 s;
  it includes the configured settle of 1 s), beside a floor: the bench itself posting
  the same 20 messages, 10 to Synapse and 10 to the stand-in;
- bot CPU per vote over the first burst, beside a bare consumer (a matrix-nio client
  and a discord.py client, in one process, that only count the same vote events);
- the tally of 5,000 votes (the plugin's read of the votes table and its count with the
  per-association breakdown), beside a bare read and Counter over the same rows.

Run: .venv/bin/python bench/polls_bench.py
Needs .venv-synapse (make test builds it) or SAMVERKAN_SYNAPSE_PYTHON.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bridge_bench import Ours, create_room  # noqa: E402
from bench.matrix_bench import cpu_seconds, wait_line  # noqa: E402
from bench.polls_peers import (  # noqa: E402
    BARE,
    Ledger,
    Matrix,
    Owner,
    config_text,
    idle_cpu,
    tally_figures,
    until,
)
from tests.discord.standin import Recorded, StandIn  # noqa: E402
from tests.discord.standin.model import Message, User  # noqa: E402
from tests.matrix.synapse import Account, Synapse  # noqa: E402

ROOMS = 10  # on each platform
MATRIX_PER_ROOM = 10
DISCORD_VOTERS = 1500
RESULTS = re.compile(r"^(\d+)\. .*: (\d+) \(", re.MULTILINE)
TURNOUT = re.compile(r"Antal som röstat: (\d+)\.")
CREATED = re.compile(r"Omröstning (\d+) är skapad")


async def bench(work: Path) -> None:
    synapse = Synapse(work / "synapse")
    synapse.start()
    s = StandIn()
    await s.start()
    ours_bot: Ours | None = None
    bare_proc: subprocess.Popen[bytes] | None = None
    owner_client: Owner | None = None
    http = aiohttp.ClientSession()
    try:
        mx = Matrix(http, synapse.url)
        ours, owner, bare = (synapse.register(n) for n in ("ours", "owner", "bare"))
        voters = [synapse.register("v") for _ in range(ROOMS * MATRIX_PER_ROOM)]
        rooms = [create_room(synapse, owner, [ours, bare, *voters[i::ROOMS]]) for i in range(ROOMS)]
        for i, room in enumerate(rooms):
            for account in (bare, *voters[i::ROOMS]):
                await mx.call("POST", f"/_matrix/client/v3/join/{room}", account.access_token, {})
        guild = s.add_guild()
        channels = [s.add_channel(guild, f"kanal{i}") for i in range(ROOMS)]
        members = [s.add_user(f"d{i}") for i in range(DISCORD_VOTERS)]
        config = work / "bot.toml"
        text = config_text(synapse, ours, owner, s, guild.id, rooms, [c.id for c in channels], work)
        config.write_text(text, encoding="utf-8")
        script = work / "bare.py"
        script.write_text(BARE, encoding="utf-8")
        bare_log = work / "bare.log"
        bare_proc = subprocess.Popen(  # noqa: ASYNC220 (set-up, before anything is timed)
            [sys.executable, str(script), synapse.url, bare.user_id, bare.access_token,
             bare.device_id, s.api_url, s.gateway_url, s.token],
            cwd=work, stdout=bare_log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        await asyncio.to_thread(wait_line, bare_log, "ready", bare_proc, 60)
        ours_bot = Ours(config, work)
        await start(ours_bot)
        owner_client = Owner(synapse, owner, ours.user_id)
        await owner_client.start()
        results_at: dict[int, float] = {}

        def on_request(rec: Recorded) -> None:
            body = rec.json if isinstance(rec.json, dict) else {}
            if "Resultat för omröstning" in str(body.get("content", "")) and rec.status == 200:
                results_at.setdefault(int(rec.path.split("/")[4]), time.perf_counter())

        s.listeners.append(on_request)
        body = {
            "msgtype": "m.text",
            "body": '!poll new "Ny lokal?" Ja Nej Avstår --in all --for 1h',
        }
        await mx.send(owner, rooms[0], "m.room.message", body)
        created = await until(lambda: owner_client.found("m.room.message", "är skapad"), 60, "poll")
        found = CREATED.search(next(iter(created.values()))[0]["content"]["body"])
        assert found is not None
        poll_id = int(found[1])
        head = f"Omröstning {poll_id}:"
        start_type = "org.matrix.msc3381.poll.start"
        starts = await until(
            lambda: len(f := owner_client.found(start_type, head)) == ROOMS and f, 60, "polls"
        )

        def discord_polls() -> dict[int, Message]:
            return {m.channel_id: m for m in s.messages.values() if m.data.get("poll")}

        natives = await until(
            lambda: len(discord_polls()) == ROOMS and discord_polls(), 60, "polls"
        )
        ledger = Ledger()

        async def matrix_votes(rounds: int, step0: int, sent: list[int]) -> None:
            async def one(v: int, account: Account) -> None:
                room = rooms[v % ROOMS]
                for k in range(step0, step0 + rounds):
                    answers = [] if k % 7 == 6 else [str((v + k) % 3 + 1)]
                    await mx.vote(account, room, starts[room][0]["event_id"], answers)
                    ledger.vote(account.user_id, answers)
                    sent[0] += 1

            await asyncio.gather(*(one(v, a) for v, a in enumerate(voters)))

        where = {u.id: natives[channels[i % ROOMS].id] for i, u in enumerate(members)}

        async def discord_votes(picks: list[tuple[User, int]], sent: list[int]) -> None:
            for user, answer in picks:
                msg = where[user.id]
                await s.poll_vote(msg, user, answer)
                ledger.vote(f"d{user.id}", [str(answer)])
                sent[0] += 1
                await asyncio.sleep(0)

        # First burst: 1,000 Matrix and 1,000 Discord votes; CPU until both are idle.
        assert ours_bot.proc is not None
        pids = {"ours": ours_bot.proc.pid, "bare": bare_proc.pid}
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        first = [0]
        await asyncio.gather(
            matrix_votes(10, 0, first),
            discord_votes([(u, i % 3 + 1) for i, u in enumerate(members[:1000])], first),
        )

        def bare_counts() -> dict[str, int]:
            lines = [ln for ln in bare_log.read_text().splitlines() if ln.startswith("{")]
            got: dict[str, int] = json.loads(lines[-1]) if lines else {}
            return got

        await until(
            lambda: (
                bare_counts().get("matrix", 0) >= 1000 and bare_counts().get("discord", 0) >= 1000
            ),
            120,
            "bare",
        )
        cpu = {name: (await idle_cpu(pid) - cpu0[name]) / first[0] for name, pid in pids.items()}

        # Second burst, 2,000 votes, with the kill after about half of them.
        second = [0]
        changes = [(u, (i + 1) % 3 + 1) for i, u in enumerate(members[:500])]
        burst = asyncio.gather(
            matrix_votes(10, 10, second),
            discord_votes([(u, i % 3 + 1) for i, u in enumerate(members[1000:])] + changes, second),
        )
        await until(lambda: second[0] >= 1000, 120, "half the second burst")
        ours_bot.kill()
        at_kill = second[0]
        await burst
        await start(ours_bot)
        third = [0]
        await asyncio.gather(
            matrix_votes(5, 20, third),
            discord_votes([(u, (i + 2) % 3 + 1) for i, u in enumerate(members[500:1000])], third),
        )
        total = first[0] + second[0] + third[0]
        await asyncio.sleep(2.0)  # the last votes' way through Synapse's sync

        began = time.perf_counter()
        await mx.send(
            owner,
            rooms[0],
            "m.room.message",
            {"msgtype": "m.text", "body": f"!poll close {poll_id}"},
        )
        head = f"Resultat för omröstning {poll_id}:"
        await until(
            lambda: (
                len(owner_client.found("m.room.message", head)) == ROOMS
                and len(results_at) == ROOMS
            ),
            120,
            "results",
        )
        posted = [t for _, t in owner_client.found("m.room.message", head).values()] + list(
            results_at.values()
        )
        to_results = max(posted) - began

        # The floor: 20 posts as long, sent by the bench, the platforms at once.
        floor_text = texts_of(owner_client, s, head)[0].replace("Resultat", "Golv")
        began = time.perf_counter()

        async def post_discord() -> None:
            for channel in channels:
                url = f"{s.api_url}/channels/{channel.id}/messages"
                async with http.post(
                    url, json={"content": floor_text}, headers={"Authorization": f"Bot {s.token}"}
                ) as r:
                    assert r.status == 200

        async def post_matrix() -> None:
            for room in rooms:
                await mx.send(
                    owner, room, "m.room.message", {"msgtype": "m.notice", "body": floor_text}
                )

        await asyncio.gather(post_discord(), post_matrix())
        floor_seconds = time.perf_counter() - began
        texts = texts_of(owner_client, s, head)
        logs = sorted(work.glob("ours*.log"))  # noqa: ASYNC240 (read once, after the run)
        tracebacks = sum(p.read_text(errors="replace").count("Traceback") for p in logs)
    finally:
        if owner_client is not None:
            await owner_client.close()
        await http.close()
        if ours_bot is not None:
            ours_bot.stop()
        if bare_proc is not None and bare_proc.poll() is None:
            bare_proc.terminate()
            bare_proc.wait(15)
        await s.stop()
        synapse.stop()

    expected, voters_expected = ledger.counts(), len(ledger.last)
    lost = doubled = 0
    for text in texts:
        got = dict(RESULTS.findall(text))
        turnout = TURNOUT.search(text)
        for n, want in expected.items():
            have = int(got.get(n, 0))
            lost, doubled = lost + max(0, want - have), doubled + max(0, have - want)
        assert turnout is not None
        lost += max(0, voters_expected - int(turnout[1]))
        doubled += max(0, int(turnout[1]) - voters_expected)
    ours_tally, bare_tally = await tally_figures(work)
    ms, rooms_n = 1000, 2 * ROOMS
    print(f"{total} votes cast across {rooms_n} rooms, {voters_expected} voters at the close;")
    print(f"  SIGKILL after {at_kill} of the second burst's {second[0]} votes, then a restart")
    print(
        f"  results in {len(texts)} of {rooms_n} rooms, each against the ledger: lost {lost}, "
        f"counted twice {doubled}; tracebacks in the bot's logs: {tracebacks}"
    )
    print(
        f"From `poll close` to the results in all {rooms_n} rooms: {to_results:.2f} s "
        f"(target < 10 s; settle 1 s included); floor, 20 posts as long by the bench: "
        f"{floor_seconds:.2f} s, ratio {to_results / floor_seconds:.1f}"
    )
    print(
        f"CPU per vote over the first burst ({first[0]} votes): ours {cpu['ours'] * ms:.2f} ms, "
        f"bare consumer {cpu['bare'] * ms:.2f} ms, ratio {cpu['ours'] / cpu['bare']:.1f}"
    )
    print(
        f"Tally of 5,000 votes (median of 20): ours {ours_tally * ms:.2f} ms, bare read and "
        f"Counter {bare_tally * ms:.2f} ms, ratio {ours_tally / bare_tally:.1f}"
    )


def texts_of(owner: Owner, s: StandIn, head: str) -> list[str]:
    """The bot's posts that start with `head`, in the Matrix rooms and the channels."""
    texts = [str(src["content"]["body"]) for src, _ in owner.found("m.room.message", head).values()]
    texts += [
        str(m.data["content"])
        for m in s.messages.values()
        if str(m.data["content"]).startswith(("📊 " + head, head)) and m.author_id == s.bot.id
    ]
    return texts


async def start(bot: Ours) -> None:
    """Start our bot; if it does not come up, its log says why."""
    try:
        await asyncio.to_thread(bot.start)
    except RuntimeError:
        log = bot.work / f"ours{bot.runs}.log"
        print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="polls-bench-") as tmp:
        asyncio.run(bench(Path(tmp)))


if __name__ == "__main__":
    main()
