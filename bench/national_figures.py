"""What bench/national_bench.py measures in one run, and the table it prints of the
runs side by side (one column an engine)."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Figures:
    engine: str
    rooms: Counter[str]
    sent: int = 0
    rate: float = 0.0
    cpu_share: float = 0.0
    hop_p50: float = 0.0
    hop_p99: float = 0.0
    lost: int = 0
    doubled: int = 0
    due: int = 0
    late_p50: float = 0.0
    late_p99: float = 0.0
    rem_lost: int = 0
    rem_doubled: int = 0
    rem_elsewhere: int = 0
    rss_peak: float = 0.0
    rss_end: float = 0.0
    armed: int = 0
    polls: int = 0
    start_s: float = 0.0
    arm_s: float = 0.0
    synapse_share: float = 0.0
    bench_share: float = 0.0
    load: str = ""
    limited: int = 0
    failover: dict[str, float] = field(default_factory=dict)
    pairs: dict[str, tuple[float, float]] = field(default_factory=dict)
    put_p50: float = 0.0
    put_p99: float = 0.0
    notes: list[str] = field(default_factory=list)


def table(results: list[Figures], args: argparse.Namespace) -> str:
    ms, nan = 1000, float("nan")
    rows: list[tuple[str, list[str]]] = [
        ("rooms (matrix/discord/console)", [
            f"{f.rooms['m']}/{f.rooms['d']}/{f.rooms['c']}" for f in results]),
        ("reminders armed (scheduler rows)", [f"{f.armed:,}" for f in results]),
        ("polls open", [str(f.polls) for f in results]),
        ("bot start to ready (s)", [f"{f.start_s:.1f}" for f in results]),
        ("ready to every reminder armed (s, <=)", [f"{f.arm_s:.1f}" for f in results]),
        (f"bridged messages sent ({args.seconds:.0f} s)", [
            f"{f.sent} ({f.rate:.1f}/s)" for f in results]),
        ("bot CPU share of one core (< 50 %)", [f"{f.cpu_share * 100:.1f} %" for f in results]),
        ("bridge hop p50 / p99 (ms)", [
            f"{f.hop_p50 * ms:.0f} / {f.hop_p99 * ms:.0f}" for f in results]),
        *(
            (f"  hop {pair} p50 / p99 (ms)", [
                "{:.0f} / {:.0f}".format(*(x * ms for x in f.pairs.get(pair, (nan, nan))))
                for f in results])
            for pair in sorted({k for f in results for k in f.pairs})
        ),
        ("  floor: a member's send to Synapse p50/p99", [
            f"{f.put_p50 * ms:.0f} / {f.put_p99 * ms:.0f}" for f in results]),
        ("copies lost / doubled (0 / 0)", [f"{f.lost} / {f.doubled}" for f in results]),
        ("reminders due in window", [str(f.due) for f in results]),
        ("reminder lateness p50 / p99 (ms)", [
            f"{f.late_p50 * ms:.0f} / {f.late_p99 * ms:.0f}" for f in results]),
        ("reminders lost / doubled / elsewhere", [
            f"{f.rem_lost} / {f.rem_doubled} / {f.rem_elsewhere}" for f in results]),
        ("bot RSS peak / at end (MiB)", [f"{f.rss_peak:.0f} / {f.rss_end:.0f}" for f in results]),
        ("beside it: Synapse / bench CPU share", [
            f"{f.synapse_share * 100:.0f} % / {f.bench_share * 100:.0f} %" for f in results]),
        ("load average at the end", [f.load for f in results]),
        ("watcher syncs cut short (limited)", [str(f.limited) for f in results]),
    ]  # fmt: skip
    if args.failover:
        rows += [
            ("failover: kill -9 -> standby takes over (s)", [
                f"{f.failover.get('takeover', float('nan')):.2f}" for f in results]),
            ("failover: kill -9 -> standby's adapters ready (s)", [
                f"{f.failover.get('ready', float('nan')):.2f}" for f in results]),
            ("failover: kill -9 -> first Discord copy after (s)", [
                f"{f.failover.get('first_relay', float('nan')):.2f}" for f in results]),
        ]  # fmt: skip
    width = max(len(label) for label, _ in rows) + 2
    cols = [max(14, *(len(v[i]) + 2 for _, v in rows)) for i in range(len(results))]
    head = "".join(f"{f.engine:>{c}}" for f, c in zip(results, cols, strict=True))
    out = [f"{'':{width}}" + head]
    for label, values in rows:
        cells = "".join(f"{v:>{c}}" for v, c in zip(values, cols, strict=True))
        out.append(f"{label:{width}}" + cells)
    for f in results:
        out += [f"note ({f.engine}): {n}" for n in f.notes]
    return "\n".join(out)
