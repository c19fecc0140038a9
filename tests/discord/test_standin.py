"""The stand-in itself, spoken to with plain aiohttp: what it answers and rejects."""

from __future__ import annotations

import json
import zlib
from typing import Any

import aiohttp

from tests.discord.botrun import World
from tests.discord.standin import StandIn


def _auth(s: StandIn) -> dict[str, str]:
    return {"Authorization": f"Bot {s.token}"}


async def _post(
    http: aiohttp.ClientSession, s: StandIn, path: str, body: Any, auth: bool = True
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(s.api_url + path, json=body, headers=_auth(s) if auth else {}) as r:
        return r.status, await r.json(content_type=None), r


async def test_rest_answers_and_rejects_like_discord(world: World) -> None:
    s = world.standin
    falun = world.channels[0]
    async with aiohttp.ClientSession() as http:
        status, data, r = await _post(http, s, f"/channels/{falun.id}/messages", {"content": "hej"})
        assert status == 200 and data["content"] == "hej"
        assert r.headers["Content-Type"] == "application/json"  # exactly, no charset
        assert r.headers["X-RateLimit-Bucket"] and int(r.headers["X-RateLimit-Remaining"]) >= 0

        status, data, _ = await _post(http, s, "/channels/1/messages", {"content": "x"})
        assert (status, data["code"]) == (404, 10003)
        status, data, _ = await _post(
            http, s, f"/channels/{falun.id}/messages", {"content": "x" * 2001}
        )
        assert (status, data["code"]) == (400, 50035)
        status, data, _ = await _post(
            http, s, f"/channels/{falun.id}/messages", {"content": "x"}, False
        )
        assert status == 401

        def poll(answers: list[str], hours: int = 24) -> dict[str, Any]:
            return {
                "poll": {
                    "question": {"text": "Q?"},
                    "answers": [{"poll_media": {"text": a}} for a in answers],
                    "duration": hours,
                }
            }

        path = f"/channels/{falun.id}/messages"
        assert (await _post(http, s, path, poll([str(i) for i in range(11)])))[0] == 400
        assert (await _post(http, s, path, poll(["x" * 56])))[0] == 400
        assert (await _post(http, s, path, poll(["a", "b"], hours=24 * 33)))[0] == 400
        assert (await _post(http, s, path, poll(["a", "b"])))[0] == 200

        hooks = f"/channels/{falun.id}/webhooks"
        assert (await _post(http, s, hooks, {"name": "My Discord bridge"}))[0] == 400
        assert (await _post(http, s, hooks, {"name": "clyde"}))[0] == 400
        status, hook, _ = await _post(http, s, hooks, {"name": "Samverkan"})
        assert status == 200
        execute = f"/webhooks/{hook['id']}/{hook['token']}?wait=1"
        assert (await _post(http, s, execute, {"content": "a", "username": "Discord"}, False))[
            0
        ] == 400
        status, data, _ = await _post(http, s, execute, {"content": "a", "username": "Anna"}, False)
        assert status == 200 and data["webhook_id"] == hook["id"]

        # Nonce with enforce_nonce: the same message again, not a second one.
        body = {"content": "once", "nonce": "n1", "enforce_nonce": True}
        first = (await _post(http, s, path, body))[1]
        again = (await _post(http, s, path, body))[1]
        assert first["id"] == again["id"]

        async with http.get(s.api_url + path, params={"after": first["id"]}, headers=_auth(s)) as r:
            assert await r.json() == []
        async with http.get(s.api_url + path, params={"limit": "2"}, headers=_auth(s)) as r:
            newest = await r.json()
        assert [m["content"] for m in newest] == ["once", "a"]  # newest first, as Discord


async def test_injected_429s_carry_via_and_retry_after(world: World) -> None:
    s = world.standin
    s.inject("POST /channels/{channel_id}/messages", retry_after=0.25)
    s.inject("GET /users/@me", retry_after=0.5, global_=True)
    path = f"/channels/{world.channels[0].id}/messages"
    async with aiohttp.ClientSession() as http:
        status, data, r = await _post(http, s, path, {"content": "x"})
        assert (
            status == 429
            and r.headers["Via"]
            and data
            == {
                "message": "You are being rate limited.",
                "retry_after": 0.25,
                "global": False,
            }
        )
        assert (await _post(http, s, path, {"content": "x"}))[0] == 200
        async with http.get(s.api_url + "/users/@me", headers=_auth(s)) as resp:
            assert resp.status == 429 and (await resp.json())["global"] is True
        # A global limit holds every route until it passes.
        assert (await _post(http, s, path, {"content": "x"}))[0] == 429
    assert [r.status for r in s.recorded("POST /channels/{channel_id}/messages")] == [429, 200, 429]


async def _frame(ws: aiohttp.ClientWebSocketResponse, inflate: Any) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.BINARY  # zlib-stream was asked for
    data: dict[str, Any] = json.loads(inflate.decompress(msg.data))
    return data


async def test_gateway_zlib_hello_identify_heartbeat_resume(world: World) -> None:
    s = world.standin
    url = s.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url)
        inflate = zlib.decompressobj()
        assert (await _frame(ws, inflate))["op"] == 10
        await ws.send_json({"op": 1, "d": None})
        assert (await _frame(ws, inflate))["op"] == 11
        await ws.send_json({"op": 2, "d": {"token": s.token, "intents": 513, "properties": {}}})
        ready = await _frame(ws, inflate)
        assert ready["t"] == "READY" and ready["s"] == 1
        assert (await _frame(ws, inflate))["t"] == "GUILD_CREATE"
        session = ready["d"]["session_id"]
        await ws.close()

        # Missed while away, replayed on RESUME.
        await s.user_message(world.channels[0], world.bertil, "while away")
        ws = await http.ws_connect(url)
        inflate = zlib.decompressobj()
        await _frame(ws, inflate)
        await ws.send_json({"op": 6, "d": {"token": s.token, "session_id": session, "seq": 2}})
        replay = await _frame(ws, inflate)
        assert replay["t"] == "MESSAGE_CREATE" and replay["d"]["content"] == "while away"
        assert (await _frame(ws, inflate))["t"] == "RESUMED"

        await s.gateway.send_reconnect()
        assert (await _frame(ws, inflate))["op"] == 7
        await s.gateway.invalidate_sessions()
        assert (await _frame(ws, inflate)) == {"op": 9, "d": False}
        await ws.close()

        ws = await http.ws_connect(url)
        inflate = zlib.decompressobj()
        await _frame(ws, inflate)
        await ws.send_json({"op": 6, "d": {"token": s.token, "session_id": session, "seq": 3}})
        assert (await _frame(ws, inflate)) == {"op": 9, "d": False}  # not resumable now
        await ws.close()
    sent = [f.op for f in s.frames if f.direction == "in"]
    assert sent == [1, 2, 6, 6]
