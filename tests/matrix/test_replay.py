"""A command replayed after a crash is answered once: the direct reply's transaction id
is derived from the inbound event, and the homeserver keeps the first send of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.matrix.botrun import bot_settings, running_bot
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser, from_bot


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "bot.db")


def _reply_rows(tmp_path: Path, command: str) -> list[tuple[str, str]]:
    with _db(tmp_path) as conn:
        rows = conn.execute(
            "SELECT key, status FROM outbox WHERE key LIKE ?", (f"reply:matrix:{command}:%",)
        ).fetchall()
    return [(str(k), str(s)) for k, s in rows]


async def test_a_replayed_command_is_answered_once(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    bot = synapse.register("bot")
    alice = await users("alice")
    room = await alice.create_room(invite=[bot.user_id])
    replies = from_bot(bot.user_id, room)
    settings = bot_settings(synapse, bot, tmp_path, [room])
    async with running_bot(settings):
        await alice.wait_joined(room, bot.user_id)
        with _db(tmp_path) as conn:
            (before,) = conn.execute(
                "SELECT value FROM adapter_state WHERE platform = 'matrix' AND key = 'sync_token'"
            ).fetchone()
        first = await alice.say(room, "!hjälp")
        await alice.wait_for(replies, count=1)
        # The room's lane has now shown it holds nothing older: the next reply goes
        # straight to the homeserver, with no outbox row.
        second = await alice.say(room, "!hjälp")
        await alice.wait_for(replies, count=2)
        assert _reply_rows(tmp_path, second) == []
    # What a kill between the replies and the saving of the position leaves: the
    # position from before both commands, and no mark that they were handled.
    with _db(tmp_path) as conn:
        conn.execute(
            "UPDATE adapter_state SET value = ? WHERE platform = 'matrix' AND key = 'sync_token'",
            (before,),
        )
        conn.execute("DELETE FROM inbound_seen")
    async with running_bot(settings):
        third = await alice.say(room, "!hjälp")
        # Events come back in the homeserver's order: once the third is answered, a
        # second answer to either replayed command would have arrived before it.
        await alice.wait_for(
            lambda r, src: (
                replies(r, src)
                and src["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                == third
            )
        )
        # Both replayed commands were answered again by the new process: the first's
        # key was known to the outbox, the second's was sent once more, with the same
        # transaction id, on the same device.
        assert [s for _k, s in _reply_rows(tmp_path, second)] == ["sent"]
    answered = [
        src["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] for src in alice.found(replies)
    ]
    assert sorted(answered) == sorted([first, second, third])
