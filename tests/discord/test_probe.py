"""`check-config --online` asks Discord, read-only, about every configured channel."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import SecretStr

from bot.adapters.discord.probe import probe_rooms
from bot.core.refs import RoomRef
from bot.settings import DiscordSettings
from tests.discord.botrun import World


async def test_unknown_channels_and_bad_tokens_are_named(world: World) -> None:
    s = world.standin
    known = RoomRef("discord", str(world.channels[0].id))
    unknown = RoomRef("discord", "424242424242")
    settings = DiscordSettings(token=SecretStr(s.token), api_base_url=s.api_url)
    found = await probe_rooms(settings, [known, unknown])
    assert found[known] is None
    assert found[unknown] == "there is no such channel (check the id)"
    # Nothing but reads went over the wire: no gateway session, no identify.
    assert {r.method for r in s.requests} == {"GET"}
    assert not [f for f in s.frames if f.op == 2]

    wrong = DiscordSettings(token=SecretStr("not-the-token"), api_base_url=s.api_url)
    assert (await probe_rooms(wrong, [known]))[known] == "the bot token is not valid"


async def test_check_config_online_reports_and_fails(world: World, tmp_path: Path) -> None:
    s = world.standin
    config = tmp_path / "c.toml"
    config.write_text(
        f"""
[bot]
database = "{tmp_path / "bot.db"}"
[discord]
token = "{s.token}"
api_base_url = "{s.api_url}"
[[associations]]
id = "falun"
name = "Falun"
rooms = ["discord:{world.channels[0].id}", "discord:424242424242"]
""",
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "check-config",
        "--online",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err.decode()
    text = out.decode()
    assert "discord:424242424242: there is no such channel (check the id)" in text
    assert f"discord:{world.channels[0].id}:" not in text.split("cannot use:")[1]
    assert s.token not in text + err.decode()
