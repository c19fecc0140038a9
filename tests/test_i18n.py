from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.i18n import LANGUAGES, Translator, read_catalog
from bot.logs import JsonFormatter, RedactingFilter

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Europe/Stockholm")


def catalog_dirs() -> list[Path]:
    return sorted({p.parent for p in ROOT.glob("*/**/locales/*.toml") if ".venv" not in p.parts})


def test_every_catalog_has_every_language_and_key() -> None:
    dirs = catalog_dirs()
    assert ROOT / "bot" / "locales" in dirs
    for directory in dirs:
        keys = {lang: set(read_catalog(directory / f"{lang}.toml")) for lang in LANGUAGES}
        assert keys["sv"] == keys["en"], f"{directory}: {keys['sv'] ^ keys['en']}"


def test_placeholders_match_across_languages() -> None:
    import string

    for directory in catalog_dirs():
        sv, en = (read_catalog(directory / f"{lang}.toml") for lang in LANGUAGES)
        for key, text in sv.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            other = {f for _, f, _, _ in string.Formatter().parse(en[key]) if f}
            assert fields == other, f"{directory}: {key}"


def test_swedish_dates_as_people_write_them() -> None:
    t = Translator()
    when = datetime(2026, 12, 1, 18, 0, tzinfo=TZ)
    assert t.datetime(when) == "tisdag 1 december kl. 18.00"
    assert t.datetime(when, "en") == "Tuesday 1 December at 18:00"
    summer = datetime(2026, 6, 23, 9, 30, tzinfo=TZ)
    assert t.datetime(summer, "sv") == "tisdag 23 juni kl. 09.30"


def test_missing_key_falls_back_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    t = Translator()
    t.load_dir(ROOT / "bot" / "locales")
    t._catalogs["en"].pop("error.internal")
    assert t.t("error.internal", "en").startswith("Förlåt")
    t.t("error.internal", "en")
    assert caplog.text.count("no en translation") == 1
    assert t.t("no.such.key") == "no.such.key"


def test_secrets_are_redacted_in_messages_and_tracebacks() -> None:
    filt = RedactingFilter(["hunter2-token"])
    try:
        raise ValueError("login failed with hunter2-token")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "token %s", ("hunter2-token",), sys.exc_info()
        )
    assert filt.filter(record)
    line = JsonFormatter().format(record)
    assert "hunter2-token" not in line
    assert "token ***" in line and "login failed with ***" in line
