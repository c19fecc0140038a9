"""A plugin for the SIGKILL test: appends the id of every handled message to a file."""

from __future__ import annotations

import os
from pathlib import Path

from bot.core.events import MessageReceived
from bot.plugin import Plugin, on


class Journal(Plugin):
    name = "journal"

    @on(MessageReceived)
    async def record(self, event: MessageReceived) -> None:
        path = Path(os.environ["SAMVERKAN_TEST_JOURNAL"])
        # A small synchronous append: the test wants it on disk before the next event.
        with path.open("a", encoding="utf-8") as fh:  # noqa: ASYNC230
            fh.write(event.event_id + "\n")


PLUGIN = Journal
