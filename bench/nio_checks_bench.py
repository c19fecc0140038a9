"""What nio's checks of a sync answer cost, interpreted (jsonschema) and compiled
(bot/adapters/matrix/schemas.py), in one run.

Parses sync answers as Synapse sends them (one joined room with 1, 10 or 50 messages)
with nio's `SyncResponse.from_dict`, first with nio's own checks, then with the compiled
ones; the floor is copying the answer (which both do first, as a sync's JSON arrives
fresh). Prints the time per answer and the ratio.

Run: .venv/bin/python bench/nio_checks_bench.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nio import SyncResponse  # noqa: E402

from bot.adapters.matrix import schemas  # noqa: E402


def answer(messages: int) -> dict[str, Any]:
    events = [
        {
            "type": "m.room.message",
            "sender": f"@member{i % 4}:localhost",
            "content": {"msgtype": "m.text", "body": f"meddelande {i}"},
            "origin_server_ts": 1_765_150_000_000 + i,
            "unsigned": {"age": 10, "membership": "join"},
            "event_id": f"$event{i:040d}",
        }
        for i in range(messages)
    ]
    return {
        "next_batch": "s123_4_0_1_1_1_1_1_1_1",
        "device_one_time_keys_count": {"signed_curve25519": 50},
        "device_unused_fallback_key_types": ["signed_curve25519"],
        "rooms": {
            "join": {
                "!room:localhost": {
                    "timeline": {"events": events, "limited": False, "prev_batch": "t1-2"},
                    "state": {"events": []},
                    "unread_notifications": {"notification_count": 0, "highlight_count": 0},
                    "summary": {},
                }
            }
        },
    }


def per_answer(work: dict[str, Any], rounds: int, parse: bool) -> float:
    began = time.perf_counter()
    for _ in range(rounds):
        fresh = copy.deepcopy(work)
        if parse:
            assert isinstance(SyncResponse.from_dict(fresh), SyncResponse)
    return (time.perf_counter() - began) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    sizes = (1, 10, 50)
    interpreted = {n: per_answer(answer(n), rounds, True) for n in sizes}
    schemas.install()
    per_answer(answer(1), 50, True)  # compiled on first use, not counted
    compiled = {n: per_answer(answer(n), rounds, True) for n in sizes}
    floor = {n: per_answer(answer(n), rounds, False) for n in sizes}
    print(f"nio's SyncResponse.from_dict per answer, {rounds} rounds each:")
    for n in sizes:
        a, b, f = interpreted[n] - floor[n], compiled[n] - floor[n], floor[n]
        print(
            f"  {n:3d} messages: jsonschema {a * 1e3:7.3f} ms, compiled {b * 1e3:7.3f} ms"
            f" (ratio {b / a:.2f}); copying the answer {f * 1e3:.3f} ms"
        )


if __name__ == "__main__":
    main()
