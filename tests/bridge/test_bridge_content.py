"""What a bridged message holds, against the real peers: images, mentions that must not
ping, HTML that must not run, length limits, and formatting both ways. Every assertion
is on what the peers saw on the wire (see test_bridge_live.py for routing, edits,
replies, reactions, bursts and restarts)."""

from __future__ import annotations

from typing import Any

from bot.adapters.matrix.outbound import api
from tests.bridge.live import BridgeEnv, edit_of, poll_until, running_app

HTML = "org.matrix.custom.html"

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


async def download(env: BridgeEnv, mxc: str) -> bytes:
    answer = await env.anna.client.download(mxc=mxc)
    body = getattr(answer, "body", None)
    assert isinstance(body, bytes), answer
    return body


async def test_images_are_uploaded_again_both_ways(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    async with running_app(env) as live:
        mxc = await anna.upload(PNG, "image/png", "affisch.png")
        await anna.send(
            env.falun,
            {
                "msgtype": "m.image",
                "body": "affisch.png",
                "url": mxc,
                "info": {"mimetype": "image/png", "size": len(PNG)},
            },
        )
        post = (await poll_until(env.webhook_posts, what="the image on Discord"))[0]
        lv = await poll_until(
            lambda: env.matrix_from_bot(env.ludvika)[1:2], what="the image in Ludvika"
        )
        picture = env.cdn.attachment("karta.png", PNG[::-1], "image/png")
        await s.user_message(env.mora, bertil, "Kartan", attachments=[picture])
        fa = await poll_until(lambda: env.matrix_from_bot(env.falun)[1:], what="the image in Falun")
        await live.idle()
    # Discord: the file itself, under the author's name, not a link.
    assert post.files == ["affisch.png"]
    assert post.json["username"] == "Anna (Falun)"
    stored = env.discord_copies()[0].data["attachments"]
    assert [(a["filename"], a["size"]) for a in stored] == [("affisch.png", len(PNG))]
    # Matrix: who sent it, then the image, uploaded to the homeserver again.
    named, image = env.matrix_from_bot(env.ludvika)[:2]
    assert named["content"]["body"] == "Anna (Falun):"
    assert image["content"]["msgtype"] == "m.image" and image["content"]["url"] != mxc
    assert await download(env, image["content"]["url"]) == PNG
    named, image = env.matrix_from_bot(env.falun)
    assert named["content"]["body"] == "bertil (Mora): Kartan"
    assert image["content"]["msgtype"] == "m.image"
    assert image["content"]["info"]["mimetype"] == "image/png"
    assert await download(env, image["content"]["url"]) == PNG[::-1]
    assert env.cdn.fetched.count("karta.png") == 2  # once per Matrix room
    assert len(lv) == 1 and len(fa) == 1  # a name and one image each
    assert len(env.matrix_from_bot(env.ludvika)) == 4  # both posts, each name and image


def highlights(notifications: dict[str, Any], event_id: str) -> list[Any]:
    """The notifications for `event_id` that would ping (highlight) their user."""
    found = []
    for n in notifications.get("notifications", []):
        if n["event"]["event_id"] != event_id:
            continue
        for action in n.get("actions", []):
            tweak = isinstance(action, dict) and action.get("set_tweak") == "highlight"
            if tweak and action.get("value", True):
                found.append(n)
    return found


async def test_everyone_here_room_and_roles_arrive_without_a_ping(
    bridge_env: BridgeEnv, users: Any
) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna
    cecilia = await users("cecilia")
    await anna.client.room_invite(env.ludvika, cecilia.user_id)
    await cecilia.join(env.ludvika)
    async with running_app(env) as live:
        role = env.world.organiser_role
        said = f"@everyone @here <@&{role}> <@{env.world.anna.id}> kom nu!"
        await s.user_message(env.mora, bertil, said)
        from_discord = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await anna.say(env.falun, "@room @everyone @here viktigt")
        post = (await poll_until(env.webhook_posts, what="the Discord copy"))[0]
        from_matrix = (
            await poll_until(lambda: env.matrix_from_bot(env.ludvika)[1:], what="Ludvika")
        )[0]
        await live.idle()
        # Synapse has worked out by now whom each copy notifies.
        await cecilia.wait_until(
            lambda: any(src["event_id"] == from_matrix["event_id"] for _, src in cecilia.events)
        )
    content = from_discord["content"]
    assert content["m.mentions"] == {}
    body = content["body"]
    assert "@everyone" not in body and "@here" not in body and "everyone" in body
    assert "@Organisatör" in body and "@anna" in body and "<@" not in body
    assert "matrix.to" not in content["formatted_body"]
    assert from_matrix["content"]["m.mentions"] == {}
    # Discord: sent with no mentions allowed, stored as pinging nobody.
    assert post.json["allowed_mentions"] == {"parse": []}
    stored = env.discord_copies()[0].data
    assert stored["mention_everyone"] is False and stored["mentions"] == []
    assert stored["content"] == "@room @everyone @here viktigt"
    # Synapse's push rules: neither copy highlights the other member of Ludvika.
    status, raw = await api(cecilia.client, "GET", "/_matrix/client/v3/notifications?limit=50")
    assert status == 200, raw
    assert highlights(raw, from_matrix["event_id"]) == []
    assert highlights(raw, from_discord["event_id"]) == []


async def test_scripts_and_javascript_links_arrive_harmless(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    html = (
        '<p>Hej <script>alert("x")</script><a href="javascript:alert(1)">klicka</a> '
        '<b>fet</b> <a href="https://example.org/a">länk</a></p>'
    )
    async with running_app(env) as live:
        await env.anna.say(env.falun, "Hej klicka fet länk", format=HTML, formatted_body=html)
        post = (await poll_until(env.webhook_posts, what="the Discord copy"))[0]
        copy = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await poll_until(env.console_posts)
        await live.idle()
    content = post.json["content"]
    assert content == "Hej klicka **fet** [länk](https://example.org/a)"
    formatted = copy["content"]["formatted_body"]
    for bad in ("<script", "alert", "javascript"):
        assert bad not in formatted and bad not in copy["content"]["body"]
        assert bad not in env.console_posts()[0]
    assert "<strong>fet</strong>" in formatted and 'href="https://example.org/a"' in formatted


async def test_a_long_message_is_split_on_discord_and_whole_on_matrix(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    sentence = "Regionen behöver fler som vill engagera sig i föreningslivet. "
    paragraphs = [(sentence * 10).strip() for _ in range(5)]
    text = "\n\n".join(paragraphs)[:3000].rstrip()
    assert len(text) == 3000
    async with running_app(env) as live:
        await env.anna.say(env.falun, text)
        posts = await poll_until(lambda: len(env.webhook_posts()) == 2 and env.webhook_posts())
        copy = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await live.idle()
    first, second = (p.json["content"] for p in posts)
    assert len(first) <= 2000 and len(second) <= 2000
    # Split at a paragraph or sentence end, never inside a word.
    assert text.startswith(first.rstrip()) and first.rstrip().endswith(".")
    assert " ".join((first + " " + second).split()) == " ".join(text.split())
    assert {p.json["username"] for p in posts} == {"Anna (Falun)"}
    assert copy["content"]["body"] == "Anna (Falun): " + text
    assert len(env.matrix_from_bot(env.ludvika)) == 1


async def test_edits_and_deletion_of_a_long_message_reach_every_discord_part(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    s = env.standin
    sentence = "Regionen behöver fler som vill engagera sig i föreningslivet. "
    text = "\n\n".join((sentence * 10).strip() for _ in range(5))[:3000].rstrip()
    changed = text.replace("Regionen", "Distriktet")
    async with running_app(env) as live:
        original = await env.anna.say(env.falun, text)
        await poll_until(lambda: len(env.discord_copies()) == 2, what="two parts")
        first, second = env.discord_copies()
        # Both parts change.
        await env.anna.send(env.falun, edit_of(original, changed + " Slut."))
        await poll_until(
            lambda: (
                "Distriktet" in first.data["content"] and "Distriktet" in second.data["content"]
            ),
            what="both parts edited",
        )
        edited = (first.data["content"], second.data["content"])
        # Short now: the first part says it all, the second goes.
        await env.anna.send(env.falun, edit_of(original, "Kort och gott."))
        await poll_until(lambda: second.deleted, what="the second part deleted")
        shortened = first.data["content"]
        await env.anna.client.room_redact(env.falun, original)
        await poll_until(lambda: first.deleted, what="the post deleted")
        await live.idle()
    assert " ".join((edited[0] + " " + edited[1]).split()) == " ".join((changed + " Slut.").split())
    assert all(len(part) <= 2000 for part in edited)
    assert shortened == "Kort och gott."
    assert env.discord_copies() == []
    # The edits went through the webhook: no refused request.
    assert [r.route for r in s.requests if r.status >= 400] == []


async def test_formatting_converts_both_ways(bridge_env: BridgeEnv) -> None:
    env = bridge_env
    s, bertil = env.standin, env.world.bertil
    markdown = (
        "```py\nif x < 2:\n    pass\n```\n"
        "~~gammalt~~ ||hemligt|| __viktigt__ *lite* `kod` [sidan](https://example.org/s)"
    )
    html = (
        '<pre><code class="language-py">a &lt; b\n</code></pre>'
        "<p><del>inte</del> <span data-mx-spoiler>dolt</span> <em>ja</em> <code>c</code></p>"
    )
    async with running_app(env) as live:
        await s.user_message(env.mora, bertil, markdown)
        from_discord = (await poll_until(lambda: env.matrix_from_bot(env.falun)))[0]
        await env.anna.say(env.falun, "a < b inte dolt ja c", format=HTML, formatted_body=html)
        post = (await poll_until(env.webhook_posts, what="the Discord copy"))[0]
        await live.idle()
    formatted = from_discord["content"]["formatted_body"]
    assert formatted.startswith('<strong>bertil (Mora)</strong>:<pre><code class="language-py">')
    assert "if x &lt; 2:\n    pass\n</code></pre>" in formatted
    assert "<del>gammalt</del>" in formatted
    assert "<span data-mx-spoiler>hemligt</span>" in formatted
    assert "<u>viktigt</u>" in formatted and "<em>lite</em>" in formatted
    assert "<code>kod</code>" in formatted
    assert '<a href="https://example.org/s">sidan</a>' in formatted
    assert from_discord["content"]["body"].startswith("bertil (Mora):\n```py\n")
    assert post.json["content"] == "```py\na < b\n```\n\n~~inte~~ ||dolt|| *ja* `c`"
