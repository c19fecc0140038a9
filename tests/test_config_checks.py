"""Every configuration mistake, told by `check-config` and by `run` alike: exit 2, one
line per problem naming its key, never a traceback, never a value of a field. Each case
is a finding of an operator's afternoon with the bot (issue 14), run as the operator
runs it: `python -m bot ...` as a subprocess, in a folder of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import field_validator

from bot.settings import ConfigError, Section, load_settings

ROOT = Path(__file__).resolve().parent.parent
# A value that must never be printed back, wherever the operator put it.
SECRET = "hunter2-Sekret-9f3a"
CONSOLE = """
[console]
enabled = true
[[associations]]
id = "falun"
name = "Falun"
rooms = ["console:falun"]
"""
MATRIX = """
[matrix]
homeserver = "https://matrix.example.org"
user_id = "@bot:example.org"
password = "{secret}"
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


def samverkan(
    cwd: Path, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> Ran:
    res = subprocess.run(
        [*prefix, sys.executable, "-m", "bot", *args],
        stdin=subprocess.DEVNULL,  # a run that starts reads no input and ends at once
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=60,
        check=False,
    )
    return Ran(res.returncode, res.stdout, res.stderr)


def write(folder: Path, text: str, name: str = "config.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).replace("{secret}", SECRET), encoding="utf-8")
    return path


def assert_problems(ran: Ran, config: Path | str, expected: dict[str, str]) -> None:
    """Exit 2; the header, then one line per problem; each expected key's line holds
    the expected words; nothing else; no traceback, no secret."""
    assert ran.code == 2, ran.both
    assert "Traceback" not in ran.both
    assert SECRET not in ran.both
    lines = ran.err.splitlines()
    assert lines[0] == f"configuration {config} is not valid:", ran.err
    problems = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert all(line.startswith("  ") for line in lines[1:]), ran.err
    assert set(problems) == set(expected), ran.err
    for key, words in expected.items():
        assert words in problems[key], (key, ran.err)


CASES = {
    "matrix-without-pickle-key": (
        MATRIX,
        {"matrix.pickle_key": "missing: it protects the encryption store"},
    ),
    "matrix-store-is-a-file": (
        MATRIX + 'pickle_key = "p1ckle-key"\nstore_path = "config.toml"\n',
        {"matrix.store_path": "is not a folder"},
    ),
    "horizon-too-far": (
        CONSOLE + '[calendar]\nhorizon = "999999999d"\n',
        {"calendar.horizon": "must be between 1d and 730d"},
    ),
    "timeout-negative": (
        CONSOLE + "[calendar]\ntimeout = -1\n",
        {"calendar.timeout": "not a positive duration"},
    ),
    "late-grace-zero": ("[bot]\nlate_grace = 0\n" + CONSOLE, {"bot.late_grace": "positive"}),
    "late-grace-negative": ("[bot]\nlate_grace = -5\n" + CONSOLE, {"bot.late_grace": "positive"}),
    "late-grace-infinite": ("[bot]\nlate_grace = inf\n" + CONSOLE, {"bot.late_grace": "finite"}),
    "identify-warn-not-below-the-limit": (
        CONSOLE + '[discord]\ntoken = "{secret}"\nidentify_warn = 500\n',
        {"discord.identify_warn": "must be below discord.identify_limit"},
    ),
    "identify-limit-at-discords-own": (
        CONSOLE + '[discord]\ntoken = "{secret}"\nidentify_limit = 1000\n',
        {"discord.identify_limit": "less than 1000"},
    ),
    "no-adapter": ('[bot]\nlanguage = "sv"\n', {"(adapters)": "none is enabled"}),
    "empty-file": ("", {"(adapters)": "none is enabled"}),
    "bridge-room-on-a-disabled-platform": (
        CONSOLE + '[[bridges]]\nid = "b"\nrooms = ["console:falun", "discord:1234"]\n',
        {"bridges.0.rooms.1": "a discord room, but there is no [discord] section"},
    ),
    "console-room-while-the-console-is-off": (
        MATRIX + 'pickle_key = "p1ckle-key"\n'
        '[[associations]]\nid = "falun"\nname = "Falun"\n'
        'rooms = ["matrix:!abc:example.org", "console:falun"]\n',
        {"associations.0.rooms.1": "the console is not enabled"},
    ),
    "organiser-room-typo": (
        '[bot]\norganiser_rooms = ["console:falnu"]\n' + CONSOLE,
        {"bot.organiser_rooms.0": "no association or bridge names this console room"},
    ),
    "plugin-module-missing": (
        '[bot]\nplugins = ["plugins.help", "plugins.nowhere"]\n' + CONSOLE,
        {"bot.plugins.1": "no such module"},
    ),
    "plugin-module-without-plugin": (
        '[bot]\nplugins = ["bot.settings"]\n' + CONSOLE,
        {"bot.plugins.0": "is not a plugin"},
    ),
    "values-never-printed": (
        """
        [bot]
        timezone = "{secret}"
        organisers = ["{secret}"]
        late_grace = "{secret}"
        [calendar]
        digest = "{secret}"
        all_day_time = "{secret}"
        """
        + CONSOLE,
        {
            "bot.timezone": "not a known time zone",
            "bot.organisers.0": "not a user reference",
            "bot.late_grace": "not a duration",
            "calendar.digest": "not a crontab schedule",
            "calendar.all_day_time": "not a time of day",
        },
    ),
}


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("case", list(CASES))
def test_check_config_and_run_refuse_alike(tmp_path: Path, case: str, command: str) -> None:
    text, expected = CASES[case]
    config = write(tmp_path, text)
    assert_problems(samverkan(tmp_path, command, "--config", str(config)), config, expected)
    # Refused before anything is made: no database, no log, no Matrix store.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_the_file_itself_unusable(tmp_path: Path, command: str) -> None:
    cases: list[tuple[Path, str, tuple[str, ...]]] = []
    bad_utf8 = tmp_path / "latin1.toml"
    bad_utf8.write_bytes('[bot]\nname = "Bor\xe4nge"\n'.encode("latin-1"))
    cases.append((bad_utf8, "is not UTF-8 text (a bad byte at offset 17)", ()))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    cases.append((binary, "is not UTF-8 text", ()))
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b"[console]\nenabled = true\x00\n")
    cases.append((nul, "not valid TOML", ()))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    cases.append((folder, "is a directory, not a file", ()))
    locked = write(tmp_path, CONSOLE, "locked.toml")
    locked.chmod(0)
    # Root reads any file; without its capabilities, root is held to the mode bits.
    as_user = ("setpriv", "--inh-caps=-all", "--bounding-set=-all") if os.geteuid() == 0 else ()
    cases.append((locked, "cannot be read (permission denied)", as_user))
    for config, words, prefix in cases:
        ran = samverkan(tmp_path, command, "--config", str(config), prefix=prefix)
        assert_problems(ran, config, {"(file)": words})
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_environment_values_that_are_not_json_or_not_valid(tmp_path: Path, command: str) -> None:
    config = write(tmp_path, CONSOLE)
    env = {"SAMVERKAN_BOT__ORGANISERS": f"not json {SECRET}"}
    ran = samverkan(tmp_path, command, "--config", str(config), env=env)
    assert_problems(ran, config, {"bot.organisers": "SAMVERKAN_BOT__ORGANISERS"})
    env = {"SAMVERKAN_BOT": SECRET, "SAMVERKAN_MATRIX__PICKLE_KEY": "[1,"}
    ran = samverkan(tmp_path, command, "--config", str(config), env=env)
    assert_problems(ran, config, {"bot": "not JSON"})  # a secret is a string: no JSON asked
    env = {"SAMVERKAN_BOT__TIMEZONE": SECRET, "SAMVERKAN_CALENDAR__DIGEST": SECRET}
    ran = samverkan(tmp_path, command, "--config", str(config), env=env)
    assert_problems(
        ran, config, {"bot.timezone": "time zone", "calendar.digest": "crontab schedule"}
    )


def test_check_config_names_the_database_and_run_refuses_it(tmp_path: Path) -> None:
    for database, reason in ((tmp_path, "is a directory"), (Path("/dev/null"), "regular file")):
        config = write(tmp_path, f'[bot]\ndatabase = "{database}"\n' + CONSOLE)
        checked = samverkan(tmp_path, "check-config", "--config", str(config))
        assert_problems(checked, config, {"bot.database": reason})
        ran = samverkan(tmp_path, "run", "--config", str(config))
        # Run says it as it opens the file, in the line the storage tests pin down.
        assert ran.code == 2 and "Traceback" not in ran.both
        [line] = ran.err.splitlines()
        assert line.startswith(f"samverkan: database {database}: ") and reason in line
    # Folders not made yet are fine; a file where one would have to be is not.
    under_a_file = tmp_path / "config.toml" / "data" / "bot.db"
    config = write(tmp_path, f'[bot]\ndatabase = "{under_a_file}"\n' + CONSOLE)
    checked = samverkan(tmp_path, "check-config", "--config", str(config))
    assert_problems(checked, config, {"bot.database": "its folder is not a folder"})


def test_command_line_mistakes_are_one_line(tmp_path: Path) -> None:
    config = write(tmp_path, CONSOLE)
    ran = samverkan(tmp_path, "run", "--config", str(config), "--log-level", "BOGUS")
    assert ran.code == 2
    assert ran.err.splitlines() == [
        "samverkan run: argument --log-level: must be one of DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL (see samverkan run --help)"
    ]
    ran = samverkan(tmp_path, "run", "--no-such-flag")
    assert ran.code == 2 and len(ran.err.splitlines()) == 1 and "Traceback" not in ran.err
    # A level in any case works, and a valid configuration runs to the end of its input.
    ran = samverkan(tmp_path, "run", "--config", str(config), "--log-level", "warning")
    assert ran.code == 0, ran.err
    assert ran.err == ""  # nothing at WARNING on a quiet run


def test_a_valid_configuration_passes_both(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config" / "demo-calendar.ics", tmp_path)
    config = write(
        tmp_path,
        '[bot]\norganiser_rooms = ["console:falun"]\n'
        + CONSOLE
        + '[calendar]\nhorizon = "730d"\ntimeout = "5m"\n'
        + '[[calendar.feeds]]\nurl = "demo-calendar.ics"\n',
    )
    checked = samverkan(tmp_path, "check-config", "--config", str(config))
    assert checked.code == 0, checked.err
    assert "horizon 730d" in checked.out
    ran = samverkan(tmp_path, "run", "--config", str(config))
    assert ran.code == 0, ran.err


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    config = write(tmp_path, CONSOLE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "check-config", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    proc.stdout.close()  # as `| head -1` does, before the summary is written
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"Traceback" not in err


class _Echoing(Section):
    # A plugin's validator that quotes what it was given, as pydantic's examples do.
    word: str = "ok"

    @field_validator("word")
    @classmethod
    def _echo(cls, value: str) -> str:
        if value != "ok":
            raise ValueError(f"{value!r} is not ok, and neither is {value}")
        return value


def test_a_plugin_section_that_quotes_its_input_is_cut_short(tmp_path: Path) -> None:
    path = write(tmp_path, '[echo]\nword = "{secret}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"echo": (_Echoing, _Echoing)})
    assert caught.value.problems == [
        ("echo.word", "(the value) is not ok, and neither is (the value)")
    ]
    assert SECRET not in str(caught.value)


def test_the_summary_shows_a_feeds_host_not_its_private_address(tmp_path: Path) -> None:
    private = "https://calendar.example.org:8443/ical/{secret}/basic.ics?token={secret}"
    config = write(tmp_path, CONSOLE + f'[[calendar.feeds]]\nurl = "{private}"\n')
    checked = samverkan(tmp_path, "check-config", "--config", str(config))
    assert checked.code == 0, checked.err
    assert "url https://calendar.example.org:8443/…" in checked.out
    assert SECRET not in checked.both
