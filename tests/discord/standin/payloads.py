"""Gateway payloads of the stand-in: READY and GUILD_CREATE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.discord.standin.gateway import Session
from tests.discord.standin.model import Json, iso

if TYPE_CHECKING:
    from tests.discord.standin.server import StandIn


def ready(standin: StandIn, session: Session) -> Json:
    return {
        "v": 10,
        "user": standin.bot.payload(),
        "guilds": [{"id": str(g), "unavailable": True} for g in standin.guilds],
        "session_id": session.id,
        "resume_gateway_url": standin.gateway_url,
        "application": {"id": str(standin.bot.id), "flags": 0},
        "private_channels": [],
        "relationships": [],
    }


def guild_creates(standin: StandIn) -> list[Json]:
    out = []
    for guild in standin.guilds.values():
        channels = [c for c in standin.channels.values() if c.guild_id == guild.id]
        out.append(
            {
                "id": str(guild.id),
                "name": guild.name,
                "icon": None,
                "owner_id": str(standin.bot.id),
                "roles": guild.role_payloads(),
                "channels": [c.payload() for c in channels if not c.is_thread],
                "members": [standin.bot.member(guild.id)],
                "member_count": len(standin.users),
                "emojis": [],
                "stickers": [],
                "features": [],
                # The active threads, so a client that reconnects knows them.
                "threads": [c.payload() for c in channels if c.is_thread and not c.archived],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "large": False,
                "unavailable": False,
                "joined_at": iso(),
                "mfa_level": 0,
                "verification_level": 0,
                "default_message_notifications": 0,
                "explicit_content_filter": 0,
                "premium_tier": 0,
                "system_channel_flags": 0,
                "preferred_locale": "sv-SE",
                "nsfw_level": 0,
                "afk_timeout": 300,
            }
        )
    return out
