"""Console figures: `!hjälp` round trip, throughput, and idle memory.

Runs `samverkan run` on the console adapter as a subprocess, exactly as a user would,
and beside it a floor: a bare Python process that echoes each line (the least any
Python program reading stdin and printing can take), measured in the same run with the
samples interleaved. Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
BURST = int(os.environ.get("BENCH_BURST", "2000"))

FLOOR = "import sys\nfor line in sys.stdin:\n    print('[#falun] x: ' + line.strip(), flush=True)\n"


def config(tmp: Path) -> Path:
    path = tmp / "bench.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [bot]
            database = "{tmp / "bench.db"}"
            [console]
            enabled = true
            [[associations]]
            id = "falun"
            name = "Falun"
            rooms = ["console:falun"]
            """
        ),
        encoding="utf-8",
    )
    return path


def start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        cwd=ROOT,
    )


def round_trip(proc: subprocess.Popen[str], line: str) -> float:
    assert proc.stdin and proc.stdout
    t0 = time.perf_counter()
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    head = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    if not head:
        raise RuntimeError("process ended")
    return elapsed


def drain_extra(proc: subprocess.Popen[str], lines: int) -> None:
    assert proc.stdout
    for _ in range(lines):
        proc.stdout.readline()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        bot = start(
            [
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(config(tmp)),
                "--log-level",
                "WARNING",
            ]
        )
        floor = start([sys.executable, "-c", FLOOR])
        # Warm up: the first reply includes start-up.
        t0 = time.perf_counter()
        round_trip(bot, "#falun bo: !hjälp hjälp")
        ready = time.perf_counter() - t0
        round_trip(floor, "warm")
        time.sleep(1.0)
        idle_rss = rss_kib(bot.pid)

        bot_rt: list[float] = []
        floor_rt: list[float] = []
        for _ in range(SAMPLES):
            bot_rt.append(round_trip(bot, "#falun bo: !hjälp hjälp"))
            floor_rt.append(round_trip(floor, "hjälp"))

        assert bot.stdin and bot.stdout
        t0 = time.perf_counter()
        for _ in range(BURST):
            bot.stdin.write("#falun bo: !hjälp hjälp\n")
        bot.stdin.flush()
        drain_extra(bot, BURST)
        burst = time.perf_counter() - t0
        busy_rss = rss_kib(bot.pid)
        for proc in (bot, floor):
            assert proc.stdin
            proc.stdin.close()
            proc.wait(timeout=60)

    med, p99 = statistics.median(bot_rt), pct(bot_rt, 0.99)
    fmed, fp99 = statistics.median(floor_rt), pct(floor_rt, 0.99)
    print(
        f"console !hjälp round trip: median {med * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms,"
        f" {SAMPLES} samples"
    )
    print(f"floor (bare echo process):  median {fmed * 1000:.2f} ms, p99 {fp99 * 1000:.2f} ms")
    print(f"ratio to floor: median {med / fmed:.1f}x, p99 {p99 / fp99:.1f}x")
    print(f"throughput: {BURST / burst:.0f} commands/s end to end ({BURST} lines in {burst:.2f} s)")
    print(f"start to first reply: {ready * 1000:.0f} ms")
    print(f"RSS: idle {idle_rss / 1024:.1f} MiB, after the burst {busy_rss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
