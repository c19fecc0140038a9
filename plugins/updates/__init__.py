"""Regional-policy updates: news feeds and organisers' texts (issue 11). See docs/updates.md."""

from plugins.updates.plugin import UpdatesPlugin

PLUGIN = UpdatesPlugin

__all__ = ["PLUGIN", "UpdatesPlugin"]
