"""Hostile text through the whole bot, against real peers: a NUL (and a NUL, digits,
NUL, which once stood for a placeholder of the Matrix renderer) relayed Discord ->
Matrix and Matrix -> Matrix arrives without it, and the bot keeps answering."""

from __future__ import annotations

import json

from tests.bridge.live import BridgeEnv, poll_until, running_app

HOSTILE = ["Hej\x00då", "a\x0012\x00b **fet**", "\x00"]


async def test_nul_characters_are_removed_and_the_bot_keeps_answering(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    async with running_app(env) as live:
        for text in HOSTILE:
            await s.user_message(env.mora, bertil, f"dc {text} slut")
            await anna.say(env.falun, f"mx {text} slut")
        expected = 2 * len(HOSTILE)
        await poll_until(
            lambda: len(env.matrix_from_bot(env.ludvika)) >= expected, what="every copy"
        )
        await anna.say(env.falun, "!hjälp")
        answer = await poll_until(
            lambda: [
                e
                for e in env.matrix_from_bot(env.falun)
                if "hjälp" in str(e["content"].get("body", ""))
            ],
            what="the answer to !hjälp",
        )
        await live.idle()
    copies = env.matrix_from_bot(env.ludvika)
    raw = json.dumps([c["content"] for c in copies], ensure_ascii=False)
    assert "\x00" not in raw and "\\u0000" not in raw
    bodies = sorted(str(c["content"]["body"]) for c in copies)
    # The plain body shows Discord's bold without its marks; a plain Matrix body is
    # taken literally, its asterisks too.
    seen = [t.replace(chr(0), "") for t in HOSTILE]
    assert bodies == sorted(
        [f"bertil (Mora): dc {t.replace('**', '')} slut" for t in seen]
        + [f"Anna (Falun): mx {t} slut" for t in seen]
    )
    # The renderer's own marks did not leak: the bold came out as bold, nothing else.
    bold = [c for c in copies if "fet" in c["content"]["body"] and "dc" in c["content"]["body"]]
    assert bold and all("<strong>fet</strong>" in c["content"]["formatted_body"] for c in bold)
    assert all("12" in c["content"]["formatted_body"] for c in bold)
    # Discord got the Matrix messages, cleaned too, and escaped: plain text stays plain.
    posted = sorted(p.json["content"] for p in env.webhook_posts())
    assert posted == sorted(f"mx {t.replace('*', chr(92) + '*')} slut" for t in seen)
    assert answer
