"""`samverkan health` reads only what it needs, from the same file and environment as
`run`, and costs little: it imports nothing of the bot's machinery."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.health_probe import ProbeConfigError, probe_settings
from tests.matrix.synapse import REPO


def test_the_probe_reads_the_database_and_listen_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[bot]\ndatabase = "{tmp_path / "x.db"}"\n[http]\nlisten = " 127.0.0.1:9 "\n',
        encoding="utf-8",
    )
    probe = probe_settings(str(config))
    assert probe.heartbeat == tmp_path / "heartbeat"
    assert probe.listen == "127.0.0.1:9"
    monkeypatch.setenv("SAMVERKAN_HTTP__LISTEN", "")
    monkeypatch.setenv("SAMVERKAN_BOT__DATABASE", str(tmp_path / "y" / "z.db"))
    probe = probe_settings(str(config))
    assert (probe.listen, probe.heartbeat) == ("", tmp_path / "y" / "heartbeat")
    config.write_bytes(b"\xff\xfe[bot")
    with pytest.raises(ProbeConfigError, match="cannot be read"):
        probe_settings(str(config))


def test_health_on_the_heartbeat_imports_nothing_heavy(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[bot]\ndatabase = "{tmp_path / "x.db"}"\n', encoding="utf-8")
    (tmp_path / "heartbeat").write_text("now", encoding="utf-8")
    code = (
        "import sys\nfrom bot.cli import main\n"
        f"rc = main(['health', '--config', {str(config)!r}])\n"
        "heavy = [m for m in ('bot.app', 'aiohttp', 'pydantic', 'nio', 'discord') "
        "if m in sys.modules]\n"
        "print(rc, heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    began = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr
    assert time.monotonic() - began < 30  # a generous bound; about 0.1 s here
    old = time.time() - 600
    os.utime(tmp_path / "heartbeat", (old, old))
    stale = subprocess.run(
        [sys.executable, "-m", "bot", "health", "--config", str(config)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stale.returncode == 1 and "unhealthy" in stale.stderr
