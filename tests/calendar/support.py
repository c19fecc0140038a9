"""The calendar tests' bot (tests/harness.py: a real App with the console adapter, a
fake clock and a manual waker), its configuration, and calendars built as text."""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime
from pathlib import Path

from bot.settings import RootSettings, load_settings
from plugins.calendar import CalendarPlugin
from plugins.calendar.settings import CalendarSettings
from tests.engines import Target
from tests.harness import Harness, database_of

FIXTURES = Path(__file__).parent / "fixtures"

BASE_CONFIG = """
[bot]
database = "{db}"
organisers = ["console:anna"]
organiser_rooms = ["console:styrelse"]
late_grace = "1h"

[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun", "console:falun2"]

[[associations]]
id = "mora"
name = "Mora"
language = "en"
rooms = ["console:mora"]

[calendar]
reminders = [{reminders}]
digest = "{digest}"
refresh = "{refresh}"
{extra}
"""


def fixture_copy(tmp_path: Path, name: str) -> Path:
    """A copy a test may change, as organisers change their calendar."""
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return target


def feed_toml(url: str | Path, associations: list[str], **more: str) -> str:
    lines = ["[[calendar.feeds]]", f'url = "{url}"', f"associations = {associations!r}"]
    lines += [f'{key} = "{value}"' for key, value in more.items()]
    return "\n".join(lines).replace("'", '"') + "\n"


def make_settings(
    tmp_path: Path,
    feeds: str = "",
    *,
    digest: str = "0 8 1 1 *",
    refresh: str = "1d",
    reminders: str = '"7d", "1d", "1h"',
    extra: str = "",
    allow: tuple[str, ...] = (),
    database: Target | None = None,
) -> RootSettings:
    """`allow`: networks for `[fetching] allow` (a feed on a loopback server needs it);
    `database`: the `db_target` fixture's, to run on both engines (else a file)."""
    body = BASE_CONFIG.format(
        db=database_of(tmp_path, database),
        digest=digest,
        refresh=refresh,
        reminders=reminders,
        extra=textwrap.dedent(extra),
    )
    body += "\n" + feeds
    if allow:
        body += "\n[fetching]\nallow = [" + ", ".join(f'"{net}"' for net in allow) + "]\n"
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_settings(path, {"calendar": (CalendarSettings, CalendarSettings)})


class Bot(Harness):
    plugins = (CalendarPlugin,)

    @property
    def plugin(self) -> CalendarPlugin:
        return self.plugin_of(CalendarPlugin)

    async def refresh(self) -> None:
        await self.plugin.refresh_feeds()
        await self.settle()

    async def pending(self) -> dict[str, datetime]:
        return dict(await self.running.scheduler.pending("calendar:reminder:"))


def vevent(*lines: str) -> str:
    """One VEVENT of the given content lines."""
    return "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + "END:VEVENT\r\n"


def vcalendar(*parts: str, header: tuple[str, ...] = ()) -> str:
    """A calendar of the given components (text), with optional calendar properties."""
    head = "".join(
        f"{line}\r\n" for line in ("VERSION:2.0", "PRODID:-//Samverkan tests//SV", *header)
    )
    return "BEGIN:VCALENDAR\r\n" + head + "".join(parts) + "END:VCALENDAR\r\n"


def line_of(text: str, needle: str) -> int:
    """The line (from 1) on which the VEVENT holding the line `needle` begins."""
    lines = text.split("\r\n")
    at = next(i for i, line in enumerate(lines) if line == needle)
    return max(i for i in range(at + 1) if lines[i] == "BEGIN:VEVENT") + 1
