"""What `samverkan check-config` prints about a valid configuration: no secret, ever.

Besides the SecretStr keys, a feed's address may be one: private calendar and feed
addresses carry their token in the path or the query. Only their scheme and host are
shown.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.settings import RootSettings


def summary(settings: RootSettings) -> str:
    lines = []
    adapters = [
        name
        for name, on in (
            ("console", settings.console.enabled),
            ("matrix", settings.matrix is not None),
            ("discord", settings.discord is not None),
        )
        if on
    ]
    bot = settings.bot
    lines.append(f"adapters: {', '.join(adapters) or 'none'}")
    lines.append(f"language: {bot.language}; timezone: {bot.timezone}; database: {bot.database}")
    lines.append(f"organisers: {', '.join(map(str, bot.organisers)) or 'none'}")
    if settings.matrix is not None:
        m = settings.matrix
        auth = "password" if m.password is not None else "access token"
        lines.append(f"matrix: {m.user_id} on {m.homeserver} ({auth}); store {m.store_path}")
    if settings.discord is not None:
        d = settings.discord
        guilds = ", ".join(map(str, d.guild_ids)) or "global commands"
        lines.append(f"discord: guilds {guilds}; organiser roles {len(d.organiser_roles)}")
    lines.append(f"associations: {len(settings.associations)}")
    for assoc in settings.associations:
        rooms = ", ".join(map(str, assoc.rooms)) or "no rooms"
        lines.append(f"  {assoc.id} ({assoc.name}): {rooms}")
    extra = settings.model_dump(mode="json", exclude=set(RootSettings.model_fields))
    for key, value in extra.items():
        lines.append(f"{key}: {_describe(value)}")
    return "\n".join(lines)


def _describe(value: object, key: str = "") -> str:
    if isinstance(value, list):
        return f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}" + "".join(
            f"\n  {_describe(v)}" for v in value
        )
    if isinstance(value, dict):
        return "; ".join(
            f"{k} {_describe(v, k)}" for k, v in value.items() if not isinstance(v, list) or v
        )
    if key == "url" and isinstance(value, str):
        return _address(value)
    return str(value)


def _address(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return url  # a local path
    shown = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return shown + ("/…" if parts.path.strip("/") or parts.query else "")
