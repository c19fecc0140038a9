"""`check-config --online` for Matrix: which configured rooms the bot is not in.

Read-only on purpose: it uses the access token the bot keeps in its store (or the one in
the settings) and never logs in with the password, which would make a new device, nor
syncs, which could move the bot's position past unhandled messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import aiohttp

from bot.adapters.matrix.session import MatrixStartError, load_credentials
from bot.core.refs import RoomRef
from bot.settings import MatrixSettings

_TIMEOUT = aiohttp.ClientTimeout(total=20)


async def probe_rooms(
    settings: MatrixSettings, rooms: Sequence[RoomRef]
) -> dict[RoomRef, str | None]:
    """For each Matrix room, None if the bot is in it, else why not."""
    try:
        creds = load_credentials(settings.store_path)
    except MatrixStartError as exc:
        return dict.fromkeys(rooms, str(exc))
    token = creds.access_token if creds else None
    if token is None and settings.access_token is not None:
        token = settings.access_token.get_secret_value()
    if token is None:
        reason = "not logged in yet: start the bot once (it keeps its token in store_path)"
        return dict.fromkeys(rooms, reason)
    base = settings.homeserver.rstrip("/") + "/_matrix/client/v3"
    headers = {"Authorization": f"Bearer {token}"}
    result: dict[RoomRef, str | None] = {}
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT, headers=headers) as http:
            async with http.get(f"{base}/joined_rooms") as resp:
                if resp.status == 401:
                    return dict.fromkeys(rooms, "the stored access token is no longer valid")
                resp.raise_for_status()
                joined = set((await resp.json()).get("joined_rooms", []))
            for room in rooms:
                room_id = room.id
                if room_id.startswith("#"):
                    async with http.get(f"{base}/directory/room/{quote(room_id)}") as resp:
                        if resp.status != 200:
                            result[room] = f"the alias {room_id} does not resolve to a room"
                            continue
                        room_id = (await resp.json())["room_id"]
                result[room] = (
                    None if room_id in joined else "the bot is not in this room: invite it"
                )
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
        return dict.fromkeys(rooms, f"the homeserver did not answer as expected ({exc!r})")
    return result
