"""Inbound text made safe at the boundary: control characters removed, lengths capped,
echoes cut short, the console's output escaped; a long line costs bounded time."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.console import ConsoleAdapter, format_post
from bot.app import App
from bot.core.events import CommandInvoked, MessageReceived, Sender
from bot.core.messages import Attachment
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.core.text import cap, clean, clean_event, for_terminal, shorten
from plugins.help import HelpPlugin
from tests.support import settings_from

ROOM = RoomRef("console", "mora")


def message(text: str, **extra: object) -> MessageReceived:
    return MessageReceived(
        event_id="e1",
        room=ROOM,
        sender=Sender(UserRef("console", "anna"), "Anna\x00\r"),
        at=datetime.now(UTC),
        ref=MessageRef(ROOM, "e1"),
        text=text,
        **extra,  # type: ignore[arg-type]
    )


def test_clean_keeps_what_is_shown_and_drops_what_is_not() -> None:
    assert clean("a\x00b\x07c\x1b[2Jd\x7fe\x85f") == "abc[2Jdef"
    assert clean("rad ett\r\nrad två\rrad tre\n\tindrag") == "rad ett\nrad två\nrad tre\n\tindrag"
    assert clean("lone \ud800 surrogate \ufffe") == "lone  surrogate "
    # Emoji sequences, accents and right-to-left text are words, not controls.
    words = "\U0001f469\u200d\U0001f467 \u00e9 \u0634 \u200fok"
    assert clean(words) == words


def test_cap_and_shorten() -> None:
    assert cap("abcdef", 10) == "abcdef"
    assert cap("abcdef", 4) == "abc…"
    assert len(cap("x" * 100_000, 4000)) == 4000
    assert shorten("a  b\n c " + "d" * 200) == ("a b c " + "d" * 200)[:79] + "…"


def test_every_text_of_an_event_is_cleaned_and_capped() -> None:
    event = message(
        "hej\x00" + "x" * 50,
        html="<b>\x00</b>",
        reply_quote="q\x00",
        attachments=(Attachment("fil\x00.txt"),),
    )
    got = clean_event(event, 20)
    assert got.text == "hej" + "x" * 16 + "…"
    assert got.html == "<b></b>"
    assert got.reply_quote == "q"
    assert got.sender.display_name == "Anna\n"
    assert got.attachments[0].filename == "fil.txt"
    assert got.event_id == event.event_id
    command = CommandInvoked(
        event_id="i1",
        room=ROOM,
        sender=Sender(UserRef("discord", "1"), "b"),
        at=datetime.now(UTC),
        path=("poll", "new"),
        args={"question": "Q\x00?", "answers": ["a\x00", "b"], "multi": 2},
    )
    assert clean_event(command, 100).args == {"question": "Q?", "answers": ["a", "b"], "multi": 2}
    clean_one = message("plain")
    assert clean_event(clean_one, 100).text == "plain"


def test_the_console_escapes_what_a_terminal_would_act_on() -> None:
    forged = "ok\r[#falun] Lisa: jag godkänner\x1b[2K"
    line = format_post("mora", "Anna", forged)
    assert "\r" not in line and "\x1b" not in line
    assert line == "[#mora] Anna: ok\\r[#falun] Lisa: jag godkänner\\x1b[2K"
    assert for_terminal("rätt\u202etxt.exe") == "rätt\\u202etxt.exe"
    assert format_post("mora", "Anna", "rad 1\nrad 2") == "[#mora] Anna: rad 1\n  rad 2"


async def run_console(tmp_path: Path, lines: str, timeout: float = 20.0) -> tuple[str, float]:
    settings = settings_from(
        tmp_path,
        """
        [bot]
        language = "sv"
        [[associations]]
        id = "mora"
        name = "Mora"
        rooms = ["console:mora"]
        """,
        [HelpPlugin],
    )
    out = io.StringIO()
    console = ConsoleAdapter("Samverkan", stdin=io.StringIO(lines), stdout=out)
    app = App(settings, [HelpPlugin], adapters={"console": console})
    began = time.perf_counter()
    await asyncio.wait_for(app.run(), timeout)
    return out.getvalue(), time.perf_counter() - began


async def test_a_megabyte_line_costs_bounded_time_and_the_bot_answers_after(
    tmp_path: Path,
) -> None:
    word = "x" * (1 << 20)
    text, took = await run_console(
        tmp_path, f"!hjälp {word}\n!{word}\n#mora anna: !hjälp\n", timeout=30
    )
    # A generous bound on a noisy machine; the figure itself is in bench/text_bench.py.
    assert took < 10, took
    posts = [line for line in text.splitlines() if line.startswith("[#mora]")]
    # Both long commands were answered briefly, and the next line was handled.
    assert len(text) < 10_000, len(text)
    assert any("högst 4000 tecken" in line for line in posts)
    assert any("!hjälp" in line for line in text.splitlines()[-12:])


async def test_ten_thousand_arguments_give_a_short_reply(tmp_path: Path) -> None:
    args = " ".join(f"a{i}" for i in range(10_000))
    text, _ = await run_console(tmp_path, f"!hjälp {args[:3900]}\n")
    assert len(text) < 1000, len(text)
    assert "…" in text
