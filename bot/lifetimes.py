"""How long each kind of row lives, and the one purge that applies every lifetime.

Each namespace declares its tables' lifetimes next to its migrations
(`migrations.keep(Lifetime(...))`); the defaults there can be changed per table in
`[privacy] lifetimes`. A lifetime of None means "as long as it is needed": state and
configuration that the feature removes itself (a feed's position, an account link until
it is undone or erased). The purge logs counts only: what was removed never shows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lifetime:
    """One table's lifetime. `age` is an SQL expression over the table's row giving the
    moment (epoch seconds) its lifetime counts from, `where` what else a row must meet
    to be purged (say, no longer pending). `setting` names the key of `[privacy]
    lifetimes` that sets it, when it follows another table's (a poll's receipts live as
    long as the poll)."""

    table: str
    holds: str
    default: timedelta | None
    age: str | None = None
    where: str = ""
    setting: str = ""

    @property
    def key(self) -> str:
        return self.setting or self.table


@dataclass(frozen=True, slots=True)
class TableReport:
    table: str
    holds: str
    rows: int
    oldest: timedelta | None
    lifetime: timedelta | None


def effective(lifetime: Lifetime, overrides: Mapping[str, timedelta]) -> timedelta | None:
    if lifetime.default is None:
        return None
    return overrides.get(lifetime.key, lifetime.default)


async def existing_tables(db: Database) -> set[str]:
    return await db.table_names()


async def purge(
    db: Database,
    lifetimes: Sequence[Lifetime],
    now: datetime,
    overrides: Mapping[str, timedelta] | None = None,
) -> dict[str, int]:
    """Delete every row past its lifetime, table by table in the order declared (rows
    that point at others come first). Returns the count removed per table."""
    given = overrides or {}
    present = await existing_tables(db)
    removed: dict[str, int] = {}
    for lifetime in lifetimes:
        span = effective(lifetime, given)
        if span is None or lifetime.age is None or lifetime.table not in present:
            continue
        cutoff = (now - span).timestamp()
        extra = f" AND ({lifetime.where})" if lifetime.where else ""
        async with db.transaction():
            count = await db.execute(
                f"DELETE FROM {lifetime.table} WHERE ({lifetime.age}) < ?{extra}", (cutoff,)
            )
        if count:
            removed[lifetime.table] = count
    # Counts only: the names of the tables and how many rows, never what they held.
    log.info(
        "purge: removed %d row(s) past their lifetime%s",
        sum(removed.values()),
        "".join(f", {t} {n}" for t, n in sorted(removed.items())),
    )
    return removed


async def report(
    db: Database,
    lifetimes: Sequence[Lifetime],
    now: datetime,
    overrides: Mapping[str, timedelta] | None = None,
) -> list[TableReport]:
    given = overrides or {}
    present = await existing_tables(db)
    found: list[TableReport] = []
    for lifetime in lifetimes:
        if lifetime.table not in present:
            continue
        rows = int(await db.fetchval(f"SELECT COUNT(*) FROM {lifetime.table}") or 0)
        oldest: timedelta | None = None
        if lifetime.age is not None and rows:
            first = await db.fetchval(f"SELECT MIN({lifetime.age}) FROM {lifetime.table}")
            if first is not None:
                oldest = max(timedelta(0), now - datetime.fromtimestamp(float(first), now.tzinfo))
        found.append(
            TableReport(lifetime.table, lifetime.holds, rows, oldest, effective(lifetime, given))
        )
    return found


def undeclared(tables: Iterable[str], lifetimes: Sequence[Lifetime]) -> list[str]:
    """Tables that no namespace gave a lifetime (SQLite's own are not ours)."""
    known = {lt.table for lt in lifetimes}
    return sorted(t for t in tables if t not in known and not t.startswith("sqlite_"))


def days(span: timedelta | None) -> str:
    if span is None:
        return "while needed"
    if span < timedelta(days=1):
        return f"{int(span.total_seconds() // 3600)}h"
    return f"{span.days}d"
