"""The stand-in's native polls and select menus, spoken to with plain aiohttp: Discord's
limits and refusals, vote events by intent, the voters list, expiry by the author."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.discord.botrun import World
from tests.discord.standin import StandIn
from tests.discord.standin.polls import DIRECT_MESSAGE_POLLS, GUILD_MESSAGE_POLLS
from tests.discord.standin.validation import ApiError

GUILDS_AND_MESSAGES = 1 | 1 << 9


def _auth(s: StandIn) -> dict[str, str]:
    return {"Authorization": f"Bot {s.token}"}


def poll_body(answers: list[str], *, hours: Any = 24, question: str = "Q?", **extra: Any) -> Any:
    return {
        "poll": {
            "question": {"text": question},
            "answers": [{"poll_media": {"text": a}} for a in answers],
            "duration": hours,
            **extra,
        }
    }


async def _call(
    http: aiohttp.ClientSession, s: StandIn, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, s.api_url + path, json=body, headers=_auth(s)) as r:
        return r.status, await r.json(content_type=None)


class Listener:
    """A raw gateway client that identifies with `intents` and keeps every dispatch."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def of(self, name: str) -> list[Any]:
        return [d for t, d in self.events if t == name]


@contextlib.asynccontextmanager
async def listening(s: StandIn, intents: int) -> AsyncIterator[Listener]:
    listener = Listener()
    async with aiohttp.ClientSession() as http, http.ws_connect(s.gateway_url) as ws:
        await ws.receive()  # HELLO
        await ws.send_json({"op": 2, "d": {"token": s.token, "intents": intents}})

        async def read() -> None:
            async for msg in ws:
                frame = json.loads(msg.data)
                if frame.get("op") == 0:
                    listener.events.append((frame["t"], frame["d"]))

        task = asyncio.create_task(read())
        await s.wait_for(lambda: listener.of("READY"), what="READY")
        try:
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_poll_creation_within_discords_limits(world: World) -> None:
    s = world.standin
    path = f"/channels/{world.channels[0].id}/messages"
    refused = {
        "11 answers": poll_body([str(i) for i in range(11)]),
        "no answers": poll_body([]),
        "a long answer": poll_body(["x" * 56, "b"]),
        "an empty answer": poll_body(["", "b"]),
        "a long question": poll_body(["a", "b"], question="q" * 301),
        "no question": poll_body(["a", "b"], question=""),
        "0 hours": poll_body(["a", "b"], hours=0),
        "769 hours": poll_body(["a", "b"], hours=769),
        "1.5 hours": poll_body(["a", "b"], hours=1.5),
        "another layout": poll_body(["a", "b"], layout_type=2),
    }
    async with aiohttp.ClientSession() as http:
        for what, body in refused.items():
            status, data = await _call(http, s, "POST", path, body)
            assert (status, data["code"], data["message"]) == (400, 50035, "Invalid Form Body"), (
                what
            )
            assert data["errors"]["poll"], what
        status, data = await _call(http, s, "POST", path, poll_body(["a", "b"], hours=24 * 33))
        leaf = data["errors"]["poll"]["duration"]["_errors"][0]
        assert leaf == {
            "code": "NUMBER_TYPE_MAX",
            "message": "int value should be less than or equal to 768.",
        }
        status, data = await _call(http, s, "POST", path, poll_body(["a", "x" * 56]))
        assert data["errors"]["poll"]["answers"]["1"]["poll_media"]["text"]["_errors"]

        longest = poll_body(["x" * 55] * 10, hours=768, question="q" * 300)
        status, data = await _call(http, s, "POST", path, longest)
        assert status == 200
        poll = data["poll"]
        assert [a["answer_id"] for a in poll["answers"]] == list(range(1, 11))
        assert poll["results"] == {"is_finalized": False, "answer_counts": []}
        # A poll cannot be edited.
        status, data = await _call(http, s, "PATCH", f"{path}/{data['id']}", poll_body(["a", "b"]))
        assert (status, data["code"]) == (400, 520003)


async def test_votes_reach_only_sessions_with_the_poll_intent_that_saw_the_poll(
    world: World,
) -> None:
    s = world.standin
    falun = world.channels[0]
    async with (
        listening(s, GUILDS_AND_MESSAGES | GUILD_MESSAGE_POLLS) as polls,
        listening(s, GUILDS_AND_MESSAGES | DIRECT_MESSAGE_POLLS) as dm_only,
    ):
        async with aiohttp.ClientSession() as http:
            _, posted = await _call(
                http, s, "POST", f"/channels/{falun.id}/messages", poll_body(["Ja", "Nej"])
            )
        message = s.messages[int(posted["id"])]
        await s.wait_for(lambda: polls.of("MESSAGE_CREATE"), what="the poll's MESSAGE_CREATE")
        async with listening(s, GUILDS_AND_MESSAGES | GUILD_MESSAGE_POLLS) as latecomer:
            assert await s.poll_vote(message, world.anna, 1)
            assert await s.poll_vote(message, world.bertil, 1)
            # Single choice: Bertil's new answer takes his first one back.
            assert await s.poll_vote(message, world.bertil, 2)
            assert not await s.poll_vote(message, world.bertil, 2)  # nothing changes
            assert await s.poll_vote(message, world.anna, 1, add=False)
            await s.wait_for(lambda: len(polls.events) >= 6, what="five vote events")
            assert latecomer.of("MESSAGE_POLL_VOTE_ADD") == []  # it never saw the poll
        kinds = [
            (t[len("MESSAGE_POLL_VOTE_") :], int(d["user_id"]), d["answer_id"])
            for t, d in polls.events
            if t.startswith("MESSAGE_POLL_VOTE")
        ]
        anna, bertil = world.anna.id, world.bertil.id
        assert kinds == [
            ("ADD", anna, 1),
            ("ADD", bertil, 1),
            ("REMOVE", bertil, 1),
            ("ADD", bertil, 2),
            ("REMOVE", anna, 1),
        ]
        assert dm_only.of("MESSAGE_POLL_VOTE_ADD") == []  # guild polls need GUILD_MESSAGE_POLLS
    counts = message.data["poll"]["results"]["answer_counts"]
    assert counts == [{"id": 2, "count": 1, "me_voted": False}]
    with pytest.raises(ApiError) as refused:
        await s.poll_vote(message, s.bot, 1)  # apps cannot vote
    assert refused.value.code == 520000


async def test_voters_are_listed_in_pages_by_user_id(world: World) -> None:
    s = world.standin
    falun = world.channels[0]
    voters = [s.add_user(f"medlem{i}") for i in range(130)]
    message = await s.user_message(
        falun, world.anna, "", poll=poll_body(["Ja", "Nej"], allow_multiselect=True)["poll"]
    )
    for user in voters:
        await s.poll_vote(message, user, 1)
    for user in voters[:3]:
        await s.poll_vote(message, user, 2)
    base = f"/channels/{falun.id}/polls/{message.id}/answers"
    async with aiohttp.ClientSession() as http:
        status, first = await _call(http, s, "GET", f"{base}/1?limit=100")
        assert status == 200 and len(first["users"]) == 100
        ids = [int(u["id"]) for u in first["users"]]
        assert ids == sorted(ids)
        _, rest = await _call(http, s, "GET", f"{base}/1?limit=100&after={ids[-1]}")
        seen = ids + [int(u["id"]) for u in rest["users"]]
        assert sorted(seen) == sorted(u.id for u in voters)
        _, default = await _call(http, s, "GET", f"{base}/1")
        assert len(default["users"]) == 25
        _, second = await _call(http, s, "GET", f"{base}/2")
        assert [int(u["id"]) for u in second["users"]] == sorted(u.id for u in voters[:3])
        for bad in ("limit=101", "limit=0", "limit=x"):
            status, data = await _call(http, s, "GET", f"{base}/1?{bad}")
            assert (status, data["code"]) == (400, 50035), bad
        status, data = await _call(http, s, "GET", f"{base}/3")
        assert (status, data["code"]) == (400, 50035)
        plain = await s.user_message(falun, world.anna, "no poll")
        status, data = await _call(
            http, s, "GET", f"/channels/{falun.id}/polls/{plain.id}/answers/1"
        )
        assert (status, data["code"]) == (404, 10008)


async def test_only_the_author_ends_a_poll_and_ending_finalises_it(world: World) -> None:
    s = world.standin
    falun = world.channels[0]
    members = await s.user_message(falun, world.anna, "", poll=poll_body(["a", "b"])["poll"])
    plain = await s.user_message(falun, world.anna, "no poll")
    async with aiohttp.ClientSession() as http:
        _, posted = await _call(
            http, s, "POST", f"/channels/{falun.id}/messages", poll_body(["Ja", "Nej"])
        )
        ours = s.messages[int(posted["id"])]
        await s.poll_vote(ours, world.anna, 1)
        await s.poll_vote(ours, world.bertil, 1)
        status, data = await _call(
            http, s, "POST", f"/channels/{falun.id}/polls/{members.id}/expire"
        )
        assert (status, data["code"]) == (403, 50005)
        status, data = await _call(http, s, "POST", f"/channels/{falun.id}/polls/{plain.id}/expire")
        assert (status, data["code"]) == (400, 520006)
        status, data = await _call(http, s, "POST", f"/channels/{falun.id}/polls/{ours.id}/expire")
        assert status == 200
        assert data["poll"]["results"] == {
            "is_finalized": True,
            "answer_counts": [{"id": 1, "count": 2, "me_voted": False}],
        }
        status, data = await _call(http, s, "POST", f"/channels/{falun.id}/polls/{ours.id}/expire")
        assert (status, data["code"]) == (400, 520001)
    with pytest.raises(ApiError) as late:
        await s.poll_vote(ours, world.bertil, 2)
    assert late.value.code == 520001
    [closed] = [m for m in s.channel_messages(falun.id) if m.data["type"] == 46]
    fields = {f["name"]: f["value"] for f in closed.data["embeds"][0]["fields"]}
    assert fields["total_votes"] == "2" and fields["victor_answer_text"] == "Ja"
    assert closed.data["message_reference"]["message_id"] == str(ours.id)


def _select(**overrides: Any) -> dict[str, Any]:
    menu: dict[str, Any] = {
        "type": 3,
        "custom_id": "vote:select",
        "options": [{"label": f"Svar {i}", "value": str(i)} for i in range(1, 8)],
        "min_values": 0,
        "max_values": 2,
    }
    menu.update(overrides)
    return {"content": "Välj", "components": [{"type": 1, "components": [menu]}]}


async def test_select_menus_are_checked_as_discord_checks_them(world: World) -> None:
    s = world.standin
    falun = world.channels[0]
    path = f"/channels/{falun.id}/messages"
    options = [{"label": f"S{i}", "value": str(i)} for i in range(26)]
    button = {"type": 2, "style": 2, "label": "x", "custom_id": "b"}
    refused = {
        "26 options": _select(options=options, max_values=3),
        "no options": _select(options=[]),
        "more picks than options": _select(max_values=8),
        "min above max": _select(min_values=3),
        "26 picks": _select(max_values=26),
        "a duplicated value": _select(options=[{"label": "a", "value": "1"}] * 2),
        "a long label": _select(options=[{"label": "x" * 101, "value": "1"}], max_values=1),
        "an empty value": _select(options=[{"label": "a", "value": ""}], max_values=1),
        "a long placeholder": _select(placeholder="p" * 151),
        "no custom id": _select(custom_id=""),
        "a button beside it": {
            "content": "x",
            "components": [
                {"type": 1, "components": [_select()["components"][0]["components"][0], button]}
            ],
        },
        "a button without a label": {
            "content": "x",
            "components": [{"type": 1, "components": [{"type": 2, "style": 2, "custom_id": "b"}]}],
        },
        "six buttons in a row": {
            "content": "x",
            "components": [
                {"type": 1, "components": [{**button, "custom_id": f"b{i}"} for i in range(6)]}
            ],
        },
    }
    async with aiohttp.ClientSession() as http:
        for what, body in refused.items():
            status, data = await _call(http, s, "POST", path, body)
            assert (status, data["code"]) == (400, 50035), what
            assert data["errors"]["components"], what
        status, data = await _call(http, s, "POST", path, _select())
        assert status == 200
    message = s.messages[int(data["id"])]
    inter = await s.select(message, world.bertil, "vote:select", ["2", "5"])
    assert s.interactions[inter.id].kind == 3
    for picks in (["1", "2", "3"], ["9"], ["1", "1"]):
        with pytest.raises(AssertionError):
            await s.select(message, world.bertil, "vote:select", picks)
    await s.select(message, world.bertil, "vote:select", [])  # min_values 0: a withdrawal


async def test_component_callbacks_and_followup_lifetime(world: World) -> None:
    s = world.standin
    falun = world.channels[0]
    async with aiohttp.ClientSession() as http:
        body: dict[str, Any] = {
            "content": "Knappar",
            "components": [
                {"type": 1, "components": [{"type": 2, "style": 2, "label": "A", "custom_id": "a"}]}
            ],
        }
        _, data = await _call(http, s, "POST", f"/channels/{falun.id}/messages", body)
        message = s.messages[int(data["id"])]

        async def callback(inter: Any, kind: int, data: Any = None) -> tuple[int, Any]:
            url = f"{s.api_url}/interactions/{inter.id}/{inter.token}/callback"
            async with http.post(url, json={"type": kind, "data": data or {}}) as r:
                return r.status, await r.json(content_type=None)

        command = await s.slash_command(falun, world.bertil, "help")
        status, answer = await callback(command, 6)
        assert (status, answer["code"]) == (400, 50035)  # a command cannot defer an update
        click = await s.click(message, world.bertil, "a")
        assert (await callback(click, 6))[0] == 204
        status, answer = await callback(click, 6)
        assert (status, answer["code"]) == (400, 40060)

        followup = f"{s.api_url}/webhooks/{s.bot.id}/{click.token}?wait=true"
        async with http.post(followup, json={"content": "Tack", "flags": 64}) as r:
            assert r.status == 200 and (await r.json())["flags"] & 64
        s.followup_window = 0.0
        async with http.post(followup, json={"content": "För sent"}) as r:
            assert (r.status, (await r.json())["code"]) == (401, 50027)

        # An update of the clicked message (type 7), here disabling its button.
        s.followup_window = 900.0
        again = await s.click(message, world.anna, "a")
        disabled = [
            {
                "type": 1,
                "components": [{**body["components"][0]["components"][0], "disabled": True}],
            }
        ]
        assert (await callback(again, 7, {"components": disabled}))[0] == 204
        assert message.data["components"][0]["components"][0]["disabled"] is True
        with pytest.raises(AssertionError):
            await s.click(message, world.anna, "a")  # no client sends a disabled button's click
