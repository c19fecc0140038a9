"""The polls tests' bot (tests/harness.py: a real App with the console adapter, which
records what it is handed so that attachments can be checked, a recording Matrix
adapter as the second platform, a fake clock and a manual waker)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from bot.core.events import PollVoteReceived, Sender
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.settings import RootSettings, load_settings
from plugins.polls import PollsPlugin
from plugins.polls.model import start_key
from plugins.polls.settings import PollsSettings
from tests.engines import Target
from tests.harness import Harness, RecordingConsole, database_of

__all__ = ["Bot", "RecordingConsole", "make_settings", "poll_id_of"]

_ids = itertools.count(1)

CONFIG = """
[bot]
database = "{db}"
organisers = ["console:anna"]
organiser_rooms = ["console:styrelse", "console:dm"]
late_grace = "1h"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "console:falun2", "matrix:!falun:example.org"]

[[associations]]
id = "mora"
name = "Mora"
rooms = ["console:mora"]

[[associations]]
id = "leksand"
name = "Leksand"
language = "en"
rooms = ["console:leksand"]

[[associations]]
id = "rattvik"
name = "Rättvik"
rooms = ["console:rattvik"]

[polls]
default_duration = "3d"
settle = "5s"
{extra}
"""

ROOMS = ("falun", "falun2", "mora", "leksand", "rattvik", "styrelse", "dm")


def make_settings(tmp_path: Path, extra: str = "", database: Target | None = None) -> RootSettings:
    """`database`: the `db_target` fixture's, to run on both engines (else a file)."""
    path = tmp_path / "config.toml"
    db = database_of(tmp_path, database)
    path.write_text(CONFIG.format(db=db, extra=extra), encoding="utf-8")
    return load_settings(path, {"polls": (PollsSettings, PollsSettings)})


class Bot(Harness):
    plugins = (PollsPlugin,)
    with_matrix = True

    @property
    def plugin(self) -> PollsPlugin:
        return self.plugin_of(PollsPlugin)

    async def post_of(self, poll_id: int, room: str | RoomRef) -> MessageRef:
        ref = room if isinstance(room, RoomRef) else RoomRef("console", room)
        found = await self.running.delivery.message_ref(start_key(poll_id, ref))
        assert found is not None, f"poll {poll_id} was not posted in {ref}"
        return found

    async def native_vote(
        self,
        poll_id: int,
        room: str | RoomRef,
        user: str | UserRef,
        answers: Sequence[str],
        *,
        toggle: bool = False,
        origin: bool = False,
    ) -> None:
        """A vote as an adapter hands it over (a Matrix response, a Discord button)."""
        post = await self.post_of(poll_id, room)
        who = user if isinstance(user, UserRef) else UserRef("console", user)
        event_id = f"v{next(_ids)}"
        await self.inject(
            PollVoteReceived(
                event_id=event_id,
                room=post.room,
                sender=Sender(who, who.id),
                at=self.clock.now(),
                poll=post,
                answers=tuple(answers),
                toggle=toggle,
                origin=MessageRef(post.room, f"i{event_id}") if origin else None,
            )
        )


def poll_id_of(reply: str) -> int:
    """The id in `poll new`'s answer ("Omröstning 3 är skapad ...")."""
    return int(reply.split()[1])
