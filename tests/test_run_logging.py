"""`samverkan run` logs to a file beside the database; on a terminal the console adapter
shares, only warnings join the conversation (issue 14: `make run` interleaved INFO lines
with it). The bot is run as a subprocess with a pseudo-terminal, or a pipe, as stdin."""

from __future__ import annotations

import json
import logging
import os
import pty
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import LOG_FILE_NAME, setup_logging

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
[bot]
database = "data/bot.db"
plugins = ["plugins.help"]
[console]
enabled = true
[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun"]
"""


def config(tmp_path: Path) -> Path:
    path = tmp_path / "samverkan.toml"
    path.write_text(textwrap.dedent(CONFIG), encoding="utf-8")
    return path


def bot(tmp_path: Path, *args: str, stdin: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config(tmp_path)), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not (path.exists() and text in path.read_text(encoding="utf-8")):
        assert proc.poll() is None, "the bot stopped early"
        assert time.monotonic() < deadline, f"{text!r} never reached {path}"
        time.sleep(0.05)


def test_on_a_terminal_the_conversation_stays_clean(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    proc = bot(tmp_path, stdin=slave)
    os.close(slave)
    log = tmp_path / "data" / LOG_FILE_NAME
    try:
        wait_for(log, "migrated core to schema version", proc)
        os.write(master, "!hjälp\n".encode())
        time.sleep(0.5)
        os.write(master, b"\x04")  # Ctrl-D: the end of the input
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.decode().splitlines() == [
        f"samverkan: the log is in {Path('data') / LOG_FILE_NAME}; warnings also show here"
    ]
    assert out.decode().startswith("[#falun] Samverkan: Kommandon du kan använda")
    written = log.read_text(encoding="utf-8")
    assert " INFO " in written and "migrated core to schema version" in written
    assert stat.S_IMODE(log.stat().st_mode) == 0o600  # messages may be quoted in it


def test_without_a_terminal_the_log_goes_to_both(tmp_path: Path) -> None:
    proc = bot(tmp_path, stdin=subprocess.DEVNULL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    terminal = err.decode()
    assert "migrated core to schema version" in terminal
    assert "the log is in" not in terminal
    written = (tmp_path / "data" / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert [line for line in terminal.splitlines() if "migrated" in line] == [
        line for line in written.splitlines() if "migrated" in line
    ]


def test_a_log_file_of_ones_choice_in_json_or_none(tmp_path: Path) -> None:
    chosen = tmp_path / "logs" / "bot.jsonl"
    proc = bot(
        tmp_path, "--log-format", "json", "--log-file", str(chosen), stdin=subprocess.DEVNULL
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in chosen.read_text(encoding="utf-8").splitlines()]
    assert {"INFO"} <= {r["level"] for r in records}
    assert not (tmp_path / "data" / LOG_FILE_NAME).exists()

    proc = bot(tmp_path, "--no-log-file", "--log-level", "debug", stdin=subprocess.DEVNULL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert " DEBUG " in err.decode()
    assert not (tmp_path / "data" / LOG_FILE_NAME).exists()


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = handlers, level


def test_levels_and_redaction_per_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    path = tmp_path / "data" / "x.log"
    setup_logging("text", "INFO", ["s3cret-value"], log_file=path, terminal_level="WARNING")
    assert not path.exists()  # opened at the first record only
    log = logging.getLogger("tests.logging")
    log.info("an info line with s3cret-value")
    log.warning("a warning line")
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = path.read_text(encoding="utf-8")
    shown = capsys.readouterr().err
    assert "an info line with ***" in written and "s3cret-value" not in written
    assert "a warning line" in written
    assert "a warning line" in shown and "an info line" not in shown
