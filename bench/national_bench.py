"""A national-size simulation on one machine: `samverkan run` with the bridge, calendar
and polls plugins against a real Synapse, the Discord stand-in and the console.

Set-up (per engine, each on a fresh Synapse, stand-in and database):
- N associations (default 300) with one room each, in bridges of three rooms: a Matrix
  room, a Discord channel and a console room (the console adapter of the subprocess, fed
  on its stdin and read on its stdout). With `--failover` the console room is a second
  Discord channel: a console belongs to one process and cannot fail over.
- 100,000 reminders over a year: events stored through the calendar's own storage API
  (as `event add` stores them) before the bot starts; the bot arms them itself on ready
  (three offsets each, 7d/1d/1h), and the bench checks the scheduler's table holds them.
  A few hundred more events fall due (their 1h reminder) inside the measured window: on
  the real clock, no shifted time; their due instants are placed `--lead` seconds after
  the set-up began, and the window starts once the bot is ready and that instant came.
- 20 polls opened by an organiser's `!poll new` commands, 15 associations each.

Then, for `--seconds` (default 60), `--rate` (default 50) bridged messages a second, half
from Matrix members (raw client-server sends), half from Discord members (stand-in
MESSAGE_CREATE), open loop. Measured for the bot process: CPU share of one core (utime +
stime from /proc/<pid>/stat over the window / wall time; target < 50 %), bridge hop p50
and p99 (send until the copy reached the other platform: Synapse's origin_server_ts, the
stand-in's webhook request, the console's stdout line), reminder lateness p50/p99 (due
instant until the post reached the platform), peak RSS (VmHWM), lost and doubled copies
(every message once in each other room of its bridge).

`--failover` (PostgreSQL): a second process on the same database as a warm standby;
SIGKILL of the active one in the middle of the window; failover time (kill until the
standby says it takes over, and until its first relayed message), lost and doubled.

Prints figures; asserts nothing about timing. Run:
  .venv/bin/python bench/national_bench.py [--associations 300] [--seconds 60]
      [--rate 50] [--reminders 100000] [--engine sqlite|postgresql|both] [--failover]
Needs .venv-synapse (make test builds it) and PostgreSQL on 127.0.0.1:5432 for that engine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.matrix_bench import cpu_seconds  # noqa: E402
from bench.national_figures import Figures, table  # noqa: E402
from bench.national_peers import (  # noqa: E402
    CREATED,
    POST,
    TAKEOVER,
    WEBHOOK_POST,
    Bot,
    Ledger,
    Matrix,
    Watcher,
    pct,
    proc_status,
)
from bench.national_setup import (  # noqa: E402
    Layout,
    armed_by,
    config_text,
    database_for,
    store_events,
)
from tests.discord.standin import Recorded, StandIn  # noqa: E402
from tests.discord.standin.model import Channel, User  # noqa: E402
from tests.matrix.synapse import Account, Synapse  # noqa: E402

# -- one run ---------------------------------------------------------------------------


async def run(engine: str, args: argparse.Namespace, work: Path) -> Figures:
    began_setup = time.time()
    console = not args.failover
    ledger = Ledger()
    synapse = Synapse(work / "synapse")
    await asyncio.to_thread(synapse.start)
    s = StandIn()
    s.limiter.limit = 1_000_000 if args.no_limits else s.limiter.limit
    await s.start()
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
    bots: list[Bot] = []
    watcher: Watcher | None = None
    try:
        mx = Matrix(http, synapse.url)
        ours = await asyncio.to_thread(synapse.register, "ours")
        organiser = await asyncio.to_thread(synapse.register, "org")
        members = [await asyncio.to_thread(synapse.register, "m") for _ in range(args.members)]
        guild = s.add_guild()
        d_users: list[User] = [s.add_user(f"medlem{i}") for i in range(args.members)]
        channels: dict[str, Channel] = {}
        n_bridges = args.associations // 3
        rooms: list[str] = []
        bridges: list[list[str]] = []
        matrix_rooms: list[str] = []
        sem = asyncio.Semaphore(8)

        async def make_room(i: int) -> str:
            async with sem:
                invite = [ours.user_id, *(m.user_id for m in members)]
                answer = await mx.call(
                    "POST", "/_matrix/client/v3/createRoom", organiser.access_token,
                    {"invite": invite, "name": f"Förening {3 * i}"},
                )  # fmt: skip
                room = str(answer["room_id"])
                for m in members:
                    await mx.call("POST", f"/_matrix/client/v3/join/{room}", m.access_token, {})
                return room

        matrix_rooms = list(await asyncio.gather(*(make_room(i) for i in range(n_bridges))))
        for i in range(n_bridges):
            d = s.add_channel(guild, f"forening-{3 * i + 1}")
            channels[f"d:{d.id}"] = d
            if console:
                third = f"c:c{3 * i + 2}"
            else:
                d2 = s.add_channel(guild, f"forening-{3 * i + 2}")
                channels[f"d:{d2.id}"] = d2
                third = f"d:{d2.id}"
            bridge = [f"m:{matrix_rooms[i]}", f"d:{d.id}", third]
            rooms += bridge
            bridges.append(bridge)
        layout = Layout(rooms, bridges)
        figures = Figures(engine, Counter(k.split(":")[0] for k in rooms))

        def on_request(rec: Recorded) -> None:
            if rec.status not in (200, 204):
                return
            body = rec.json if isinstance(rec.json, dict) else {}
            text = str(body.get("content", ""))
            if rec.route == WEBHOOK_POST:
                hook = s.webhooks.get(int(rec.path.split("/")[4]))
                if hook is not None:
                    ledger.copy(f"d:{hook.channel_id}", text, time.time())
            elif rec.route == POST:
                ledger.copy(f"d:{rec.path.split('/')[4]}", text, time.time())

        s.listeners.append(on_request)

        # The window's reminders: due spread over it, each for one association.
        lead = args.lead if args.lead else 90 + args.associations * 0.3
        t0 = began_setup + lead
        rnd = random.Random(1)
        due = [
            (t0 + 3 + (args.seconds - 6) * (k + 0.5) / args.due, rnd.randrange(len(rooms)))
            for k in range(args.due)
        ]
        for k, (at, assoc) in enumerate(due):
            ledger.due[f"q{k:05d}"] = (at, rooms[assoc])
        async with database_for(engine, work) as database:
            try:
                year = max(0, -(-(args.reminders - args.due) // 3))
                await store_events(database, len(rooms), year, due, datetime.now(UTC))
                config = work / "bot.toml"
                text = config_text(
                    synapse, ours, organiser, s, guild.id, layout, database, work, console
                )
                config.write_text(text, encoding="utf-8")
                bot = Bot(config, work, "bot1", ledger)
                bots.append(bot)
                started = time.time()
                await bot.start()
                ready = await bot.wait_for("ready: adapters", 300)
                figures.start_s = ready - started
                if args.failover:
                    standby = Bot(config, work, "bot2", ledger)
                    bots.append(standby)
                    await standby.start()
                    deadline = time.monotonic() + 120
                    while standby.role() != "standby":
                        if time.monotonic() > deadline or standby.proc is None:
                            raise TimeoutError(f"no standby; see {standby.log}")
                        await asyncio.sleep(0.2)
                # The bot arms its 100,000 reminders when ready; the window waits for that.
                arming = asyncio.create_task(armed_by(database, year * 3 + args.due))
                watcher = Watcher(mx, members[0], ours.user_id, ledger)
                await watcher.start()
                # 20 polls, 15 associations each, from the organiser in the first Matrix room.
                poll_assocs = [
                    [f"a{j}" for j in range(len(rooms)) if j % args.polls == k]
                    for k in range(args.polls)
                ]
                for k, targets in enumerate(poll_assocs):
                    body = f'!poll new "Fråga {k}?" Ja Nej Avstår --for 7d --in {",".join(targets)}'
                    await mx.send(organiser, matrix_rooms[0], body, f"poll{k}")
                deadline = time.monotonic() + 180
                while True:
                    made = {m[1] for t in watcher.texts if (m := CREATED.search(t))}
                    if len(made) >= args.polls or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                figures.polls = len(made)
                figures.armed, armed_at = await arming
                figures.arm_s = armed_at - ready
                if time.time() > t0:
                    figures.notes.append(
                        f"set-up took {time.time() - began_setup:.0f} s, beyond --lead"
                        f" {lead:.0f} s: the first reminders of the window were due before it began"
                    )
                await asyncio.sleep(max(0.0, t0 - time.time()))
                await asyncio.sleep(1.0)  # the polls' and arming's tail
                figures.failover = await drive(
                    args, figures, ledger, bots, synapse, mx, members, s, d_users, channels, layout
                )
                figures.limited = watcher.limited
            finally:
                # Before the database is dropped: a bot without it would only complain.
                for bot in bots:
                    await bot.stop()
    finally:
        if watcher is not None:
            await watcher.close()
        for bot in bots:
            await bot.stop()
        await http.close()
        await s.stop()
        await asyncio.to_thread(synapse.stop)
    latencies, figures.lost, figures.doubled = ledger.hops()
    figures.hop_p50, figures.hop_p99 = pct(latencies["all"], 50), pct(latencies["all"], 99)
    figures.pairs = {k: (pct(v, 50), pct(v, 99)) for k, v in latencies.items() if k != "all"}
    figures.put_p50, figures.put_p99 = pct(ledger.puts, 50), pct(ledger.puts, 99)
    late, figures.rem_lost, figures.rem_doubled, figures.rem_elsewhere = ledger.lateness()
    figures.due = len(ledger.due)
    figures.late_p50, figures.late_p99 = pct(late, 50), pct(late, 99)
    tracebacks = sum(b.text().count("Traceback") for b in bots)
    if tracebacks:
        figures.notes.append(f"{tracebacks} traceback(s) in the bot's logs ({work})")
    return figures


async def drive(
    args: argparse.Namespace, figures: Figures, ledger: Ledger, bots: list[Bot],
    synapse: Synapse, mx: Matrix, members: list[Account], s: StandIn, d_users: list[User],
    channels: dict[str, Channel], layout: Layout,
) -> dict[str, float]:  # fmt: skip
    """The measured window: `rate` messages a second, Matrix and Discord in turn."""
    bot = bots[0]
    assert synapse.process is not None
    pids = {"bot": bot.pid, "synapse": synapse.process.pid, "bench": os.getpid()}
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    wall0 = time.time()
    rnd = random.Random(2)
    tasks: set[asyncio.Task[None]] = set()
    errors: list[str] = []
    total = int(args.rate * args.seconds)
    kill_at = total // 2 if args.failover else -1
    killed_at = 0.0
    cpu_at_kill = 0.0

    async def one(n: int, marker: str) -> None:
        bridge = layout.bridges[rnd.randrange(len(layout.bridges))]
        source = bridge[0] if n % 2 == 0 else bridge[1]
        targets = [k for k in bridge if k != source]
        text = f"{marker} hej från föreningen, nummer {n}"
        try:
            began = time.time()
            ledger.sent[marker] = (source, began, targets)
            if source.startswith("m:"):
                account = members[n % len(members)]
                await mx.send(account, source[2:], text, marker)
                ledger.puts.append(time.time() - began)
            else:
                await s.user_message(channels[source], d_users[n % len(d_users)], text)
        except Exception as exc:  # a failed send is counted, not raised
            ledger.sent.pop(marker, None)
            errors.append(repr(exc))

    t_start = time.monotonic()
    for n in range(total):
        if n == kill_at:
            cpu_at_kill = cpu_seconds(bot.pid)
            killed_at = time.time()
            bot.kill()
        await asyncio.sleep(max(0.0, t_start + n / args.rate - time.monotonic()))
        task = asyncio.create_task(one(n, f"x{n:07d}"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    wall = time.time() - wall0
    figures.sent = len(ledger.sent)
    figures.rate = figures.sent / wall
    if args.failover:
        cpu_bot = cpu_at_kill - cpu0["bot"]
        figures.cpu_share = cpu_bot / (killed_at - wall0)
    else:
        figures.cpu_share = (cpu_seconds(bot.pid) - cpu0["bot"]) / wall
    figures.synapse_share = (cpu_seconds(pids["synapse"]) - cpu0["synapse"]) / wall
    figures.bench_share = (cpu_seconds(pids["bench"]) - cpu0["bench"]) / wall
    figures.load = " ".join(Path("/proc/loadavg").read_text().split()[:3])  # noqa: ASYNC240
    live = bots[-1] if args.failover else bot
    if not args.failover:
        figures.rss_peak = proc_status(bot.pid, "VmHWM")
        figures.rss_end = proc_status(bot.pid, "VmRSS")
    if errors:
        figures.notes.append(f"{len(errors)} send(s) failed, e.g. {errors[0]}")
    # The tail: until every copy arrived, or 60 s of nothing more (then loss shows).
    last, quiet_since = -1, time.monotonic()
    while ledger.copies() < ledger.expected() and time.monotonic() - quiet_since < 60:
        await asyncio.sleep(0.5)
        if ledger.copies() != last:
            last, quiet_since = ledger.copies(), time.monotonic()
    await asyncio.sleep(3.0)  # doubles arrive late, if at all
    out: dict[str, float] = {}
    if args.failover:
        took = live.text()
        figures.rss_peak = proc_status(live.pid, "VmHWM")
        figures.rss_end = proc_status(live.pid, "VmRSS")
        taken = log_time(live, TAKEOVER) if TAKEOVER in took else killed_at
        if TAKEOVER in took:
            out["takeover"] = taken - killed_at
        if "ready: adapters" in took:
            out["ready"] = log_time(live, "ready: adapters") - killed_at
        # On Discord (the stand-in's own clock at the request): a copy Synapse stamps
        # after the takeover may have left the killed process before it died.
        after = [
            at for (room, _m), v in ledger.seen.items() if room.startswith("d:")
            for at in v if at > taken
        ]  # fmt: skip
        if after:
            out["first_relay"] = min(after) - killed_at
        out["killed_at"] = killed_at
    return out


def log_time(bot: Bot, words: str) -> float:
    """The wall time of the first log line with `words` (its log's own timestamp, or
    the file's modification if the line carries none)."""
    for line in bot.text().splitlines():
        if words in line:
            with contextlib.suppress(ValueError, KeyError, json.JSONDecodeError):
                record = json.loads(line)
                stamp = record.get("time") or record.get("ts") or record.get("asctime")
                if stamp:
                    return datetime.fromisoformat(str(stamp)).timestamp()
            found = re.match(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[.,]?\d*)", line)
            if found:
                when = datetime.fromisoformat(found[1].replace(",", "."))
                return when.replace(tzinfo=when.tzinfo or UTC).timestamp()
    return bot.log.stat().st_mtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=50, help="bridged messages a second")
    parser.add_argument("--reminders", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=300, help="reminders due in the window")
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--members", type=int, default=4, help="senders on each platform")
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--failover", action="store_true", help="two processes on PostgreSQL")
    parser.add_argument("--lead", type=float, default=0, help="set-up seconds before the window")
    parser.add_argument("--no-limits", action="store_true", help="no Discord rate limits")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    if args.failover:
        engines = ["postgresql"]
    results = []
    for engine in engines:
        work = Path(tempfile.mkdtemp(prefix=f"national-{engine}-"))
        print(f"== {engine}: {args.associations} associations, {args.seconds:.0f} s at "
              f"{args.rate:.0f}/s (work: {work})", flush=True)  # fmt: skip
        results.append(asyncio.run(run(engine, args, work)))
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print(table(results, args))


if __name__ == "__main__":
    main()
