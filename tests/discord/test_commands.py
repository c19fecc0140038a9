"""Slash commands: registered from the core's specs with Swedish localisations, invoked
as `CommandInvoked`, answered within three seconds, organisers checked by role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.events import CommandInvoked
from bot.core.refs import RoomRef, UserRef
from tests.discord.botrun import Probe, World, running_bot, settings_for
from tests.discord.standin.model import Json

CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
PUT_GUILD = "PUT /applications/{application_id}/guilds/{guild_id}/commands"


def _named(items: list[Json], name: str) -> Json:
    return next(i for i in items if i["name"] == name)


async def test_commands_registered_with_swedish_and_synced_once(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    settings = settings_for(world, tmp_path)
    async with running_bot(settings):
        pass
    [put] = s.recorded(PUT_GUILD)
    assert str(world.guild_id) in put.path
    commands = s.commands[str(world.guild_id)]
    help_cmd = _named(commands, "help")
    assert help_cmd["name_localizations"] == {"sv-SE": "hjälp"}
    assert help_cmd["description_localizations"]["sv-SE"]  # from the translator
    echo = _named(commands, "echo")
    assert echo["name_localizations"] == {"sv-SE": "eko"}
    assert echo["description"] == "Repeats a text"
    assert echo["description_localizations"] == {"sv-SE": "Upprepar en text"}
    text, loud = echo["options"]
    assert (text["name"], text["type"], text["required"]) == ("text", 3, True)
    assert (loud["name"], loud["type"], loud["required"]) == ("loud", 5, False)
    assert loud["name_localizations"] == {"sv-SE": "högt"}
    poll = _named(commands, "poll")
    assert poll["name_localizations"] == {"sv-SE": "omröstning"}
    new = _named(poll["options"], "new")
    assert new["type"] == 1 and new["name_localizations"] == {"sv-SE": "ny"}
    where = _named(new["options"], "in")
    assert where["autocomplete"] is True and where["name_localizations"] == {"sv-SE": "i"}
    slow = _named(commands, "slow")
    assert slow["options"][0]["type"] == 4  # an integer option

    # Unchanged commands are not sent again on the next start.
    async with running_bot(settings):
        pass
    assert len(s.recorded(PUT_GUILD)) == 1


async def test_slash_command_answered_and_organiser_checked(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    Probe.events.clear()
    async with running_bot(settings_for(world, tmp_path)):
        options = [
            {"type": 3, "name": "text", "value": 'hej "på dig"'},
            {"type": 5, "name": "loud", "value": True},
        ]
        inter = await s.slash_command(falun, world.bertil, "echo", options)
        await s.wait_for(lambda: inter.acknowledged, what="an answer")
        assert inter.answered_at is not None and inter.answered_at - inter.created_at < 3.0
        [callback] = s.recorded(CALLBACK)
        assert callback.json["type"] == 4
        assert callback.json["data"]["content"] == "HEJ PÅ DIG"
        assert callback.json["data"]["allowed_mentions"] == {"parse": []}
        invoked = [e for e in Probe.events if isinstance(e, CommandInvoked)]
        assert invoked == []  # commands go to their handler, not to event handlers

        # An organiser command from a member without the role: refused, to them alone.
        sub: list[Json] = [
            {"type": 1, "name": "new", "options": [{"type": 3, "name": "question", "value": "Q"}]}
        ]
        refused = await s.slash_command(falun, world.bertil, "poll", sub)
        await s.wait_for(lambda: refused.acknowledged, what="a refusal")
        body: Any = s.recorded(CALLBACK)[-1].json
        assert body["data"]["flags"] & 64  # ephemeral
        assert "/poll new" in body["data"]["content"]

        sub[0]["options"].append({"type": 3, "name": "in", "value": "falun,mora"})
        allowed = await s.slash_command(falun, world.anna, "poll", sub)
        await s.wait_for(lambda: allowed.acknowledged, what="an answer")
        body = s.recorded(CALLBACK)[-1].json
        assert body["data"]["content"] == "poll: Q in ('falun', 'mora')"
        assert not body["data"].get("flags", 0) & 64


async def test_slow_command_deferred_then_followup(world: World, tmp_path: Path) -> None:
    s = world.standin
    falun = world.channels[0]
    async with running_bot(settings_for(world, tmp_path), defer_after=0.05) as run:
        inter = await s.slash_command(
            falun, world.bertil, "slow", [{"type": 4, "name": "n", "value": 7}]
        )
        await s.wait_for(lambda: s.recorded(FOLLOWUP), what="a followup")
        [callback] = s.recorded(CALLBACK)
        assert callback.json["type"] == 5  # deferred ("thinking…") within the three seconds
        assert inter.answered_at is not None and inter.answered_at - inter.created_at < 3.0
        [followup] = s.recorded(FOLLOWUP)
        assert followup.json["content"] == "done 7" and followup.json["flags"] & 64
        # The public "thinking" message was removed so that the ephemeral answer is private.
        deleted = s.recorded("DELETE /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")
        assert len(deleted) == 1 and deleted[0].path.endswith("@original")
        assert run.adapter.interactions.deferred == 1


async def test_autocomplete_offers_associations(world: World, tmp_path: Path) -> None:
    s = world.standin
    async with running_bot(settings_for(world, tmp_path)):
        options = [
            {
                "type": 1,
                "name": "new",
                "options": [{"type": 3, "name": "in", "value": "falun,m", "focused": True}],
            }
        ]
        inter = await s.autocomplete(world.channels[0], world.anna, "poll", options)
        await s.wait_for(lambda: inter.acknowledged, what="choices")
        body = s.recorded(CALLBACK)[-1].json
        assert body["type"] == 8
        assert body["data"]["choices"] == [{"name": "Falun, Mora", "value": "falun,mora"}]


async def test_organiser_role_read_from_the_member_when_not_seen(
    world: World, tmp_path: Path
) -> None:
    s = world.standin
    room = RoomRef("discord", str(world.channels[1].id))
    async with running_bot(settings_for(world, tmp_path)) as run:
        assert await run.adapter.is_organiser(UserRef("discord", str(world.anna.id)), room)
        assert not await run.adapter.is_organiser(UserRef("discord", str(world.bertil.id)), room)
        # Known for a minute: asked once per member.
        assert await run.adapter.is_organiser(UserRef("discord", str(world.anna.id)), room)
        assert len(s.recorded("GET /guilds/{guild_id}/members/{user_id}")) == 2
