"""Formatting figures: conversion time per message, both directions, and the case count.

1. Ordinary messages (the case table's sources, tests/formatting/cases.py): the median
   time of one whole conversion, as a copy is made: Discord -> Matrix (parse the
   Markdown, render HTML and the plain body, split) and Matrix -> Discord (parse the
   HTML, render the Markdown, split into 2000-character parts).
2. The hostile set (tests/formatting/hostile.py) at 60,000 characters, and at 30,000
   beside it: the worst input of each direction, and the worst ratio of the time at
   60,000 to the time at 30,000 (linear: at most 2). Each figure is the least of
   BENCH_SAMPLES runs (default 5), measured with time.perf_counter in this process
   (the least: on a shared machine the others measure the neighbours too).
3. How many conversion cases agree with what Element and Discord show: the cases
   without a known difference (`ours`), of all.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.discord.markdown_out import parts_of  # noqa: E402
from bot.adapters.matrix.formatting import text_contents  # noqa: E402
from bot.core.document import Document  # noqa: E402
from bot.core.html_in import parse_html  # noqa: E402
from bot.core.markdown import parse  # noqa: E402
from bot.core.messages import OutgoingMessage  # noqa: E402
from tests.formatting import cases, hostile  # noqa: E402

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "5"))
Convert = Callable[[str], object]


def to_matrix(markdown: str) -> object:
    return text_contents(OutgoingMessage(text="", document=parse(markdown, cases.Names())))


def to_discord(html: str) -> object:
    return parts_of(OutgoingMessage(text="", document=parse_html(html)))


def core_text_to_discord(text: str) -> object:
    return parts_of(OutgoingMessage(text))


def html_to_matrix(html: str) -> object:
    return text_contents(OutgoingMessage(text="", document=parse_html(html)))


def plain_to_discord(body: str) -> object:
    return parts_of(OutgoingMessage(text="", document=Document.plain(body)))


def median_ms(convert: Convert, source: str, samples: int = SAMPLES) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        convert(source)
        times.append(time.perf_counter() - started)
    # The least of the samples: on a shared machine the others measure the neighbours.
    return min(times) * 1000


def ordinary(convert: Convert, sources: list[str]) -> float:
    convert(sources[0])  # the first call builds markdown-it's rules
    per_message = [median_ms(convert, s, max(SAMPLES, 20)) for s in sources]
    return statistics.median(per_message)


def hostile_set(convert: Convert, makers: dict[str, hostile.Make]) -> tuple[str, float, str, float]:
    worst, worst_ms, worst_ratio, ratio_of = "", 0.0, 0.0, ""
    for name, make in makers.items():
        half = median_ms(convert, make(30_000))
        full = median_ms(convert, make(60_000))
        if full > worst_ms:
            worst, worst_ms = name, full
        ratio = full / max(half, 0.05)
        if ratio > worst_ratio:
            worst_ratio, ratio_of = ratio, name
    return worst, worst_ms, ratio_of, worst_ratio


def main() -> None:
    print(f"formatting: least of {SAMPLES} runs per figure, time.perf_counter, one process")
    d2m = [c.source for c in cases.DISCORD_TO_MATRIX]
    m2d = [c.source for c in cases.MATRIX_TO_DISCORD]
    ordinary_set: list[tuple[str, Convert, list[str]]] = [
        ("Discord -> Matrix", to_matrix, d2m),
        ("Matrix -> Discord", to_discord, m2d),
    ]
    for label, convert, sources in ordinary_set:
        p50 = ordinary(convert, sources)
        print(f"ordinary {label}, p50 of {len(sources)} messages: {p50:.3f} ms")
    hostile_sets: list[tuple[str, Convert, dict[str, hostile.Make]]] = [
        ("Discord Markdown -> Matrix", to_matrix, hostile.MARKDOWN),
        ("Discord Markdown -> Discord parts", core_text_to_discord, hostile.MARKDOWN),
        ("Matrix HTML -> Discord", to_discord, hostile.HTML),
        ("Matrix HTML -> Matrix", html_to_matrix, hostile.HTML),
        ("Matrix plain body -> Discord", plain_to_discord, hostile.PLAIN),
    ]
    for label, convert, makers in hostile_sets:
        worst, ms, ratio_of, ratio = hostile_set(convert, makers)
        print(
            f"hostile {label}: worst at 60,000 characters {ms:.1f} ms ({worst!r}); "
            f"worst 60k/30k time ratio {ratio:.2f} ({ratio_of!r})"
        )
    table = [c for group in cases.ALL for c in group]
    agree = sum(1 for c in table if c.ours is None)
    print(
        f"conversion cases that agree with what Element and Discord show: {agree} of {len(table)}"
    )


if __name__ == "__main__":
    main()
