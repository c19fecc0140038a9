"""The stand-in gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME with
replay of what the client missed, op 7 (reconnect) and op 9 (invalid session).

Frames go out as binary zlib-stream chunks (one compressor per connection, each message
ended by a Z_SYNC_FLUSH) when the client asked for `compress=zlib-stream`, else as text.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.discord.standin.model import Json

log = logging.getLogger(__name__)

HELLO, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HEARTBEAT_ACK = (
    10,
    1,
    2,
    6,
    7,
    9,
    11,
)


@dataclass
class Connection:
    id: int
    ws: web.WebSocketResponse
    compressor: Any | None  # zlib compress object, or None for text frames
    session: Session | None = None


@dataclass
class Session:
    id: str
    token: str
    intents: int
    seq: int = 0
    backlog: list[tuple[int, Json]] = field(default_factory=list)
    connection: Connection | None = None
    valid: bool = True
    # Messages this session was told of (MESSAGE_CREATE): poll votes are sent only
    # about those.
    seen: set[int] = field(default_factory=set)


@dataclass
class Frame:
    """One recorded gateway frame: `direction` is "in" (from the client) or "out"."""

    direction: str
    connection: int
    op: int
    t: str | None
    d: Any


class Gateway:
    def __init__(
        self,
        *,
        token: str,
        ready_payload: Callable[[Session], Json],
        guild_payloads: Callable[[], list[Json]],
        frames: list[Frame],
        heartbeat_interval_ms: int = 41250,
    ) -> None:
        self.token = token
        self._ready_payload = ready_payload
        self._guild_payloads = guild_payloads
        self.frames = frames
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: dict[str, Session] = {}
        self.connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self.disallowed_intents = 0  # intents that make IDENTIFY fail with 4014
        self.identifies = 0
        # Dispatched right after the next READY and GUILD_CREATEs (before the client's
        # on_ready): live events racing a catch-up.
        self.after_ready: list[tuple[str, Json]] = []
        self.resumes = 0
        self.changed = asyncio.Condition()

    # -- helpers for tests -------------------------------------------------------------

    def live_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.valid]

    async def dispatch(
        self, event: str, data: Json, *, intent: int = 0, about: int | None = None
    ) -> None:
        """Send a DISPATCH to every valid session (kept for replay when disconnected);
        with `intent`, only to sessions that asked for it, and with `about`, only to
        sessions that were told of that message."""
        for session in self.live_sessions():
            if event == "MESSAGE_CREATE":
                session.seen.add(int(data["id"]))
            if intent and not session.intents & intent:
                continue
            if about is not None and about not in session.seen:
                continue
            session.seq += 1
            frame: Json = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.backlog.append((session.seq, frame))
            if session.connection is not None:
                await self._send(session.connection, frame)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every socket without ending its session: the client should RESUME."""
        for conn in list(self.connections.values()):
            await conn.ws.close(code=code, message=b"dropped by the stand-in")

    async def send_reconnect(self) -> None:
        for conn in list(self.connections.values()):
            await self._send(conn, {"op": RECONNECT, "d": None})

    async def invalidate_sessions(self, resumable: bool = False) -> None:
        for conn in list(self.connections.values()):
            if conn.session is not None and not resumable:
                conn.session.valid = False
            await self._send(conn, {"op": INVALID_SESSION, "d": resumable})

    # -- the websocket -----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        compress = request.query.get("compress")
        compressor = zlib.compressobj() if compress == "zlib-stream" else None
        conn = Connection(next(self._ids), ws, compressor)
        self.connections[conn.id] = conn
        try:
            await self._send(
                conn, {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                self.frames.append(
                    Frame("in", conn.id, payload.get("op", -1), None, _redact(payload.get("d")))
                )
                await self._received(conn, payload)
        finally:
            self.connections.pop(conn.id, None)
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            await self._notify()
        return ws

    async def _received(self, conn: Connection, payload: Json) -> None:
        op = payload.get("op")
        data: Json = payload.get("d") or {}
        if op == HEARTBEAT:
            await self._send(conn, {"op": HEARTBEAT_ACK, "d": None})
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        await self._notify()

    async def _identify(self, conn: Connection, data: Json) -> None:
        self.identifies += 1
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & self.disallowed_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        session = Session(secrets.token_hex(16), data["token"], intents)
        self.sessions[session.id] = session
        session.connection = conn
        conn.session = session
        session.seq += 1
        ready = {"op": 0, "t": "READY", "s": session.seq, "d": self._ready_payload(session)}
        session.backlog.append((session.seq, ready))
        await self._send(conn, ready)
        for guild in self._guild_payloads():
            session.seq += 1
            frame = {"op": 0, "t": "GUILD_CREATE", "s": session.seq, "d": guild}
            session.backlog.append((session.seq, frame))
            await self._send(conn, frame)
        early, self.after_ready = self.after_ready, []
        for event, payload in early:
            await self.dispatch(event, payload)

    async def _resume(self, conn: Connection, data: Json) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or not session.valid or data.get("token") != session.token:
            await self._send(conn, {"op": INVALID_SESSION, "d": False})
            return
        self.resumes += 1
        since = int(data.get("seq") or 0)
        session.connection = conn
        conn.session = session
        for seq, frame in session.backlog:
            if seq > since:
                await self._send(conn, frame)
        session.seq += 1
        resumed = {"op": 0, "t": "RESUMED", "s": session.seq, "d": {}}
        await self._send(conn, resumed)

    async def _send(self, conn: Connection, frame: Json) -> None:
        self.frames.append(Frame("out", conn.id, frame["op"], frame.get("t"), frame.get("d")))
        text = json.dumps(frame)
        if conn.ws.closed:
            return
        try:
            if conn.compressor is not None:
                data = conn.compressor.compress(text.encode()) + conn.compressor.flush(
                    zlib.Z_SYNC_FLUSH
                )
                await conn.ws.send_bytes(data)
            else:
                await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            log.debug("connection %d went away while sending", conn.id)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


def _redact(data: Any) -> Any:
    # Frames are kept for assertions; the token itself need not be.
    if isinstance(data, dict) and "token" in data:
        return {**data, "token": "<redacted>"}
    return data
