"""A Discord message's content as a `Document`: Discord's Markdown parsed by the core,
with this message's mentions resolved to readable names (as Discord's client shows
them) and its custom emoji to their images on Discord's CDN."""

from __future__ import annotations

import re
from typing import Final

import discord

from bot.core.document import Document, MentionKind
from bot.core.markdown import parse

# `@everyone` and `@here` read as words elsewhere, never as a ping (as clean_content has
# it): a zero-width space after the @.
_MASS: Final = re.compile(r"@(everyone|here)")
INBOUND_LIMIT: Final = 4000  # what Discord lets members with Nitro write


class MessageResolver:
    def __init__(self, message: discord.Message) -> None:
        self._message = message

    def mention(self, kind: MentionKind, id: str) -> tuple[str, str | None]:
        message, guild = self._message, self._message.guild
        number = int(id)
        if kind == "user":
            member = (guild.get_member(number) if guild else None) or discord.utils.get(
                message.mentions, id=number
            )
            return (member.display_name if member else "deleted-user"), None
        if kind == "role":
            role = (guild.get_role(number) if guild else None) or discord.utils.get(
                message.role_mentions, id=number
            )
            return (role.name if role else "deleted-role"), None
        channel = guild.get_channel_or_thread(number) if guild else None
        if channel is None or guild is None:
            return "deleted-channel", None
        return channel.name, f"https://discord.com/channels/{guild.id}/{channel.id}"

    def emoji_url(self, id: str, animated: bool) -> str | None:
        # discord.py builds it from its CDN base (`Asset.BASE`), as for every asset.
        return discord.PartialEmoji(name="_", id=int(id), animated=animated).url or None


def document_of(message: discord.Message) -> Document:
    # Parsed before the boundary cleans the event: `parse` cleans and caps its input.
    content = message.content[:INBOUND_LIMIT]
    return parse(_MASS.sub("@\u200b\\1", content), MessageResolver(message))


__all__ = ["MessageResolver", "document_of"]
