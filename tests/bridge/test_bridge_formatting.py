"""Formatting across the real peers (Synapse, the Discord stand-in): a quote, a spoiler
and a custom emoji, both ways, as the reader on the other side sees them."""

from __future__ import annotations

import discord
import pytest

from tests.bridge.live import BridgeEnv, poll_until, running_app
from tests.bridge.test_bridge_content import HTML, PNG, download

HIPPO = 444444444444444444


async def test_quote_spoiler_and_custom_emoji_both_ways(
    bridge_env: BridgeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    env.cdn.emoji(HIPPO, PNG)
    monkeypatch.setattr(discord.asset.Asset, "BASE", env.cdn.base)
    async with running_app(env) as live:
        said = f"> citat från Mora\nsvar ||hemligt svar|| <:hippo:{HIPPO}>"
        await s.user_message(env.mora, bertil, said)
        falun = (await poll_until(lambda: env.matrix_from_bot(env.falun), what="Falun"))[0]
        ludvika = (await poll_until(lambda: env.matrix_from_bot(env.ludvika), what="Ludvika"))[0]
        mxc = await anna.upload(PNG, "image/png", "party.png")
        html = (
            "<blockquote>\n<p>citat från Falun</p>\n</blockquote>\n"
            f'<p>svar <span data-mx-spoiler>dolt</span> <img data-mx-emoticon src="{mxc}" '
            'alt=":party:" title=":party:" height="32"></p>\n'
        )
        await anna.say(
            env.falun, "> citat från Falun\n\nsvar dolt :party:", format=HTML, formatted_body=html
        )
        post = (await poll_until(env.webhook_posts, what="the Discord copy"))[0]
        await live.idle()
    # Discord -> Matrix: the quote as a quote, the spoiler hidden (in the body too), the
    # emoji an inline image uploaded once for both rooms.
    for copy in (falun, ludvika):
        content = copy["content"]
        formatted = content["formatted_body"]
        assert formatted.startswith("<strong>bertil (Mora)</strong>:<blockquote>citat från Mora")
        assert "<span data-mx-spoiler>hemligt svar</span>" in formatted
        assert "<img data-mx-emoticon" in formatted and 'alt=":hippo:"' in formatted
        assert content["body"] == "bertil (Mora):\n> citat från Mora\nsvar [spoiler] :hippo:"
    sources = {
        c["content"]["formatted_body"].split('src="')[1].split('"')[0] for c in (falun, ludvika)
    }
    assert len(sources) == 1 and next(iter(sources)).startswith("mxc://")
    assert await download(env, next(iter(sources))) == PNG
    assert env.cdn.fetched.count(f"{HIPPO}.png") == 1  # cached by its id after that
    # Matrix -> Discord: the quote's text inside the quote, the spoiler, the emoji's name.
    assert post.json["content"] == "> citat från Falun\nsvar ||dolt|| :party:"
    assert post.json["allowed_mentions"] == {"parse": []}
