"""The bridge against the real Synapse, the Discord stand-in and a console, in one App.

Every assertion is on what the peers saw on the wire: Matrix events as Anna's nio
client received them, requests and messages recorded by the Discord stand-in, lines
the console printed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.bridge.live import BridgeEnv, edit_of, poll_until, running_app

HTML = "org.matrix.custom.html"


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["content"].get("body", "")) for e in events]


async def test_a_matrix_message_reaches_discord_matrix_and_console(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    async with running_app(env) as live:
        await env.anna.say(env.falun, "Hej alla, möte på torsdag")
        posts = await poll_until(env.webhook_posts, what="a webhook post")
        copies = await poll_until(lambda: env.matrix_from_bot(env.ludvika), what="Ludvika copy")
        await poll_until(env.console_posts, what="a console post")
        await live.idle()
    body = posts[0].json
    assert body["username"] == "Anna (Falun)"
    assert body["content"] == "Hej alla, möte på torsdag"
    assert body["allowed_mentions"] == {"parse": []}
    assert posts[0].query.get("wait") in {"1", "true"}
    content = copies[0]["content"]
    assert content["body"] == "Anna (Falun): Hej alla, möte på torsdag"
    assert content["formatted_body"].startswith("<strong>Anna (Falun)</strong>: ")
    assert content["m.mentions"] == {}
    assert env.console_posts() == ["[#borlange] Anna (Falun): Hej alla, möte på torsdag"]
    # Nothing came back into the room it was said in.
    assert env.matrix_from_bot(env.falun) == []


def replaces(events: list[dict[str, Any]], target: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
        and e["content"]["m.relates_to"].get("event_id") == target
    ]


def plain(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Posts, not edits."""
    return [
        e for e in events if (e["content"].get("m.relates_to") or {}).get("rel_type") != "m.replace"
    ]


def reply_target(event: dict[str, Any]) -> str | None:
    rel = event["content"].get("m.relates_to") or {}
    in_reply = rel.get("m.in_reply_to") or {}
    target = in_reply.get("event_id")
    return str(target) if target else None


async def test_a_discord_message_reaches_matrix_and_console(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    s, bertil = env.standin, env.world.bertil
    async with running_app(env) as live:
        await s.user_message(env.mora, bertil, "Hej från **Mora**")
        falun = await poll_until(lambda: env.matrix_from_bot(env.falun), what="Falun copy")
        ludvika = await poll_until(lambda: env.matrix_from_bot(env.ludvika), what="Ludvika")
        await poll_until(env.console_posts, what="a console post")
        await live.idle()
    for copy in (falun[0], ludvika[0]):
        content = copy["content"]
        assert content["body"] == "bertil (Mora): Hej från Mora"
        assert content["format"] == HTML
        assert content["formatted_body"] == (
            "<strong>bertil (Mora)</strong>: Hej från <strong>Mora</strong>"
        )
        assert content["m.mentions"] == {}
        assert content["msgtype"] == "m.text"
    # The console prints plain text: the marks are Discord's way of saying bold.
    assert env.console_posts() == ["[#borlange] bertil (Mora): Hej från Mora"]
    # The bot's own copies are never relayed back: nothing was posted into Mora.
    assert env.webhook_posts() == []
    assert len(env.matrix_from_bot(env.falun)) == len(env.matrix_from_bot(env.ludvika)) == 1


async def test_matrix_to_matrix_and_console_to_all(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    async with running_app(env) as live:
        await env.anna.say(env.ludvika, "Från Ludvika")
        live.io.say("borlange", "cecilia", "Från konsolen")
        await poll_until(lambda: len(env.matrix_from_bot(env.falun)) == 2, what="two in Falun")
        await poll_until(lambda: len(env.webhook_posts()) == 2, what="two in Mora")
        await poll_until(lambda: env.matrix_from_bot(env.ludvika), what="one in Ludvika")
        await live.idle()
    assert sorted(bodies(env.matrix_from_bot(env.falun))) == [
        "Anna (Ludvika): Från Ludvika",
        "cecilia (Borlänge): Från konsolen",
    ]
    assert bodies(env.matrix_from_bot(env.ludvika)) == ["cecilia (Borlänge): Från konsolen"]
    names = sorted((p.json["username"], p.json["content"]) for p in env.webhook_posts())
    assert names == [("Anna (Ludvika)", "Från Ludvika"), ("cecilia (Borlänge)", "Från konsolen")]
    assert env.console_posts() == ["[#borlange] Anna (Ludvika): Från Ludvika"]


async def test_edits_and_deletions_follow_both_ways(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    async with running_app(env) as live:
        original = await anna.say(env.falun, "Mötet är kl 18")
        await poll_until(env.discord_copies, what="the Discord copy")
        copy = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await anna.send(env.falun, edit_of(original, "Mötet är kl 19"))
        discord_copy = env.discord_copies()[0]
        await poll_until(lambda: "19" in discord_copy.data["content"], what="Discord edit")
        edits = await poll_until(
            lambda: replaces(env.matrix_from_bot(env.ludvika), copy["event_id"]),
            what="Ludvika edit",
        )
        # From Discord: a message, its edit and its deletion.
        said = await s.user_message(env.mora, bertil, "Jag kommer")
        falun_copy = (await poll_until(lambda: plain(env.matrix_from_bot(env.falun))))[0]
        await s.user_edit(said, "Jag kommer inte")
        falun_edits = await poll_until(
            lambda: replaces(env.matrix_from_bot(env.falun), falun_copy["event_id"]),
            what="Falun edit",
        )
        said.deleted = True
        await s.gateway.dispatch(
            "MESSAGE_DELETE",
            {
                "id": str(said.id),
                "channel_id": str(env.mora.id),
                "guild_id": str(env.world.guild_id),
            },
        )
        redactions = await poll_until(
            lambda: env.matrix_from_bot(env.falun, "m.room.redaction"), what="a redaction"
        )
        # From Matrix: the deletion of the first message.
        await anna.client.room_redact(env.falun, original)
        await poll_until(lambda: discord_copy.deleted, what="the Discord copy deleted")
        gone = await poll_until(
            lambda: [
                e
                for e in env.matrix_from_bot(env.ludvika, "m.room.redaction")
                if e["redacts"] == copy["event_id"]
            ],
            what="Ludvika redaction",
        )
        await live.idle()
    new = edits[0]["content"]["m.new_content"]
    assert new["body"] == "Anna (Falun): Mötet är kl 19"
    assert discord_copy.data["content"] == "Mötet är kl 19"
    assert falun_edits[0]["content"]["m.new_content"]["body"] == "bertil (Mora): Jag kommer inte"
    assert falun_edits[0]["content"]["m.mentions"] == {}
    assert redactions[0]["redacts"] == falun_copy["event_id"]
    assert gone[0]["redacts"] == copy["event_id"]
    assert len(env.discord_copies()) == 0
    # Edited through the webhook: no refused request (those count towards a ban).
    assert [r.route for r in s.requests if r.status >= 400] == []
    assert (
        len(s.recorded("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")) == 1
    )


async def test_replies_point_at_the_right_message_on_each_side(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    async with running_app(env) as live:
        question = await anna.say(env.falun, "Vem tar med fika?")
        dc_question = (await poll_until(env.discord_copies, what="Discord copy"))[0]
        lv_question = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        # Bertil answers the Discord copy: on Matrix the answer replies to the original
        # in Falun and to Ludvika's copy in Ludvika.
        await s.user_message(env.mora, bertil, "Jag tar med bullar", reply_to=dc_question.id)
        fa_answer = (await poll_until(lambda: env.matrix_from_bot(env.falun)))[0]
        lv_answer = (
            await poll_until(
                lambda: (
                    len(env.matrix_from_bot(env.ludvika)) == 2 and env.matrix_from_bot(env.ludvika)
                )
            )
        )[1]
        # Anna answers Bertil's message from Falun's copy: Discord links the original.
        await anna.say(
            env.falun,
            "Tack!",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": fa_answer["event_id"]}}},
        )
        thanks = await poll_until(
            lambda: [p for p in env.webhook_posts() if "Tack!" in p.json["content"]],
            what="the thanks on Discord",
        )
        # A reply to a message the bridge never saw is quoted.
        hidden = await s.user_message(env.mora, bertil, "Gammalt inlägg", dispatch=False)
        await s.user_message(env.mora, bertil, "Som jag sa", reply_to=hidden.id)
        quoted = await poll_until(
            lambda: [
                e for e in env.matrix_from_bot(env.falun) if "Som jag sa" in e["content"]["body"]
            ],
            what="the quoted reply",
        )
        # The same from Matrix: the reply's fallback gives the quote.
        await anna.say(
            env.falun,
            "> <@someone:localhost> Gammal fråga\n\nSvar på det",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": "$never-bridged"}}},
        )
        mx_quoted = await poll_until(
            lambda: [p for p in env.webhook_posts() if "Svar på det" in p.json["content"]],
            what="the quoted reply on Discord",
        )
        # The copies go out one by one: the Discord one being there says nothing of Ludvika's.
        lv_quoted = await poll_until(
            lambda: [
                e for e in env.matrix_from_bot(env.ludvika) if "Svar på det" in e["content"]["body"]
            ],
            what="the quoted reply in Ludvika",
        )
        await live.idle()
    assert mx_quoted[0].json["content"] == "> @someone:localhost: Gammal fråga\nSvar på det"
    assert lv_quoted[0]["content"]["body"] == (
        "Anna (Falun):\n> @someone:localhost: Gammal fråga\nSvar på det"
    )
    assert "<blockquote>" in lv_quoted[0]["content"]["formatted_body"]
    assert reply_target(fa_answer) == question
    assert reply_target(lv_answer) == lv_question["event_id"]
    answer_id = next(
        m.id for m in s.channel_messages(env.mora.id) if m.data["content"] == "Jag tar med bullar"
    )
    assert f"/{env.mora.id}/{answer_id}" in thanks[0].json["content"]
    body = quoted[0]["content"]["body"]
    assert "> bertil: Gammalt inlägg" in body
    assert body.endswith("Som jag sa")
    assert reply_target(quoted[0]) is None


async def test_reactions_follow_both_ways(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    async with running_app(env) as live:
        original = await anna.say(env.falun, "Bra idé?")
        dc_copy = (await poll_until(env.discord_copies, what="Discord copy"))[0]
        lv_copy = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await anna.send(
            env.falun,
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "👍"}},
            "m.reaction",
        )
        puts = await poll_until(
            lambda: [r for r in s.requests if r.method == "PUT" and "/reactions/" in r.path],
            what="a Discord reaction",
        )
        await s.reaction(dc_copy, bertil, "🎉")
        fa = await poll_until(lambda: env.matrix_from_bot(env.falun, "m.reaction"), what="Falun")
        lv = await poll_until(
            lambda: (
                len(env.matrix_from_bot(env.ludvika, "m.reaction")) == 2
                and env.matrix_from_bot(env.ludvika, "m.reaction")
            ),
            what="two reactions in Ludvika",
        )
        await live.idle()
    assert f"/messages/{dc_copy.id}/reactions/" in puts[0].path
    assert fa[0]["content"]["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": original,
        "key": "🎉",
    }
    keys = sorted(e["content"]["m.relates_to"]["key"] for e in lv)
    assert keys == sorted(["👍", "🎉"])
    assert {e["content"]["m.relates_to"]["event_id"] for e in lv} == {lv_copy["event_id"]}


def numbered(texts: list[str], prefix: str) -> list[int]:
    """The numbers of the `prefix N` messages among `texts`, in the order they came."""
    out = []
    for text in texts:
        at = text.find(prefix + " ")
        if at >= 0:
            out.append(int(text[at + len(prefix) + 1 :].split()[0]))
    return out


async def test_a_burst_from_two_rooms_arrives_complete_once_in_order(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    n = 150

    async def from_matrix() -> None:
        for i in range(n):
            await anna.say(env.falun, f"mx {i}")

    async def from_discord() -> None:
        for i in range(n):
            await s.user_message(env.mora, bertil, f"dc {i}")
            await asyncio.sleep(0)

    async with running_app(env) as live:
        await asyncio.gather(from_matrix(), from_discord())
        await poll_until(
            lambda: len(env.matrix_from_bot(env.ludvika)) >= 2 * n, 60, "all in Ludvika"
        )
        await poll_until(lambda: len(env.matrix_from_bot(env.falun)) >= n, 60, "all in Falun")
        await poll_until(lambda: len(env.discord_copies()) >= n, 60, "all in Mora")
        await poll_until(lambda: len(env.console_posts()) >= 2 * n, 60, "all in the console")
        await live.idle()
    everything = list(range(n))
    ludvika = bodies(env.matrix_from_bot(env.ludvika))
    assert len(ludvika) == 2 * n
    assert numbered(ludvika, "mx") == everything and numbered(ludvika, "dc") == everything
    falun = bodies(env.matrix_from_bot(env.falun))
    assert len(falun) == n and numbered(falun, "dc") == everything
    mora = [m.data["content"] for m in env.discord_copies()]
    assert len(mora) == n and numbered(mora, "mx") == everything
    console = env.console_posts()
    assert len(console) == 2 * n
    assert numbered(console, "mx") == everything and numbered(console, "dc") == everything


async def test_edits_follow_a_message_bridged_before_a_restart(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    anna = env.anna
    async with running_app(env) as live:
        original = await anna.say(env.falun, "Före omstarten")
        copy = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await poll_until(env.discord_copies)
        await live.idle()
    async with running_app(env) as live:
        await anna.send(env.falun, edit_of(original, "Efter omstarten"))
        discord_copy = env.discord_copies()[0]
        await poll_until(lambda: "Efter" in discord_copy.data["content"], what="Discord edit")
        edits = await poll_until(
            lambda: replaces(env.matrix_from_bot(env.ludvika), copy["event_id"]),
            what="the Ludvika edit",
        )
        await poll_until(lambda: len(env.console_posts()) == 2, what="the console edit")
        await live.idle()
    assert env.runs == 2
    assert discord_copy.data["content"] == "Efter omstarten"
    assert edits[0]["content"]["m.new_content"]["body"] == "Anna (Falun): Efter omstarten"
    # Not posted again as a new message anywhere.
    assert len(env.discord_copies()) == 1
    assert len(plain(env.matrix_from_bot(env.ludvika))) == 1


async def test_status_lists_rooms_and_reports_unreachable_ones(
    bridge_env: BridgeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = bridge_env
    outside = await env.anna.create_room()  # the bot is not invited
    locked = env.world.channels[2]
    env.standin.no_webhooks.add(locked.id)
    env.extra = f"""
[[bridges]]
id = "trasig"
rooms = ["matrix:{outside}", "discord:{locked.id}", "console:{env.console_room}"]
"""
    caplog.set_level(logging.WARNING, logger="plugins.bridge")
    async with running_app(env) as live:
        await env.anna.say(env.falun, "Något att rapportera")
        await poll_until(env.discord_copies)
        await live.idle()
        live.io.say(env.console_room, "anna", "!brygga status")
        await poll_until(
            lambda: any("trasig" in line for line in env.output.lines()), what="the status"
        )
        await live.idle()
    # Said at start, not silently skipped.
    warned = [r.getMessage() for r in caplog.records if r.name == "plugins.bridge"]
    assert any(outside in w and "trasig" in w for w in warned), warned
    assert any(str(locked.id) in w and "webhook" in w for w in warned), warned
    status = "\n".join(env.output.lines())
    assert "Brygga samverkan (4 rum):" in status and "Brygga trasig (3 rum):" in status
    lines = {line.strip() for line in env.output.lines()}
    working = [line for line in lines if line.startswith(f"matrix:{env.falun} (Falun): fungerar")]
    assert working, status
    mora = next(line for line in lines if line.startswith(f"discord:{env.mora.id} (Mora)"))
    assert "fungerar" in mora and "aldrig" not in mora and "kö 0" in mora
    broken_mx = next(line for line in lines if line.startswith(f"matrix:{outside}"))
    assert "kan inte nås" in broken_mx
    broken_dc = next(line for line in lines if line.startswith(f"discord:{locked.id}"))
    assert "kan inte nås" in broken_dc and "webhook" in broken_dc
    # The message was not posted where it cannot go, and nothing was retried there.
    assert not [r for r in env.standin.requests if f"/{locked.id}/messages" in r.path]


async def test_a_reply_without_fallback_to_a_message_never_bridged_is_quoted(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    # Said before the bot's first start: a fresh store does not replay history.
    old = await env.anna.say(env.falun, "Gammal fråga från förr")
    async with running_app(env) as live:
        # As newer clients send it: the relation only, no quoted fallback in the body.
        await env.anna.say(
            env.falun,
            "Svar utan reservtext",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": old}}},
        )
        posts = await poll_until(
            lambda: [p for p in env.webhook_posts() if "Svar utan" in p.json["content"]],
            what="the quoted reply on Discord",
        )
        copies = await poll_until(lambda: env.matrix_from_bot(env.ludvika), what="Ludvika")
        await live.idle()
    name = env.anna.client.rooms[env.falun].user_name(env.anna.user_id)
    assert posts[0].json["content"] == f"> {name}: Gammal fråga från förr\nSvar utan reservtext"
    assert copies[0]["content"]["body"] == (
        f"Anna (Falun):\n> {name}: Gammal fråga från förr\nSvar utan reservtext"
    )
    assert "Gammal fråga" not in " ".join(bodies(copies[1:]))
