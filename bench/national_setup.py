"""The national bench's set-up: each instance's configuration, its database, and the
year of events stored through the calendar's own storage before the bot starts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.national_peers import (  # noqa: E402
    TZ,
)
from bot.storage.core_schema import core_migrations  # noqa: E402
from bot.storage.engines import open_database  # noqa: E402
from plugins.calendar.model import JOB_PREFIX, MANUAL, Occurrence, occ_id  # noqa: E402
from plugins.calendar.storage import Store, migrations  # noqa: E402
from tests.discord.standin import StandIn  # noqa: E402
from tests.engines import postgres_database  # noqa: E402
from tests.matrix.synapse import Account, Synapse  # noqa: E402

# -- the configuration -----------------------------------------------------------------


@dataclass
class Layout:
    """Rooms by association and the bridges: room keys are `m:<id>`, `d:<id>`, `c:<name>`."""

    rooms: list[str]  # per association, in order
    bridges: list[list[str]]

    @staticmethod
    def ref(key: str) -> str:
        platform, _, rest = key.partition(":")
        return {"m": "matrix", "d": "discord", "c": "console"}[platform] + ":" + rest


def config_text(
    synapse: Synapse, ours: Account, organiser: Account, s: StandIn, guild: int,
    layout: Layout, database: str, work: Path, console: bool,
) -> str:  # fmt: skip
    assocs = "".join(
        f'[[associations]]\nid = "a{i}"\nname = "Förening {i}"\nrooms = ["{Layout.ref(k)}"]\n'
        for i, k in enumerate(layout.rooms)
    )
    bridges = "".join(
        f'[[bridges]]\nid = "b{n}"\nrooms = {json.dumps([Layout.ref(k) for k in b])}\n'
        for n, b in enumerate(layout.bridges)
    )
    return f"""
[bot]
database = "{database}"
organisers = ["matrix:{organiser.user_id}"]
plugins = ["plugins.bridge", "plugins.calendar", "plugins.polls"]
[console]
enabled = {"true" if console else "false"}
[matrix]
homeserver = "{synapse.url}"
user_id = "{ours.user_id}"
password = "{ours.password}"
store_path = "{work / "store"}"
pickle_key = "bench-pickle-key"
[discord]
token = "{s.token}"
guild_ids = [{guild}]
api_base_url = "{s.api_url}"
gateway_url = "{s.gateway_url}"
[calendar]
reminders = ["7d", "1d", "1h"]
horizon = "400d"
{assocs}
{bridges}
"""


@contextlib.asynccontextmanager
async def database_for(engine: str, work: Path) -> AsyncIterator[str]:
    if engine == "sqlite":
        yield str(work / "bot.db")
        return
    async with postgres_database("samverkan_bench") as url:
        yield url.dsn()


async def store_events(
    database: str, assocs: int, year: int, window: list[tuple[float, int]], now: datetime
) -> None:
    """`year` events over the next year (each armed 7d, 1d and 1h before it), and one per
    (due, association) of `window` whose 1h reminder falls due at `due`: stored as
    `event add` stores them; the bot arms them when ready."""
    db = await open_database(database)
    try:
        await core_migrations.upgrade(db)
        await migrations.upgrade(db)
        rnd = random.Random(16)
        items: list[Occurrence] = []
        span = timedelta(days=357).total_seconds()
        for n in range(year):
            start = now + timedelta(days=8, seconds=round(span * n / year))
            items.append(event(f"y{n:06d}", f"Medlemsmöte {n}", start, f"a{rnd.randrange(assocs)}"))
        for k, (due, assoc) in enumerate(window):
            start = datetime.fromtimestamp(due, UTC) + timedelta(hours=1)
            items.append(event(f"w{k:05d}", f"Kampanjdag q{k:05d}", start, f"a{assoc}"))
        store = Store(db)
        for i in range(0, len(items), 5000):
            async with db.transaction():
                await store.insert_many(items[i : i + 5000])
    finally:
        await db.close()


def event(uid: str, title: str, start: datetime, assoc: str) -> Occurrence:
    return Occurrence(
        source=MANUAL, uid=f"{uid}@bench", occ=occ_id(start, TZ), start=start,
        end=start + timedelta(hours=2), all_day=False, title=title, location="Folkets hus",
        associations=(assoc,), single=True,
    )  # fmt: skip


async def armed_by(database: str, want: int, timeout: float = 600) -> tuple[int, float]:
    """Until the scheduler's table holds `want` reminders: how many, and when."""
    deadline = time.monotonic() + timeout
    while (armed := await armed_reminders(database)) < want and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    return armed, time.time()


async def armed_reminders(database: str) -> int:
    db = await open_database(database)
    try:
        row = await db.fetchone(
            "SELECT COUNT(*) FROM schedule WHERE key LIKE ? AND status IN ('pending', 'done')",
            (JOB_PREFIX + "%",),
        )
        return int(row[0]) if row else 0
    finally:
        await db.close()
