"""What a parsed feed changes in what is stored, worked out first, then applied at once.

`plan` compares the parse with the stored occurrences by key, in plain Python with no
database in between; `apply` writes the result with a few statements in one
transaction (updates, deletions and inserts by executemany, reminders armed in bulk),
so that loading ten thousand events costs the database, not a round trip per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from plugins.calendar.arming import Reminders
from plugins.calendar.model import Occurrence
from plugins.calendar.parsing import Parsed
from plugins.calendar.storage import Store


@dataclass
class Plan:
    added: list[Occurrence] = field(default_factory=list)
    updated: list[Occurrence] = field(default_factory=list)  # stored rows to rewrite
    rearm: list[Occurrence] = field(default_factory=list)  # unchanged, armed afresh
    moved: list[Occurrence] = field(default_factory=list)  # new times
    off: list[Occurrence] = field(default_factory=list)  # as stored, now cancelled
    vanished: list[Occurrence] = field(default_factory=list)  # as stored, gone
    changed: int = 0  # rewritten for their content only


def plan(
    stored: list[Occurrence], parsed: Parsed, now: datetime, end: datetime, first: bool
) -> Plan:
    """The difference between `stored` and `parsed`. `first`: the first look at this
    feed in this process, when every occurrence is armed afresh (offsets may have
    changed since the last run)."""
    result = Plan()
    by_key = {(o.uid, o.occ): o for o in stored}
    singles = {o.uid: o for o in stored if o.single}
    seen: set[int] = set()
    for item in parsed.occurrences:
        new = item
        old = by_key.get((new.uid, new.occ))
        if old is None and new.single and new.uid in singles:
            # A single event that moved keeps the identity it was first seen with.
            old = singles[new.uid]
            new = replace(new, occ=old.occ)
        if old is None:
            if not new.cancelled:
                result.added.append(new)
            continue
        assert old.id is not None
        if old.id in seen:
            continue
        seen.add(old.id)
        current = new.with_id(old.id)
        if new.cancelled:
            if not old.cancelled:
                result.updated.append(current)
                result.off.append(old)
            continue
        if new.start != old.start or old.cancelled:
            result.updated.append(current)
            (result.rearm if old.cancelled else result.moved).append(current)
            continue
        if not new.same_content(old):
            result.updated.append(current)
            result.changed += 1
        if first:
            result.rearm.append(current)
    for old in stored:
        assert old.id is not None
        cutoff = parsed.cutoffs.get(old.uid)
        if (
            old.id in seen
            or old.start <= now
            or old.start > end
            or (cutoff is not None and old.start > cutoff)
        ):
            continue
        # Gone from the feed: as good as cancelled.
        result.vanished.append(old)
    return result


async def apply(store: Store, reminders: Reminders, changes: Plan, now: datetime) -> None:
    """Write `changes`; for a caller inside a transaction."""
    await store.update_many(changes.updated)
    await store.delete_many(changes.vanished)
    await store.insert_many(changes.added)
    await reminders.drop_many(changes.off + [o for o in changes.vanished if not o.cancelled], now)
    await reminders.arm_many(changes.rearm + changes.added, now)
    await reminders.moved_many(changes.moved, now)
