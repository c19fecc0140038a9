"""`glöm-mig --kopior` live: the bridged copies of a person's messages deleted on the
real Synapse (redactions) and the Discord stand-in (webhook deletes), and on the console,
asked for and confirmed in a Matrix direct chat; nobody else's copies touched, and a
second erase doing nothing more.

Every assertion is on what the peers saw: events as Anna's client received them,
requests and messages the stand-in recorded, lines the console printed."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from plugins.privacy import PrivacyPlugin
from tests.bridge.conftest import bridge_env, cdn
from tests.bridge.live import PLUGINS, BridgeEnv, ReadyFlag, poll_until, running_app
from tests.matrix.users import from_bot

__all__ = ["bridge_env", "cdn"]  # the bridge's fixtures, used here

# The bridge's plugins and the privacy plugin; ReadyFlag last (its on_ready runs last).
WITH_PRIVACY = [*(p for p in PLUGINS if p is not ReadyFlag), PrivacyPlugin, ReadyFlag]
# A copy is deleted through the webhook that posted it or, as the adapter does today,
# by the bot itself (Manage Messages, docs/bridge.md): either is a deletion on Discord.
DELETES = (
    "DELETE /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
    "DELETE /channels/{channel_id}/messages/{message_id}",
)
DELETED_NOTICE = "(ett meddelande togs bort)"


def body(event: dict[str, Any]) -> str:
    return str(event["content"].get("body", ""))


def redacted(events: list[dict[str, Any]]) -> list[str]:
    """The event ids the redactions among `events` remove."""
    return [str(e.get("redacts") or e["content"].get("redacts")) for e in events]


def discord_deletes(env: BridgeEnv) -> list[Any]:
    return [r for r in env.standin.requests if r.route in DELETES]


def code_in(text: str) -> str:
    found = re.search(r"glöm-mig (\d{6})", text)
    assert found, text
    return found.group(1)


async def test_forget_me_deletes_the_copies_on_matrix_discord_and_console(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    s, bertil, anna, bot = env.standin, env.world.bertil, env.anna, env.bot.user_id
    async with running_app(env, plugins=WITH_PRIVACY) as live:
        first = await anna.say(env.falun, "Första från Anna")
        second = await anna.say(env.falun, "Andra från Anna")
        await s.user_message(env.mora, bertil, "Hej från Bertil")
        await poll_until(lambda: len(env.matrix_from_bot(env.ludvika)) == 3, what="3 in Ludvika")
        await poll_until(lambda: env.matrix_from_bot(env.falun), what="Bertil's copy in Falun")
        await poll_until(lambda: len(env.discord_copies()) == 2, what="Anna's 2 in Mora")
        await poll_until(lambda: len(env.console_posts()) == 3, what="3 on the console")
        await live.idle()
        ludvika = env.matrix_from_bot(env.ludvika)
        annas_ludvika = [e["event_id"] for e in ludvika if body(e).startswith("Anna (Falun): ")]
        bertils = [e["event_id"] for e in ludvika if body(e).startswith("bertil (Mora): ")]
        bertils += [e["event_id"] for e in env.matrix_from_bot(env.falun)]
        assert len(annas_ludvika) == 2 and len(bertils) == 2
        annas_discord = [m.id for m in env.discord_copies()]
        assert sorted(m.data["content"] for m in env.discord_copies()) == [
            "Andra från Anna",
            "Första från Anna",
        ]

        # Anna opens a direct chat with the bot: her code is shown there alone.
        direct = await anna.create_room(invite=[bot], is_direct=True)
        await anna.wait_joined(direct, bot)

        async def ask(text: str, count: int) -> str:
            await anna.say(direct, text)
            answers = await anna.wait_for(from_bot(bot, direct), count, timeout=30)
            return body(answers[count - 1])

        code = code_in(await ask("!glöm-mig", 1))
        done = await ask(f"!glöm-mig {code} --kopior", 2)
        # Two messages, each copied to Ludvika, Mora and the console.
        assert "6 bryggade kopior" in done, done

        gone = await poll_until(
            lambda: (
                set(annas_ludvika)
                <= set(redacted(env.matrix_from_bot(env.ludvika, "m.room.redaction")))
            ),
            30,
            "both Ludvika copies redacted",
        )
        assert gone
        await poll_until(lambda: env.discord_copies() == [], 30, "the Mora copies deleted")
        await poll_until(
            lambda: len([p for p in env.console_posts() if p.endswith(DELETED_NOTICE)]) == 2,
            30,
            "the console's deletion notices",
        )
        await live.idle()
        redactions = env.matrix_from_bot(env.ludvika, "m.room.redaction")
        deletes = discord_deletes(env)
        console = env.console_posts()

        # Again: nothing left to erase, nothing more deleted anywhere.
        again = code_in(await ask("!glöm-mig", 3))
        assert await ask(f"!glöm-mig {again} --kopior", 4) == "Boten har inget kvar om dig."
        await live.idle()
        await asyncio.sleep(1.0)  # a late deletion would have shown by now
        await live.idle()
        assert env.matrix_from_bot(env.ludvika, "m.room.redaction") == redactions
        assert env.matrix_from_bot(env.falun, "m.room.redaction") == []
        assert discord_deletes(env) == deletes
        assert env.console_posts() == console

    # Matrix: one redaction by the bot per copy of Anna's, none of Bertil's copies.
    assert sorted(redacted(redactions)) == sorted(annas_ludvika)
    assert all(e["sender"] == bot for e in redactions)
    # Her originals in Falun are hers to delete: the bot redacted nothing there.
    assert not {first, second} & set(redacted(env.matrix_from_bot(env.falun, "m.room.redaction")))
    assert not set(bertils) & set(redacted(redactions))
    assert len(env.matrix_from_bot(env.falun)) == 1
    # Discord: a DELETE of each of her copies, accepted, and the channel is empty.
    assert sorted(int(r.path.rstrip("/").rsplit("/", 1)[-1]) for r in deletes) == sorted(
        annas_discord
    )
    assert all(200 <= r.status < 300 for r in deletes)
    assert env.discord_copies() == []
    # The console: Bertil's copy and hers as posted, then a notice for each of hers.
    assert [p for p in console if p.endswith(DELETED_NOTICE)] == console[3:]
    assert any("bertil (Mora): Hej från Bertil" in p for p in console[:3])
    # Nothing refused by the stand-in on the way.
    assert [r.route for r in s.requests if r.status >= 400] == []
