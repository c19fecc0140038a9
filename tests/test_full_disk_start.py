"""Starting on a disk that fills during the migrations: one line, exit 1, no traceback;
with space again, the next start goes on from the last migration done.

Needs root (the test mounts a small tmpfs), as CI has."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.bridge.test_bridge_full_disk import fill, tmpfs

REPO = Path(__file__).resolve().parent.parent


def _run(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMVERKAN_")}
    return subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config), "--no-log-file"],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL,  # the console's input ends at once: the bot stops
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_disk_full_during_the_migrations_is_one_line_and_the_next_start_goes_on(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[bot]\ndatabase = "{disk / "bot.db"}"\n\n[console]\nenabled = true\n',
            encoding="utf-8",
        )
        ballast = disk / "ballast"
        fill(ballast)
        # Room for the file and the first migrations, not for all of them.
        os.truncate(ballast, ballast.stat().st_size - 160 * 1024)
        full = _run(config)
        assert full.returncode == 1, full.stderr[-2000:]
        assert "Traceback" not in full.stderr + full.stdout
        assert "migrated core to schema version 1" in full.stderr, full.stderr  # it began
        (line,) = [x for x in full.stderr.splitlines() if x.startswith("samverkan:")]
        assert "cannot be written" in line and "free space" in line
        ballast.unlink()
        again = _run(config)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "Traceback" not in again.stderr
        assert "migrated core to schema version 1" not in again.stderr  # kept from before
        assert "ready" in again.stderr
