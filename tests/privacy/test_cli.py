"""`samverkan privacy report|export|erase` and `samverkan audit verify` on a real database."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from tests.privacy.support import Bot, make_settings


async def _run_scenario(tmp_path: Path) -> Path:
    settings, classes = make_settings(tmp_path)
    bot = await Bot(settings, classes).start()
    await bot.say("falun", "anna", '!poll new "Fråga?" "Ja" "Nej" --in falun,mora')
    await bot.say("falun", "bob", "ett meddelande")
    await bot.say("falun", "bob", "!vote 1 1")
    await bot.say("mora", "carl", "!vote 1 2")
    await bot.stop()
    return tmp_path / "config.toml"


def test_export_erase_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The CLI runs its own event loop, as from a shell: the test is not a coroutine.
    config = asyncio.run(_run_scenario(tmp_path))
    out = tmp_path / "bob.json"
    assert (
        main(["privacy", "export", "console:bob", "--out", str(out), "--config", str(config)]) == 0
    )
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["polls"]["votes"][0]["chosen"] == ["1"]
    assert len(data["bridge"]["copies"]) == 2
    assert (
        main(
            ["privacy", "erase", "console:bob", "--yes", "--delete-copies", "--config", str(config)]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "bridged copies queued for deletion: 2" in said
    assert main(["privacy", "export", "console:bob", "--config", str(config)]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"accounts", "exported_at"}
    assert main(["privacy", "export", "console:carl", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["polls"]["votes"][0]["chosen"] == ["2"]
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        queued = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE action = 'delete' AND status = 'pending'"
        ).fetchone()
    assert queued == (2,)  # for the bot to send when it starts
    assert main(["privacy", "report", "--config", str(config)]) == 0
    report = capsys.readouterr().out
    assert "bridge_map" in report and "audit_log" in report and "730d" in report
    assert main(["privacy", "export", "not-a-ref", "--config", str(config)]) == 2


def test_audit_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The CLI runs its own event loop, as from a shell: the test is not a coroutine.
    config = asyncio.run(_run_scenario(tmp_path))
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "1 entries" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        conn.execute("UPDATE audit_log SET association = 'mora' WHERE seq = 1")
    assert main(["audit", "verify", "--config", str(config)]) == 1
    assert "entry 1" in capsys.readouterr().err


async def test_erase_beside_a_running_bot_deletes_the_copies_without_a_restart(
    tmp_path: Path,
) -> None:
    settings, classes = make_settings(tmp_path)
    bot = await Bot(settings, classes).start()
    try:
        await bot.say("falun", "bob", "ett meddelande")
        await bot.say("mora", "bob", "ett till")
        await bot.settle()
        config = str(tmp_path / "config.toml")
        # From a shell, beside the bot: its own process in life, its own loop here.
        argv = ["privacy", "erase", "console:bob", "--yes", "--delete-copies", "--config", config]
        assert await asyncio.to_thread(main, argv) == 0
        assert bot.console is not None and bot.console.deleted == []
        # The bot's sweep (every minute) takes the queued deletions up: two copies of
        # each message (the bridge has three rooms), in three lanes.
        assert await bot.running.delivery.sweep() == 3
        await bot.settle()
        assert sorted(r.room.id for r in bot.console.deleted) == ["falun", "mora"]
        assert len([s for s in bot.matrix.sent if s.action == "delete"]) == 2
    finally:
        await bot.stop()
