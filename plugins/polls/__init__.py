"""Polls across associations: one poll in many rooms, one tally, open or secret (issue 10).
See docs/polls.md."""

from plugins.polls.plugin import PollsPlugin

PLUGIN = PollsPlugin

__all__ = ["PLUGIN", "PollsPlugin"]
