"""Translations, Swedish first, and dates written the way people write them.

Catalogs are TOML files, one per language, beside the code that uses them
(`bot/locales/sv.toml`, `plugins/<name>/locales/en.toml`): flat or nested keys, values
with `{name}` placeholders. A key missing from a language falls back to Swedish, then to
the key itself, and is logged once, so a gap shows but never breaks a reply.
"""

from __future__ import annotations

import datetime as dt
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from babel.dates import format_datetime

log = logging.getLogger(__name__)

LANGUAGES: Final = ("sv", "en")
DEFAULT_LANGUAGE: Final = "sv"

# "tisdag 3 december kl. 18.00" / "Tuesday 3 December at 18:00"
_DATETIME_PATTERNS: Final = {"sv": "EEEE d MMMM 'kl.' HH.mm", "en": "EEEE d MMMM 'at' HH:mm"}
_DATE_PATTERNS: Final = {"sv": "EEEE d MMMM", "en": "EEEE d MMMM"}
_TIME_PATTERNS: Final = {"sv": "'kl.' HH.mm", "en": "HH:mm"}


def _flatten(prefix: str, table: Mapping[str, Any], out: dict[str, str]) -> None:
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(full, value, out)
        else:
            out[full] = str(value)


def read_catalog(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    out: dict[str, str] = {}
    _flatten("", data, out)
    return out


class Translator:
    def __init__(self, default_language: str = DEFAULT_LANGUAGE) -> None:
        self.default_language = default_language
        self._catalogs: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
        self._warned: set[tuple[str, str]] = set()

    def load_dir(self, directory: Path) -> None:
        """Merge `<directory>/<lang>.toml` for every language that has a file there."""
        for lang in LANGUAGES:
            path = directory / f"{lang}.toml"
            if path.exists():
                self._catalogs[lang].update(read_catalog(path))

    def keys(self, language: str) -> set[str]:
        return set(self._catalogs[language])

    def has(self, key: str) -> bool:
        return key in self._catalogs[DEFAULT_LANGUAGE]

    def t(self, key: str, language: str | None = None, /, **params: object) -> str:
        lang = language if language in self._catalogs else self.default_language
        template = self._catalogs[lang].get(key)
        if template is None:
            if (lang, key) not in self._warned:
                self._warned.add((lang, key))
                log.warning("no %s translation for %r", lang, key)
            template = self._catalogs[DEFAULT_LANGUAGE].get(key, key)
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError):
            log.exception("translation %r in %s does not fit its parameters", key, lang)
            return template

    def datetime(self, when: dt.datetime, language: str | None = None) -> str:
        lang = language if language in _DATETIME_PATTERNS else self.default_language
        return format_datetime(when, _DATETIME_PATTERNS[lang], tzinfo=when.tzinfo, locale=lang)

    def date(self, when: dt.datetime, language: str | None = None) -> str:
        lang = language if language in _DATE_PATTERNS else self.default_language
        return format_datetime(when, _DATE_PATTERNS[lang], tzinfo=when.tzinfo, locale=lang)

    def time(self, when: dt.datetime, language: str | None = None) -> str:
        lang = language if language in _TIME_PATTERNS else self.default_language
        return format_datetime(when, _TIME_PATTERNS[lang], tzinfo=when.tzinfo, locale=lang)
