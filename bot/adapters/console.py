"""The console adapter: the embedded default, and a way to try every feature offline.

Each input line is `#<room> <user>: <text>`; a line without that prefix goes to the first
console room as user `you`. Every post is printed as `[#<room>] <sender>: <text>`, further
lines indented by two spaces. At the end of input, `run` returns; the app then finishes
what is in flight and exits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

from bot.core.errors import PermanentSendError
from bot.core.events import MessageReceived, Sender
from bot.core.messages import OutgoingMessage
from bot.core.plain import to_plain
from bot.core.platform import AdapterHost
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.core.text import for_terminal
from bot.storage.health import StorageUnavailable

log = logging.getLogger(__name__)

_LINE = re.compile(r"^#([\w-]+)\s+([\w.-]+):\s?(.*)$")
STORAGE_RETRY = 2.0  # seconds before a line the database could not take is tried again


def _text(message: OutgoingMessage) -> str:
    """A relayed message as plain text (its spoilers as `[spoiler]`); others as written."""
    return to_plain(message.document) if message.document is not None else message.text


def format_post(room: str, sender: str, text: str) -> str:
    # Escaped, so that no text can move the cursor and write a post of someone else's.
    sender, text = for_terminal(sender), for_terminal(text)
    lines = text.split("\n") or [""]
    head = f"[#{room}] {sender}: {lines[0]}"
    return "\n".join([head, *("  " + line for line in lines[1:])])


class ConsoleAdapter:
    platform = "console"
    command_prefix: str | None = "!"
    message_limit = 100_000

    def __init__(
        self,
        bot_name: str,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self._bot_name = bot_name
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self._host: AdapterHost | None = None
        self._rooms: list[RoomRef] = []
        # Ids must not repeat across runs: replies are keyed by the event id.
        self._run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)
        self._ids = itertools.count(1)
        self._stopped = asyncio.Event()
        self._handled = 0
        self._sent = 0

    async def start(self, host: AdapterHost) -> None:
        self._host = host
        self._rooms = list(host.rooms(self.platform))
        if not self._rooms:
            log.warning("no console rooms are configured; lines will go to #console")
            self._rooms = [RoomRef("console", "console")]

    def _next_id(self) -> str:
        return f"{self._run_id}-{next(self._ids)}"

    async def run(self) -> None:
        assert self._host is not None, "start() first"
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def hand_over(line: str | None) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            except RuntimeError:
                return False  # the loop has closed: the bot stopped while we read
            return True

        def reader() -> None:
            # A daemon thread: a blocked read of a terminal must not hold up shutdown.
            try:
                while (line := self._read_line()) is not None:
                    if not hand_over(line):
                        return
            except (OSError, ValueError):
                log.exception("console input failed")
            hand_over(None)

        threading.Thread(target=reader, name="console-input", daemon=True).start()
        stop_wait = asyncio.ensure_future(self._stopped.wait())
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    return
                line = get.result()
                if line is None:
                    return
                await self._line(line.rstrip("\r\n"))
        finally:
            stop_wait.cancel()

    def _read_line(self) -> str | None:
        """The next line, cut at `message_limit` characters (the rest of a longer line is
        read and dropped: memory stays bounded whatever comes in); None at the end."""
        line = self._stdin.readline(self.message_limit + 1)
        if not line:
            return None
        if len(line) > self.message_limit and not line.endswith("\n"):
            log.warning("a console line longer than %d characters was cut", self.message_limit)
            while (rest := self._stdin.readline(self.message_limit)) and not rest.endswith("\n"):
                pass
            line = line[: self.message_limit]
        return line

    async def _line(self, line: str) -> None:
        if not line.strip():
            return
        assert self._host is not None
        match = _LINE.match(line)
        if match:
            room, user, text = RoomRef("console", match[1]), match[2], match[3]
            if room not in self._rooms:
                known = ", ".join("#" + r.id for r in self._rooms)
                print(
                    self._host.t("console.unknown_room", None, room=match[1], known=known),
                    file=sys.stderr,
                )
                return
        else:
            room, user, text = self._rooms[0], "you", line
        msg_id = self._next_id()
        event = MessageReceived(
            event_id=msg_id,
            room=room,
            sender=Sender(UserRef("console", user), user),
            at=datetime.now(UTC),
            ref=MessageRef(room, msg_id),
            text=text,
        )
        while True:
            try:
                await self._host.handle(event)
            except StorageUnavailable:
                # The line has no other copy: it is kept and tried again (the lines
                # behind it wait) until the database can be written.
                if self._stopped.is_set():
                    log.warning("stopping with a console line the database did not take")
                    return
                await asyncio.sleep(STORAGE_RETRY)
                continue
            except Exception:
                log.exception("handling console line failed")
            break
        self._handled += 1

    async def stop_receiving(self) -> None:
        """`run` returns once the line in hand is handled; later lines are not read."""
        self._stopped.set()

    async def stop(self) -> None:
        self._stopped.set()

    def _write(self, text: str) -> None:
        self._stdout.write(text + "\n")
        self._stdout.flush()

    def _check_room(self, room: RoomRef) -> None:
        if room not in self._rooms:
            raise PermanentSendError(f"console room #{room.id} is not configured")

    async def send(self, room: RoomRef, message: OutgoingMessage, token: str) -> MessageRef:
        self._check_room(room)
        sender = message.attribution.label if message.attribution else self._bot_name
        text = _text(message)
        if message.poll is not None:
            text += "".join(f"\n  {i}. {a.text}" for i, a in enumerate(message.poll.answers, 1))
        for attachment in message.attachments:
            text += f"\n📎 {attachment.filename}" + (
                f" <{attachment.url}>" if attachment.url else ""
            )
        self._write(format_post(room.id, sender, text))
        self._sent += 1
        return MessageRef(room, self._next_id())

    async def edit(self, target: MessageRef, message: OutgoingMessage, token: str) -> None:
        self._check_room(target.room)
        sender = message.attribution.label if message.attribution else self._bot_name
        assert self._host is not None
        self._write(
            format_post(
                target.room.id, sender, self._host.t("console.edited", None) + " " + _text(message)
            )
        )

    async def delete(self, target: MessageRef, token: str) -> None:
        self._check_room(target.room)
        assert self._host is not None
        self._write(
            format_post(target.room.id, self._bot_name, self._host.t("console.deleted", None))
        )

    async def react(self, target: MessageRef, key: str, token: str) -> MessageRef | None:
        self._check_room(target.room)
        self._write(format_post(target.room.id, self._bot_name, key))
        return MessageRef(target.room, self._next_id())

    async def close_poll(
        self, target: MessageRef, message: OutgoingMessage, token: str
    ) -> MessageRef | None:
        return await self.send(target.room, message, token)

    async def check_room(self, room: RoomRef) -> str | None:
        return None if room in self._rooms else f"console room #{room.id} is not configured"

    async def is_organiser(self, user: UserRef, room: RoomRef) -> bool:
        # The console has no roles of its own: only `bot.organisers` counts.
        return False

    def health(self) -> dict[str, str]:
        return {
            "rooms": str(len(self._rooms)),
            "handled": str(self._handled),
            "sent": str(self._sent),
        }
