"""The privacy tests' bot (tests/harness.py): a real App with every built-in plugin, the
console (recording what it posts and deletes), a recording Matrix stand-in bridged to
it, a fake clock and a manual waker. Time moves only when a test says so."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bot.app import read_settings
from bot.core.clock import FakeClock
from bot.plugin import Plugin
from bot.settings import RootSettings
from tests.engines import Target
from tests.harness import Harness, database_of

CONFIG = """
[bot]
database = "{db}"
organisers = ["console:anna"]
late_grace = "1h"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "matrix:!falun:example.org"]

[[associations]]
id = "mora"
name = "Mora"
rooms = ["console:mora"]

[[bridges]]
id = "samverkan"
rooms = ["console:falun", "console:mora", "matrix:!falun:example.org"]

[polls]
default_duration = "3d"
{extra}
"""

START = datetime.fromisoformat("2025-03-03T09:00:00+00:00")


def make_settings(
    tmp_path: Path, extra: str = "", database: Target | None = None
) -> tuple[RootSettings, list[type[Plugin]]]:
    """`database`: the `db_target` fixture's, to run on both engines (else a file)."""
    path = tmp_path / "config.toml"
    db = database_of(tmp_path, database)
    path.write_text(CONFIG.format(db=db, extra=extra), encoding="utf-8")
    return read_settings(path)


class Bot(Harness):
    """Every plugin of the configuration (`classes`), the console and Matrix."""

    with_matrix = True

    def __init__(
        self, settings: RootSettings, classes: list[type[Plugin]], clock: FakeClock | None = None
    ) -> None:
        super().__init__(settings, clock or FakeClock(START), classes)

    def texts(self, room: str | None = None) -> list[str]:
        """What the console was handed (rather than what it printed)."""
        assert self.console is not None
        return [m.text for r, m in self.console.messages if room is None or r.id == room]


def number_in(text: str, after: str) -> int:
    """The first whole number in `text` after the word `after`."""
    rest = text.split(after, 1)[1]
    digits = ""
    for ch in rest:
        if ch.isdigit():
            digits += ch
        elif digits:
            break
    return int(digits)
