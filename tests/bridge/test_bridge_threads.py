"""Threads across the bridge: a thread in one room is a thread in every room whose
platform has them (Matrix `m.thread`, Discord threads started on the root's copy), and a
plain message where none exist (the console), against Synapse and the Discord stand-in."""

from __future__ import annotations

from typing import Any

from tests.bridge.live import BridgeEnv, edit_of, poll_until, running_app
from tests.bridge.test_bridge_live import bodies, plain, replaces


def in_thread(root: str, reply_to: str | None = None) -> dict[str, Any]:
    """What a Matrix client sends for a post in the thread of `root`."""
    return {
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": reply_to is None,
            "m.in_reply_to": {"event_id": reply_to or root},
        }
    }


def relation(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event["content"].get("m.relates_to") or {})


async def test_a_matrix_thread_is_a_thread_on_discord_and_in_the_other_matrix_room(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    s, anna = env.standin, env.anna
    async with running_app(env) as live:
        root = await anna.say(env.falun, "Vem kan dela flygblad på lördag?\nVi ses kl 10.")
        root_copy = (await poll_until(env.discord_copies, what="the root on Discord"))[0]
        lv_root = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await anna.say(env.falun, "Jag tar Norra", **in_thread(root))
        threads = await poll_until(lambda: s.threads(env.mora.id), what="a thread on Discord")

        def thread_posts() -> list[Any]:
            return [m for m in s.channel_messages(threads[0].id) if m.webhook_id]

        await poll_until(thread_posts, what="the post in the Discord thread")
        lv_posts = await poll_until(
            lambda: env.matrix_from_bot(env.ludvika)[1:], what="the post in Ludvika's thread"
        )
        # A second post goes into the same thread, and its edit follows it there.
        second = await anna.say(env.falun, "Och Södra", **in_thread(root))
        await poll_until(lambda: len(thread_posts()) == 2, what="the second post")
        await anna.send(env.falun, edit_of(second, "Och Södra, med Bertil"))
        await poll_until(
            lambda: "Bertil" in thread_posts()[1].data["content"], what="the edit in the thread"
        )
        await poll_until(lambda: len(env.console_posts()) == 4, what="four console lines")
        await live.idle()
    thread = threads[0]
    assert len(s.threads(env.mora.id)) == 1
    # Started on the root's copy, named after its first line.
    assert thread.id == root_copy.id
    assert thread.name == "Vem kan dela flygblad på lördag?"
    posts = thread_posts()
    assert [p.data["content"] for p in posts] == ["Jag tar Norra", "Och Södra, med Bertil"]
    assert {p.data["author"]["username"] for p in posts} == {"Anna (Falun)"}
    # Nothing of the thread in Mora's channel itself.
    assert env.discord_copies() == [root_copy]
    executes = s.recorded("POST /webhooks/{webhook_id}/{webhook_token}")
    assert [r.query.get("thread_id") for r in executes] == [None, str(thread.id), str(thread.id)]
    rel = relation(lv_posts[0])
    assert rel["rel_type"] == "m.thread" and rel["event_id"] == lv_root["event_id"]
    assert lv_posts[0]["content"]["body"] == "Anna (Falun): Jag tar Norra"
    # For clients without threads, each post falls back to answering the thread's latest.
    assert rel["is_falling_back"] is True
    assert rel["m.in_reply_to"]["event_id"] == lv_root["event_id"]
    lv_second = next(
        e for e in env.matrix_from_bot(env.ludvika) if e["content"]["body"].endswith("Och Södra")
    )
    second_rel = relation(lv_second)
    assert second_rel["event_id"] == lv_root["event_id"] and second_rel["is_falling_back"]
    assert second_rel["m.in_reply_to"]["event_id"] == lv_posts[0]["event_id"]
    # The console has no threads: plain lines.
    assert env.console_posts()[1:] == [
        "[#borlange] Anna (Falun): Jag tar Norra",
        "[#borlange] Anna (Falun): Och Södra",
        "[#borlange] Anna (Falun): (ändrat) Och Södra, med Bertil",
    ]
    assert [r.route for r in s.requests if r.status >= 400] == []


async def test_a_discord_thread_reaches_matrix_as_threads_across_restarts(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    s, bertil, anna = env.standin, env.world.bertil, env.anna

    def falun_posts() -> list[dict[str, Any]]:
        return plain(env.matrix_from_bot(env.falun))

    async with running_app(env) as live:
        root = await s.user_message(env.mora, bertil, "Förslag: studiecirkel i januari")
        fa_root = (await poll_until(falun_posts))[0]
        lv_root = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)))[0]
        await live.idle()
    # While the bot is away, Bertil starts a thread and writes in it: the bot learns of
    # the thread when it connects again, and reads it from its start.
    thread = await s.start_thread(root, bertil, "Studiecirkel")
    said = await s.user_message(thread, bertil, "Vi kan vara hos ABF")
    async with running_app(env) as live:
        fa_post = (await poll_until(lambda: falun_posts()[1:], what="the catch-up"))[0]
        lv_post = (await poll_until(lambda: env.matrix_from_bot(env.ludvika)[1:]))[0]
        await s.user_edit(said, "Vi kan vara hos ABF i Falun")
        edits = await poll_until(
            lambda: replaces(env.matrix_from_bot(env.falun), fa_post["event_id"]),
            what="the edit in Falun",
        )
        # Anna answers in Falun's thread: it lands in the Discord thread, answering Bertil.
        await anna.say(env.falun, "Bra idé!", **in_thread(fa_root["event_id"], fa_post["event_id"]))
        answer = (
            await poll_until(
                lambda: [m for m in s.channel_messages(thread.id) if m.webhook_id],
                what="Anna's answer in the Discord thread",
            )
        )[0]
        await live.idle()
    # Away again: a known thread is caught up like a channel.
    await s.user_message(thread, bertil, "Jag bokar lokalen")
    async with running_app(env) as live:
        late = await poll_until(
            lambda: [e for e in falun_posts() if "bokar" in e["content"]["body"]],
            what="the second catch-up",
        )
        await live.idle()
    rel = relation(fa_post)
    assert rel["rel_type"] == "m.thread" and rel["event_id"] == fa_root["event_id"]
    assert relation(lv_post)["event_id"] == lv_root["event_id"]
    assert relation(late[0])["event_id"] == fa_root["event_id"]
    assert fa_post["content"]["body"] == "bertil (Mora): Vi kan vara hos ABF"
    new = edits[0]["content"]["m.new_content"]
    assert new["body"] == "bertil (Mora): Vi kan vara hos ABF i Falun"
    # A webhook cannot reply: the answer links Bertil's message inside the thread.
    guild = env.world.guild_id
    link = f"https://discord.com/channels/{guild}/{thread.id}/{said.id}"
    assert answer.data["content"] == f"-# ↪ {link}\nBra idé!"
    assert answer.data["author"]["username"] == "Anna (Falun)"
    # Ludvika's copy of the answer is in Ludvika's thread, answering its copy of Bertil's.
    lv_answer = [e for e in env.matrix_from_bot(env.ludvika) if "Bra idé" in e["content"]["body"]]
    lv_rel = relation(lv_answer[0])
    assert lv_rel["event_id"] == lv_root["event_id"]
    assert lv_rel["m.in_reply_to"]["event_id"] == lv_post["event_id"]
    # Each of Bertil's posts arrived once.
    assert [e["content"]["body"] for e in falun_posts()] == [
        "bertil (Mora): Förslag: studiecirkel i januari",
        "bertil (Mora): Vi kan vara hos ABF",
        "bertil (Mora): Jag bokar lokalen",
    ]
    # The bridge started no thread of its own: Bertil's was there.
    assert s.recorded("POST /channels/{channel_id}/messages/{message_id}/threads") == []


async def test_a_thread_on_a_message_the_bridge_never_saw_reads_as_plain_posts(
    bridge_env: BridgeEnv,
) -> None:
    env = bridge_env
    s, bertil = env.standin, env.world.bertil
    async with running_app(env) as live:
        hidden = await s.user_message(env.mora, bertil, "Gammalt inlägg", dispatch=False)
        thread = await s.start_thread(hidden, bertil, "Gammal tråd")
        await s.user_message(thread, bertil, "Nytt svar i gammal tråd")
        fa = await poll_until(lambda: env.matrix_from_bot(env.falun), what="Falun")
        await live.idle()
    assert bodies(plain(fa)) == ["bertil (Mora): Nytt svar i gammal tråd"]
    assert "m.relates_to" not in fa[0]["content"]
