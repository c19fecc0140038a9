"""How long the calendar's rows live (see bot/lifetimes.py), beside its migrations."""

from __future__ import annotations

from datetime import timedelta

from bot.lifetimes import Lifetime
from plugins.calendar.storage import migrations

_OCC_END = (
    "COALESCE((SELECT MAX(o.end_at) FROM calendar_occurrences o"
    " WHERE o.uid = calendar_rsvp.uid AND o.occ = calendar_rsvp.occ), answered_at, 0)"
)

# An answer lives as long as its occurrence: 30 days after the event ended (the
# calendar's own retention, shorter by default, applies too).
migrations.keep(
    Lifetime(
        "calendar_rsvp", "each person's answer to an occurrence", timedelta(days=30), _OCC_END
    ),
    Lifetime(
        "calendar_occurrences",
        "events in the window: title, place, excerpt, link",
        timedelta(days=30),
        "end_at",
    ),
    Lifetime("calendar_feeds", "each calendar feed's fetch state", None),
    Lifetime("calendar_left_out", "a digest of the events a feed could not give", None),
    Lifetime("calendar_armed", "the reminder offsets and zone last armed for", None),
)
