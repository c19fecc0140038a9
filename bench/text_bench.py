"""Hostile text figures: a long console line, and the boundary's cleaning per event.

1. `samverkan run` on the console (a subprocess, as a user runs it) gets lines of one
   long word (256 KiB and 1 MiB) between two `!hjälp`: the time from writing the long
   line to the answer of the `!hjälp` after it, beside the same for a short line (the
   floor, measured in the same run, samples interleaved).
2. `clean_event` on an ordinary chat message and on a 4,000-character one, beside
   `str.replace` over the same text (the least any pass over it costs).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.events import MessageReceived, Sender  # noqa: E402
from bot.core.refs import MessageRef, RoomRef, UserRef  # noqa: E402
from bot.core.text import clean_event  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "5"))


def start_bot(tmp: Path) -> subprocess.Popen[str]:
    config = tmp / "bench.toml"
    config.write_text(
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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config), "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )


_seq = iter(range(1 << 30))


def answered(proc: subprocess.Popen[str], line: str) -> float:
    """Seconds from writing `line` and a marked command after it to the answer of the
    marked one (an unknown command: its answer names the marker)."""
    assert proc.stdin is not None and proc.stdout is not None
    marker = f"m{next(_seq)}x"
    began = time.perf_counter()
    proc.stdin.write(f"{line}\n!{marker}\n")
    proc.stdin.flush()
    while True:
        out = proc.stdout.readline()
        if not out:
            raise RuntimeError("the bot stopped")
        if marker in out:
            return time.perf_counter() - began


def console_figures() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_bot(Path(tmp))
        try:
            answered(proc, "!hjälp")  # warm up: the bot is ready once it answers
            times: dict[str, list[float]] = {"short": [], "256 KiB": [], "1 MiB": []}
            for _ in range(SAMPLES):
                times["short"].append(answered(proc, "!hjälp"))
                times["256 KiB"].append(answered(proc, "!" + "x" * (256 << 10)))
                times["1 MiB"].append(answered(proc, "!" + "x" * (1 << 20)))
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)
    floor = statistics.median(times["short"])
    print(f"console, a short line then a command answered: median {floor * 1000:.1f} ms (floor)")
    for name in ("256 KiB", "1 MiB"):
        median = statistics.median(times[name])
        print(
            f"console, one {name} word then a command answered: median {median * 1000:.1f} ms"
            f" = {median / floor:.1f} x floor (max {max(times[name]) * 1000:.1f} ms)"
        )


def event(text: str) -> MessageReceived:
    room = RoomRef("console", "falun")
    return MessageReceived(
        event_id="e",
        room=room,
        sender=Sender(UserRef("console", "anna"), "Anna"),
        at=datetime.now(UTC),
        ref=MessageRef(room, "e"),
        text=text,
    )


def cleaning_figures() -> None:
    for name, text in (
        ("an ordinary message", "Hej alla! Möte på torsdag kl 18 i Folkets hus."),
        ("4,000 characters", "ord " * 1000),
    ):
        e = event(text)
        n = 20_000 if len(text) < 100 else 2_000

        def ours_once(e: MessageReceived = e) -> None:
            clean_event(e, 4000)

        def floor_once(t: str = text) -> None:
            t.replace("\r", "\n")

        ours = min(timeit.repeat(ours_once, number=n, repeat=5)) / n
        floor = min(timeit.repeat(floor_once, number=n, repeat=5)) / n
        print(
            f"clean_event, {name}: {ours * 1e6:.2f} us"
            f" (floor str.replace {floor * 1e6:.2f} us; {ours / floor:.0f} x)"
        )


if __name__ == "__main__":
    console_figures()
    cleaning_figures()
