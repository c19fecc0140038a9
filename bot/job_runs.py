"""What a due row of the schedule becomes: a run of its handler, or a missed job that is
reported; and many due rows of one handler run together (`run_together`).

The rows themselves, and when they are due, are `bot.scheduling`'s (which re-exports
what is here).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bot.storage.health import StorageUnavailable

log = logging.getLogger(__name__)

PENDING: Final = "pending"
DONE: Final = "done"
MISSED: Final = "missed"
FAILED: Final = "failed"


@dataclass(frozen=True, slots=True)
class JobRun:
    key: str
    owner: str
    handler: str
    payload: dict[str, Any]
    due_at: datetime
    fired_at: datetime
    late: bool


@dataclass(frozen=True, slots=True)
class MissedJob:
    key: str
    owner: str
    handler: str
    payload: dict[str, Any]
    due_at: datetime


Handler = Callable[[JobRun], Awaitable[None]]
BatchHandler = Callable[[list[JobRun]], Awaitable[None]]
MissedReporter = Callable[[MissedJob], Awaitable[None]]


async def run_together(
    rows: Sequence[tuple[Any, ...]],
    batch: BatchHandler,
    single: Handler | None,
    now: datetime,
    *,
    grace: timedelta,
    late_after: timedelta,
    on_missed: MissedReporter,
) -> list[tuple[str, float, str]]:
    """Due one-off rows (key, owner, handler, due, payload, cron, grace) of one handler:
    those beyond their grace reported, the others handed to `batch` at once. Should the
    batch raise, each row runs alone through `single`, so that one bad row does not fail
    the others. Returns (status, done at, key) for each row, to be written at once."""
    stamp = now.timestamp()
    runs: list[JobRun] = []
    statuses: list[tuple[str, float, str]] = []
    for key, owner, name, due_ts, payload, _cron, row_grace in rows:
        limit = timedelta(seconds=row_grace) if row_grace is not None else grace
        due = datetime.fromtimestamp(float(due_ts), UTC)
        data = json.loads(payload)
        lateness = now - due
        if lateness <= limit:
            runs.append(JobRun(key, owner, name, data, due, now, lateness > late_after))
            continue
        log.warning("job %s was due %s ago, beyond the grace period: reporting", key, lateness)
        try:
            await on_missed(MissedJob(key, owner, name, data, due))
        except StorageUnavailable:
            raise
        except Exception:
            log.exception("could not report the missed job %s", key)
        statuses.append((MISSED, stamp, key))
    if not runs:
        return statuses
    try:
        await batch(runs)
        return statuses + [(DONE, stamp, run.key) for run in runs]
    except StorageUnavailable:
        raise
    except Exception:
        log.exception(
            "%d jobs of %s.%s failed together; running them one by one",
            len(runs),
            runs[0].owner,
            runs[0].handler,
        )
    for run in runs:
        status = FAILED
        if single is not None:
            try:
                await single(run)
                status = DONE
            except StorageUnavailable:
                raise
            except Exception:
                log.exception("job %s (%s.%s) failed", run.key, run.owner, run.handler)
        statuses.append((status, stamp, run.key))
    return statuses
