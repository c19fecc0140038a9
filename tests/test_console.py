"""`samverkan run` on the console adapter, as a subprocess: lines in, posts out."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "console.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [bot]
            database = "{tmp_path / "data" / "bot.db"}"
            organisers = ["console:anna"]
            [console]
            enabled = true
            [[associations]]
            id = "falun"
            name = "Falun"
            rooms = ["console:falun"]
            [[associations]]
            id = "mora"
            name = "Mora"
            language = "en"
            rooms = ["console:mora"]
            """
        )
        + extra,
        encoding="utf-8",
    )
    return path


def run_bot(
    config: Path, lines: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config), *args],
        input=lines,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_lines_in_posts_out(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    res = run_bot(
        config,
        "!hjälp\n#mora bo: !help\n#falun bo: !nope\n#gagnef bo: hi\n\n#falun anna: !hjälp hjälp\n",
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    # The first line went to the first room as "you"; multi-line posts are indented.
    assert (
        out[0]
        == "[#falun] Samverkan: Kommandon du kan använda (citattecken runt text med mellanslag):"
    )
    assert any(line.startswith("  !hjälp [kommando...] – ") for line in out)
    assert "[#mora] Samverkan: Commands you can use (put quotes around text with spaces):" in out
    assert any(
        line.startswith("[#falun] Samverkan: Det finns inget kommando som heter ”nope”")
        for line in out
    )
    assert out[-1].startswith("[#falun] Samverkan: !hjälp [kommando...]")
    assert "#gagnef" in res.stderr
    assert all(line.startswith(("[#", "  ")) for line in out)


def test_restart_keeps_replying(tmp_path: Path) -> None:
    """Replies are keyed by event id: a second run must not take its ids for repeats."""
    config = write_config(tmp_path)
    first = run_bot(config, "!hjälp\n")
    second = run_bot(config, "!hjälp\n")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout != ""


def test_json_logs_without_secrets(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    res = run_bot(config, "!hjälp\n", "--log-format", "json")
    assert res.returncode == 0
    import json

    records = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert any(r["message"].startswith("ready:") for r in records)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_bad_config_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[bot2]\nx = 1\n")
    res = run_bot(config, "")
    assert res.returncode == 2
    assert "bot2: unknown key" in res.stderr


def test_newer_database_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run_bot(config, "").returncode == 0
    import sqlite3

    conn = sqlite3.connect(tmp_path / "data" / "bot.db")
    conn.execute("UPDATE schema_version SET version = 42 WHERE namespace = 'core'")
    conn.commit()
    conn.close()
    res = run_bot(config, "!hjälp\n")
    assert res.returncode == 2
    assert "schema version 42" in res.stderr
    assert res.stdout == ""
