"""Starting without the platform: a homeserver that is down when the bot starts is tried
again while the console answers, and the bot connects and answers once it is back; a
post queued for Matrix meanwhile waits instead of failing; /ready says 503 while Matrix
is away (at start and after a drop). A wrong password is one line and exit code 2."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bot.adapters.console import ConsoleAdapter
from bot.app import App
from bot.core.clock import Clock
from bot.core.messages import OutgoingMessage
from bot.core.platform import Adapter
from bot.core.refs import RoomRef
from bot.starting import BACKOFF_MAX
from bot.storage.state import AdapterState
from plugins.help import HelpPlugin
from tests.bridge.homeserver import restart_synapse
from tests.bridge.live import ConsoleIO, ConsoleOutput, poll_until
from tests.matrix.botrun import PICKLE_KEY
from tests.matrix.synapse import REPO, Synapse
from tests.matrix.users import User
from tests.support import settings_from

DOWN_FOR = 20.0


async def ready_of(port: int) -> tuple[int, dict[str, object]]:
    url = f"http://127.0.0.1:{port}/ready"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return answer.status, json.loads(await answer.text())


async def test_homeserver_down_at_start_then_back_while_the_console_answers(
    tmp_path: Path,
) -> None:
    hs = Synapse(tmp_path / "homeserver")
    await asyncio.to_thread(hs.start)
    try:
        bot = hs.register("bot")
        alice = await User(hs, hs.register("alice")).start()
        room = await alice.create_room(invite=[bot.user_id])
        await alice.close()
        await asyncio.to_thread(hs.stop)
        down_at = time.monotonic()
        settings = settings_from(
            tmp_path,
            f"""
            [bot]
            organisers = ["console:anna"]

            [console]
            enabled = true

            [matrix]
            homeserver = "{hs.url}"
            user_id = "{bot.user_id}"
            password = "{bot.password}"
            store_path = "{tmp_path / "store"}"
            pickle_key = "{PICKLE_KEY}"

            [http]
            listen = "127.0.0.1:0"

            [[associations]]
            id = "falun"
            name = "Falun"
            rooms = ["matrix:{room}", "console:kansli"]
            """,
        )
        output = ConsoleOutput()
        console_io = ConsoleIO.open(output)

        def console(state: AdapterState, clock: Clock) -> Adapter:
            return ConsoleAdapter("Samverkan", stdin=console_io.stdin, stdout=output)

        # Matrix built by the App itself, on its own database, as `samverkan run` does.
        app = App(settings, [HelpPlugin], adapter_factories={"console": console})
        task = asyncio.create_task(app.run())
        try:
            await poll_until(lambda: hasattr(app, "services") or task.done(), 30, "the start")
            assert not task.done(), task
            assert app.services.http is not None
            port = app.services.http.port
            assert not app.starter.started("matrix")
            # The console answers at once, with the homeserver down.
            console_io.say("kansli", "anna", "!hjälp")
            asked = time.monotonic()
            await poll_until(lambda: any("!hjälp" in line for line in output.lines()), 10, "help")
            answered_in = time.monotonic() - asked
            status, body = await ready_of(port)
            assert status == 503, body
            assert "adapter:matrix: connecting" in str(body["reason"]), body
            # A post for Matrix meanwhile is held, not failed for good.
            matrix_room = RoomRef("matrix", room)
            await app.delivery.send("t:held", matrix_room, OutgoingMessage("väntade på Matrix"))
            await asyncio.sleep(max(0.0, DOWN_FOR - (time.monotonic() - down_at)))
            assert await app.delivery.status("t:held") == "pending"
            await asyncio.to_thread(restart_synapse, hs)
            back = time.monotonic()
            await poll_until(lambda: app.starter.started("matrix"), 90, "Matrix to connect")
            connected_in = time.monotonic() - back
            alice = await User(hs, alice.account).start()
            try:
                await alice.wait_joined(room, bot.user_id)
                await alice.wait_for(
                    lambda r, s: (
                        s.get("sender") == bot.user_id
                        and "väntade på Matrix" in str(s["content"].get("body"))
                    ),
                    timeout=20,
                )
                await alice.say(room, "!hjälp")
                await alice.wait_for(
                    lambda r, s: (
                        s.get("sender") == bot.user_id and "!hjälp" in str(s["content"].get("body"))
                    ),
                    timeout=20,
                )
            finally:
                await alice.close()
            status, body = await ready_of(port)
            assert status == 200, body
            # Gone again: /ready turns 503 once a sync has failed.
            await asyncio.to_thread(hs.stop)
            deadline = time.monotonic() + 60
            while (answer := await ready_of(port))[0] == 200:
                assert time.monotonic() < deadline, "Matrix never looked disconnected"
                await asyncio.sleep(0.25)
            status, body = answer
            assert status == 503 and "adapter:matrix: disconnected" in str(body["reason"]), body
            assert body["checks"] == {
                "database": "ok",
                "adapter:console": "ok",
                "adapter:matrix": "disconnected",
                "scheduler": "ok",
            }
        finally:
            app.request_stop()
            console_io.close()
            await asyncio.wait_for(task, 60)
    finally:
        await asyncio.to_thread(hs.stop)
    assert answered_in < 5.0, answered_in
    assert connected_in < BACKOFF_MAX + 5.0, connected_in  # within one backoff step
    print(f"console answered in {answered_in:.2f}s; Matrix connected {connected_in:.1f}s after")


def test_wrong_matrix_password_is_one_line_and_exit_2(synapse: Synapse, tmp_path: Path) -> None:
    bot = synapse.register("bot")
    config = tmp_path / "bot.toml"
    config.write_text(
        f"""
[bot]
database = "{tmp_path / "bot.db"}"

[matrix]
homeserver = "{synapse.url}"
user_id = "{bot.user_id}"
password = "not-{bot.password}"
store_path = "{tmp_path / "store"}"
pickle_key = "{PICKLE_KEY}"
""",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SAMVERKAN_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config), "--log-level", "WARNING"],
        check=False,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("samverkan: the homeserver refused the login as " + bot.user_id)
    assert "M_FORBIDDEN" in lines[0]
    assert bot.password not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert io.StringIO(done.stdout).read().strip() == ""
