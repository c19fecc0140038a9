"""The short texts of the privacy commands: a person's summary, audit lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from bot.audit import Entry
from bot.commanding import CommandCall


def _count(data: dict[str, Any], *path: str) -> int:
    value: Any = data
    for step in path:
        if not isinstance(value, dict):
            return 0
        value = value.get(step)
    return len(value) if isinstance(value, list) else 0


def summary(call: CommandCall, data: dict[str, Any]) -> str:
    counts = {
        "accounts": _count(data, "accounts"),
        "links": _count(data, "account_links"),
        "rsvps": _count(data, "calendar", "rsvps"),
        "votes": _count(data, "polls", "votes"),
        "polls": _count(data, "polls", "created"),
        "secret": _count(data, "polls", "secret_ballots"),
        "copies": _count(data, "bridge", "copies"),
        "actions": _count(data, "organiser_actions"),
        "updates": _count(data, "updates", "posts") + _count(data, "updates", "feeds"),
    }
    return call.t("privacy.summary", prefix=call.prefix, **counts)


def audit_lines(call: CommandCall, entries: Sequence[Entry], timezone: str) -> list[str]:
    zone = ZoneInfo(timezone)
    lines: list[str] = []
    for entry in entries:
        when = call.translator.datetime(entry.at.astimezone(zone), call.language)
        details = ", ".join(f"{k} {_shown(v)}" for k, v in sorted(entry.detail.items()))
        lines.append(
            call.t(
                "privacy.audit.line",
                seq=entry.seq,
                when=when,
                action=call.t(f"privacy.actions.{entry.action.replace('.', '_')}"),
                where=entry.association or "–",
                who=entry.actor or call.t("privacy.audit.erased"),
                details=details,
            )
        )
    return lines


def _shown(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
