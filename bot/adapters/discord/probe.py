"""`check-config --online` for Discord: which configured channels the bot cannot see.

Read-only: one REST request per channel with the bot token, no gateway session (which
would spend one of the day's identifies).
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from bot.core.refs import RoomRef
from bot.settings import DiscordSettings

_TIMEOUT = aiohttp.ClientTimeout(total=20)
_REASONS = {
    401: "the bot token is not valid",
    403: "the bot has no access to this channel: add it to the server or the channel",
    404: "there is no such channel (check the id)",
}


async def probe_rooms(
    settings: DiscordSettings, rooms: Sequence[RoomRef]
) -> dict[RoomRef, str | None]:
    """For each Discord channel, None if the bot can read it, else why not."""
    base = settings.api_base_url.rstrip("/")
    headers = {"Authorization": f"Bot {settings.token.get_secret_value()}"}
    result: dict[RoomRef, str | None] = {}
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT, headers=headers) as http:
            for room in rooms:
                async with http.get(f"{base}/channels/{room.id}") as resp:
                    if resp.status == 200:
                        result[room] = None
                    else:
                        result[room] = _REASONS.get(resp.status, f"Discord answered {resp.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return dict.fromkeys(rooms, f"Discord did not answer ({exc!r})")
    return result
