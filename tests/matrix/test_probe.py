"""`check-config --online` asks the homeserver, read-only, which rooms the bot is not in."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from bot.adapters.matrix.probe import probe_rooms
from bot.core.refs import RoomRef
from bot.settings import MatrixSettings
from tests.matrix.synapse import Synapse
from tests.matrix.users import MakeUser


async def test_rooms_the_bot_is_not_in_are_named(
    synapse: Synapse, users: MakeUser, tmp_path: Path
) -> None:
    anna = await users("anna")
    bot = await users("probebot")
    joined = await anna.create_room(invite=[bot.user_id])
    await bot.join(joined)
    alias_local = f"probe{bot.user_id[1:].split(':')[0]}"
    elsewhere = await anna.create_room(alias=alias_local)
    server = anna.user_id.split(":", 1)[1]
    rooms = [
        RoomRef("matrix", joined),
        RoomRef("matrix", elsewhere),
        RoomRef("matrix", f"#{alias_local}:{server}"),
        RoomRef("matrix", f"#nosuchroom:{server}"),
    ]
    store = tmp_path / "store"
    settings = MatrixSettings(
        homeserver=synapse.url, user_id=bot.user_id, password=SecretStr("x"), store_path=store
    )
    found = await probe_rooms(settings, rooms)
    assert set(found.values()) == {
        "not logged in yet: start the bot once (it keeps its token in store_path)"
    }

    # With the token the bot keeps in its store, as a running bot leaves it.
    store.mkdir()
    (store / "credentials.json").write_text(
        json.dumps(
            {"user_id": bot.user_id, "device_id": "D", "access_token": bot.account.access_token}
        )
    )
    found = await probe_rooms(settings, rooms)
    assert found == {
        rooms[0]: None,
        rooms[1]: "the bot is not in this room: invite it",
        rooms[2]: "the bot is not in this room: invite it",
        rooms[3]: f"the alias #nosuchroom:{server} does not resolve to a room",
    }
