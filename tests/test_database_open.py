"""A database that cannot serve is refused in one line, exit 2, at once, with no thread
left: `samverkan run` as a subprocess on each kind of bad file, and `Database.open`
in-process where a leftover thread would show."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.storage.checks import DatabaseOpenError
from bot.storage.database import Database

ROOT = Path(__file__).resolve().parent.parent
# Generous for a loaded CI machine; the figure seen here is under a second, most of it
# Python's start and imports.
REFUSAL_LIMIT = 15.0


def write_config(tmp_path: Path, database: Path | str) -> Path:
    path = tmp_path / "bad-db.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [bot]
            database = "{database}"
            plugins = ["plugins.help"]
            [console]
            enabled = true
            [[associations]]
            id = "falun"
            name = "Falun"
            rooms = ["console:falun"]
            """
        ),
        encoding="utf-8",
    )
    return path


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float


def samverkan(config: Path, *args: str, command: str = "run") -> Ran:
    """The bot as an operator runs it; `subprocess.run` returns only once the process is
    gone (and kills it, failing the test, if it hangs)."""
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "bot", command, "--config", str(config), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    return Ran(res.returncode, res.stdout, res.stderr, time.monotonic() - started)


def assert_refused(ran: Ran, database: Path | str, reason: str) -> None:
    assert ran.code == 2, ran.stderr
    assert ran.seconds < REFUSAL_LIMIT
    assert "Traceback" not in ran.stdout + ran.stderr
    assert ran.stderr.splitlines() == [f"samverkan: database {database}: {reason}"]


def sqlite_file(path: Path, rows: int = 2000) -> Path:
    """A real database of some size, closed cleanly (no -wal beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(rows)])
    conn.commit()
    conn.close()
    return path


def make_directory(path: Path) -> str:
    path.mkdir(parents=True)
    return "is a directory"


def make_random(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(16384))
    return "is not a SQLite database"


def make_truncated(path: Path) -> str:
    full = sqlite_file(path).stat().st_size
    os.truncate(path, full // 2)
    return f"is damaged (truncated: {full // 2} of {full} bytes)"


def make_damaged_inside(path: Path) -> str:
    # The header and the length are right; pages in the middle are not.
    sqlite_file(path, rows=5000)
    with path.open("r+b") as fh:
        fh.seek(4096 * 5)
        fh.write(os.urandom(4096 * 4))
    return "is damaged (SQLite reports a malformed database)"


@pytest.mark.parametrize(
    "make",
    [make_directory, make_random, make_truncated, make_damaged_inside],
    ids=["directory", "random-bytes", "truncated-half", "damaged-pages"],
)
def test_a_bad_file_is_refused_in_one_line(tmp_path: Path, make: Callable[[Path], str]) -> None:
    database = tmp_path / "data" / "bot.db"
    reason = make(database)
    assert_refused(samverkan(write_config(tmp_path, database)), database, reason)


def test_a_device_is_refused_and_left_alone(tmp_path: Path) -> None:
    ran = samverkan(write_config(tmp_path, "/dev/null"))
    assert_refused(ran, "/dev/null", "is not a regular file (a device, pipe or socket)")
    assert not Path("/dev/null.lock").exists()


def test_an_empty_file_is_refused_unless_allowed(tmp_path: Path) -> None:
    database = tmp_path / "data" / "bot.db"
    database.parent.mkdir()
    database.touch()
    config = write_config(tmp_path, database)
    assert_refused(
        samverkan(config),
        database,
        "is an empty file; start with --allow-empty-database to set it up as a new database",
    )
    assert database.stat().st_size == 0  # refused means untouched

    ran = samverkan(config, "--allow-empty-database")
    assert ran.code == 0, ran.stderr
    conn = sqlite3.connect(database)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "outbox" in tables


@contextlib.contextmanager
def read_only_place(tmp_path: Path, fill: Callable[[Path], None]) -> Iterator[Path]:
    """A folder that no one may write, with what `fill` put in it first. As root a
    read-only tmpfs (permission bits do not stop root); otherwise permission bits."""
    place = tmp_path / "ro"
    place.mkdir()
    if os.geteuid() != 0:
        fill(place)
        for folder in [place, *(p for p in place.rglob("*") if p.is_dir())]:
            folder.chmod(0o555)
        try:
            yield place
        finally:
            for folder in [place, *(p for p in place.rglob("*") if p.is_dir())]:
                folder.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(place)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        # Never a skip: as root only a read-only mount makes the case real.
        pytest.fail(f"cannot mount a tmpfs for the read-only case: {done.stderr.strip()}")
    try:
        fill(place)
        subprocess.run(["mount", "-o", "remount,ro", str(place)], check=True)
        yield place
    finally:
        if subprocess.run(["umount", str(place)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(place)], check=False)


def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    def fill(place: Path) -> None:
        sqlite_file(place / "old" / "bot.db", rows=10)

    with read_only_place(tmp_path, fill) as place:
        existing = place / "old" / "bot.db"
        reason = "is on a read-only file system" if os.geteuid() == 0 else None
        ran = samverkan(write_config(tmp_path, existing))
        assert_refused(ran, existing, reason or "its folder is not writable (permission denied)")

        missing = place / "new" / "bot.db"
        why = "read-only file system" if os.geteuid() == 0 else "permission denied"
        ran = samverkan(write_config(tmp_path, missing))
        assert_refused(ran, missing, f"its folder cannot be created ({why})")


def test_check_config_names_a_path_that_cannot_be_the_database(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    ran = samverkan(write_config(tmp_path, folder), command="check-config")
    assert ran.code == 2
    assert ran.stderr.splitlines()[1:] == ["  bot.database: is a directory"]
    ran = samverkan(write_config(tmp_path, "/dev/null"), command="check-config")
    assert ran.code == 2
    assert "bot.database: is not a regular file" in ran.stderr

    # A database not created yet is fine, and checking creates nothing.
    absent = tmp_path / "later" / "bot.db"
    ran = samverkan(write_config(tmp_path, absent), command="check-config")
    assert ran.code == 0, ran.stderr
    assert not absent.parent.exists()


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


async def test_a_failure_after_connecting_leaves_no_thread(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    reason = make_damaged_inside(database)
    before = set(worker_threads())
    with pytest.raises(DatabaseOpenError) as caught:
        await Database.open(database)
    assert str(caught.value) == f"database {database}: {reason}"
    for thread in set(worker_threads()) - before:
        thread.join(timeout=5)
        assert not thread.is_alive()


async def test_sqlite_errors_while_opening_are_reasons(tmp_path: Path) -> None:
    database = sqlite_file(tmp_path / "bot.db", rows=10)
    # A log file SQLite cannot open: found only by SQLite itself, after connecting.
    (tmp_path / "bot.db-wal").mkdir()
    before = set(worker_threads())
    with pytest.raises(DatabaseOpenError) as caught:
        await Database.open(database)
    assert caught.value.reason.startswith("cannot be opened")
    for thread in set(worker_threads()) - before:
        thread.join(timeout=5)
        assert not thread.is_alive()


async def test_a_sound_database_opens_and_memory_needs_no_file(tmp_path: Path) -> None:
    database = sqlite_file(tmp_path / "bot.db", rows=10)
    db = await Database.open(database)
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 10
    await db.close()
    memory = await Database.open(":memory:")
    assert await memory.fetchval("SELECT 1") == 1
    await memory.close()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "mysql://samverkan:hemligt@db.example/bot",
            "a mysql:// URL: a file path or a postgresql:// URL",
        ),
        (
            "postgresql://samverkan:hemligt@db.example:54x32/bot",
            "the URL's port must be a number from 1 to 65535",
        ),
        (
            "sqlite:///data/bot.db",
            "a sqlite:// URL: a file path or a postgresql:// URL (for SQLite write the file's"
            " path)",
        ),
    ],
)
def test_a_database_url_of_another_kind_is_refused_by_its_key(
    tmp_path: Path, url: str, said: str
) -> None:
    # Once taken for a path: the bot ran on a SQLite file in a folder named `mysql:`.
    for command in ("check-config", "run"):
        ran = samverkan(write_config(tmp_path, url), command=command)
        assert ran.code == 2, ran.stderr
        assert ran.stderr.splitlines()[1:] == [f"  bot.database: {said}"]
        assert "hemligt" not in ran.stdout + ran.stderr
    assert not (ROOT / "mysql:").exists() and not (ROOT / "sqlite:").exists()


def test_an_unreachable_postgresql_server_is_named_without_its_password(tmp_path: Path) -> None:
    url = "postgresql://samverkan:hemligt@127.0.0.1:1/bot"  # nothing listens on port 1
    ran = samverkan(write_config(tmp_path, url))
    assert ran.code == 2, ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr
    (line,) = ran.stderr.splitlines()
    assert line.startswith("samverkan: database postgresql://samverkan:***@127.0.0.1:1/bot: ")
    assert "cannot be reached" in line
    assert "hemligt" not in ran.stdout + ran.stderr
