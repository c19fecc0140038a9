"""Calendar reminders and the weekly agenda (issue 6). See docs/calendar.md."""

from plugins.calendar import lifetimes as _lifetimes  # noqa: F401  (declares them)
from plugins.calendar.plugin import CalendarPlugin

PLUGIN = CalendarPlugin

__all__ = ["PLUGIN", "CalendarPlugin"]
