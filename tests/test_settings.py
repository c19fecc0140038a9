from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import read_settings
from bot.settings import ConfigError, load_settings
from tests.support import settings_from

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_configs_are_valid() -> None:
    for name in ("samverkan.toml", "example.toml"):
        settings, classes = read_settings(ROOT / "config" / name)
        assert settings.associations
        assert classes
    demo, _ = read_settings(ROOT / "config" / "samverkan.toml")
    assert demo.console.enabled
    assert demo.matrix is None and demo.discord is None
    assert [a.id for a in demo.associations] == ["falun", "borlange", "mora"]


def test_sections_may_be_absent(tmp_path: Path) -> None:
    s = settings_from(
        tmp_path,
        "[matrix]\n"
        'homeserver = "https://m.example.org"\n'
        'user_id = "@b:example.org"\n'
        'access_token = "t0ken"\n',
    )
    assert s.discord is None
    assert s.matrix is not None and s.matrix.command_prefix == "!"
    assert s.bot.language == "sv"


def test_environment_overrides_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMVERKAN_MATRIX__PASSWORD", "from-env-secret")
    monkeypatch.setenv("SAMVERKAN_BOT__LANGUAGE", "en")
    s = settings_from(
        tmp_path, '[matrix]\nhomeserver = "https://m.example.org"\nuser_id = "@b:example.org"\n'
    )
    assert s.matrix is not None and s.matrix.password is not None
    assert s.matrix.password.get_secret_value() == "from-env-secret"
    assert "from-env-secret" not in repr(s)
    assert s.secrets() == ["from-env-secret"]
    assert s.bot.language == "en"


def test_every_error_has_its_key(tmp_path: Path) -> None:
    bad = """
        [bot]
        language = "fi"
        timezone = "Europe/Nowhere"
        organisers = ["irc:bob"]
        late_grace = "soon"
        colour = "red"

        [discord]
        token = "s3cr3t-token-value"
        guild_ids = ["x"]

        [[associations]]
        id = "Falun!"
        name = "Falun"
        rooms = ["matrix:nope"]
    """
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, bad)
    keys = {k for k, _ in caught.value.problems}
    assert {
        "bot.language",
        "bot.timezone",
        "bot.organisers.0",
        "bot.late_grace",
        "bot.colour",
        "discord.guild_ids.0",
        "associations.0.id",
        "associations.0.rooms.0",
    } <= keys
    assert "s3cr3t-token-value" not in str(caught.value)


def test_duplicate_rooms_and_ids_are_refused(tmp_path: Path) -> None:
    text = """
        [[associations]]
        id = "falun"
        name = "Falun"
        rooms = ["console:x"]
        [[associations]]
        id = "mora"
        name = "Mora"
        rooms = ["console:x"]
    """
    with pytest.raises(ConfigError, match="belongs to both"):
        settings_from(tmp_path, text)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[bot\nlanguage=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_check_config_summary_and_failure(tmp_path: Path) -> None:
    ok = run_cli("check-config", "--config", str(ROOT / "config" / "example.toml"))
    assert ok.returncode == 0, ok.stderr
    assert "adapters: matrix, discord" in ok.stdout
    assert "falun (Falun): matrix:!abc:example.org" in ok.stdout
    assert "change-me" not in ok.stdout + ok.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[discord]\ntoken = "hunter2-secret"\napi_base_url = "ftp://x"\n', encoding="utf-8"
    )
    res = run_cli("check-config", "--config", str(bad))
    assert res.returncode == 2
    assert "discord.api_base_url" in res.stderr
    assert "hunter2-secret" not in res.stdout + res.stderr

    via_env = run_cli("check-config", env={"SAMVERKAN_CONFIG": str(bad)})
    assert via_env.returncode == 2
