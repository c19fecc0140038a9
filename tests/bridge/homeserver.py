"""A homeserver for the bridge's fault tests that can be watched and stopped: a proxy in
front of Synapse that shows each answer to the test before the bot gets it, a restart on
the same port with the same data, and a room's whole timeline read back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.matrix import synapse as harness
from tests.matrix.synapse import Synapse, synapse_python
from tests.proxy import ReverseProxy

# -- a window on the bot's calls to the homeserver ------------------------------------


@dataclass
class Answer:
    run: int  # which run of the bot made the call (set by the test)
    method: str
    path: str
    status: int
    body: bytes
    request: bytes = b""
    at: float = 0.0


class HomeserverProxy(ReverseProxy):
    """A reverse proxy between the bot and Synapse on 127.0.0.1: every call goes through
    unchanged, and each answer is shown to the listeners before it is passed back, so a
    test can kill the bot after Synapse acted on a call and before the bot hears of it."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.answers: list[Answer] = []
        self.listeners: list[Callable[[Answer], None]] = []
        self.run = 0

    def answered(
        self, request: web.Request, body: bytes, status: int, data: bytes, sent_at: float
    ) -> None:
        answer = Answer(
            self.run, request.method, request.path, status, data, body, time.monotonic()
        )
        self.answers.append(answer)
        for listener in self.listeners:
            listener(answer)


# -- a homeserver that goes away and comes back ----------------------------------------


def restart_synapse(server: Synapse, timeout: float = 60.0) -> None:
    """Start a stopped Synapse again on the same port, with the same data, keys and
    configuration (`Synapse.start` would pick a new port and a new signing key)."""
    assert server.process is None, "stop it first"
    config = server.root / "homeserver.yaml"
    data = json.loads(config.read_text())
    data["listeners"][0]["port"] = server.port
    config.write_text(json.dumps(data, indent=1))
    server.process = subprocess.Popen(
        [str(synapse_python()), "-m", "synapse.app.homeserver", "--config-path", str(config)],
        cwd=server.root,
        stdin=subprocess.DEVNULL,
        stdout=(server.root / "stdout2.log").open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=harness._die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, "Synapse exited when started again"
        try:
            server.request("GET", "/_matrix/client/versions")
            return
        except (OSError, RuntimeError):
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("Synapse did not come back")


def room_history(server: Synapse, token: str, room_id: str) -> list[dict[str, Any]]:
    """A room's whole timeline, oldest first, read from the homeserver."""
    events: list[dict[str, Any]] = []
    start = ""
    while True:
        path = f"/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=500"
        answer = server.request("GET", path + (f"&from={start}" if start else ""), token=token)
        chunk = answer.get("chunk") or []
        events.extend(chunk)
        if not chunk or not answer.get("end"):
            break
        start = str(answer["end"])
    events.reverse()
    return events


__all__ = ["Answer", "HomeserverProxy", "restart_synapse", "room_history"]
