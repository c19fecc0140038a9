"""`samverkan migrate-db`: a district's SQLite database, filled through the bot's own
commands, copied to PostgreSQL and run there by the App with the same rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.settings import RootSettings
from bot.storage.database import Database
from bot.storage.engines import open_database
from bot.storage.target import DatabaseUrl
from tests.engines import postgres_database
from tests.privacy.support import CONFIG, Bot, make_settings
from tests.privacy.test_privacy import _scenario
from tests.updates.server import news_server
from tests.updates.support import Item, rss

LOOPBACK = '[fetching]\nallow = ["127.0.0.0/8"]\n'
# Rows every start writes or moves (its wake-ups re-armed, claims released): compared
# apart, by what they hold rather than when.
_RESTAMPED = {"schedule", "inbound_seen"}


async def migrate_db(argv: list[str]) -> int:
    """The CLI as the operator runs it (it runs its own event loop)."""
    return await asyncio.to_thread(main, argv)


async def _rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    for table in sorted(await db.table_names()):
        if table == "sqlite_sequence":
            continue
        rows = await db.fetchall(f'SELECT * FROM "{table}"')
        found[table] = sorted(rows, key=repr)
    return found


async def _fill(tmp_path: Path) -> tuple[Path, RootSettings, Any]:
    settings, classes = make_settings(tmp_path, LOOPBACK)
    bot = await Bot(settings, classes).start()
    await _scenario(bot)  # polls with votes, an event and its reminders, bridged messages
    async with news_server() as news:
        news.serve("/rss", rss([Item("Nytt tåg", "tag:r,2026:1"), Item("Vägar", "tag:r,2026:2")]))
        await bot.say("falun", "anna", f'!feed add {news.url("/rss")} --name "Demo" --in falun')
        await bot.advance(timedelta(minutes=20))  # the feed fetched, its entries stored
    await bot.stop()
    return tmp_path / "bot.db", settings, classes


async def test_a_district_is_copied_and_runs_on_postgresql(tmp_path: Path) -> None:
    source, _, classes = await _fill(tmp_path)
    db = await open_database(source)
    before = await _rows(db)
    await db.close()
    assert before["bridge_map"] and before["polls_votes"] and before["updates_entries"]
    assert any(r for r in before["schedule"] if "remind" in repr(r))

    async with postgres_database() as url:
        assert await migrate_db(["migrate-db", "--from", str(source), "--to", url.dsn()]) == 0
        copy = await open_database(url)
        assert await _rows(copy) == before  # every row, every table, the versions too
        await copy.close()

        config = tmp_path / "pg.toml"
        config.write_text(CONFIG.format(db=url.dsn(), extra=LOOPBACK), encoding="utf-8")
        from bot.app import read_settings

        settings, classes = read_settings(config)
        assert isinstance(settings.bot.database, DatabaseUrl)
        bot = await Bot(settings, classes).start()
        after = await _rows(bot.running.db)
        await bot.stop()
        for table, rows in before.items():
            if table in _RESTAMPED:
                assert len(after[table]) >= len(rows), table
            else:
                assert after[table] == rows, table
        # The identities moved past the copied ids: a new poll gets the next one.
        bot = await Bot(settings, classes).start()
        await bot.say("falun", "anna", '!poll new "Efter flytten?" "Ja" "Nej" --in falun')
        ids = [r[0] for r in await bot.running.db.fetchall("SELECT id FROM polls_polls")]
        await bot.stop()
        assert sorted(ids) == [*sorted(r[0] for r in before["polls_polls"]), max(ids)]
        assert max(ids) == max(r[0] for r in before["polls_polls"]) + 1


async def test_a_target_that_is_not_empty_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, classes = make_settings(tmp_path)
    bot = await Bot(settings, classes).start()
    await bot.stop()
    async with postgres_database() as url:
        secret = DatabaseUrl(url.dsn().replace("postgres@", "postgres:hemligt@"))
        assert (
            await migrate_db(
                ["migrate-db", "--from", str(tmp_path / "bot.db"), "--to", secret.dsn()]
            )
            == 0
        )
        capsys.readouterr()
        code = await migrate_db(
            ["migrate-db", "--from", str(tmp_path / "bot.db"), "--to", secret.dsn()]
        )
        err = capsys.readouterr().err
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and "not empty" in err
        assert "hemligt" not in err and "***" in err


async def test_a_source_that_is_no_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await migrate_db(
        ["migrate-db", "--from", str(tmp_path / "none.db"), "--to", "postgresql://x/y"]
    )
    assert code == 2
    assert "no such database file" in capsys.readouterr().err
