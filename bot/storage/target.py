"""Where the database is: a SQLite file (the default) or a PostgreSQL server.

`bot.database` is a file path or a `postgresql://` URL. The URL may carry a password,
so it is held as a secret: `str()` and every log line show it with the password masked,
and only `DatabaseUrl.dsn()` gives the whole of it, to the driver. (Without a password in
the URL, asyncpg reads `PGPASSWORD` or `~/.pgpass` as libpq does.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

URL_SCHEMES: Final = ("postgresql://", "postgres://")
_ANY_URL: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_PASSWORD: Final = re.compile(r"(?<=://)([^:/@]*):[^@/]*@")


class DatabaseUrl:
    """A `postgresql://` URL whose password is never shown."""

    __slots__ = ("_secret",)

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname and not parts.path.strip("/"):
            raise ValueError("a postgresql:// URL needs a host or a database name")
        try:
            parts.port  # noqa: B018 (parsed here, or the driver fails with a traceback)
        except ValueError:
            raise ValueError("the URL's port must be a number from 1 to 65535") from None
        self._secret = SecretStr(url)

    def dsn(self) -> str:
        """The whole URL, password included: for the driver only."""
        return self._secret.get_secret_value()

    @property
    def masked(self) -> str:
        return mask(self.dsn())

    def with_database(self, name: str) -> DatabaseUrl:
        """The same server and credentials, another database (tests, migrate-db)."""
        parts = urlsplit(self.dsn())
        return DatabaseUrl(urlunsplit(parts._replace(path="/" + name)))

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseUrl) and other.dsn() == self.dsn()

    def __hash__(self) -> int:
        return hash(self.dsn())


def mask(url: str) -> str:
    """`url` with its password, if any, replaced by `***`."""
    return _PASSWORD.sub(r"\1:***@", url, count=1)


def is_url(text: str) -> bool:
    return text.startswith(URL_SCHEMES)


def parse_target(value: object) -> Path | DatabaseUrl:
    """`bot.database` as given in the TOML file or the environment."""
    if isinstance(value, DatabaseUrl | Path):
        return value
    if isinstance(value, str):
        if is_url(value):
            return DatabaseUrl(value)
        other = _ANY_URL.match(value)
        if other is not None:
            # Else taken for a file path: a SQLite file in a folder named `mysql:`.
            # Only the scheme is named; the rest may hold a password.
            scheme = other.group(1)
            hint = " (for SQLite write the file's path)" if scheme.startswith("sqlite") else ""
            raise ValueError(f"a {scheme}:// URL: a file path or a postgresql:// URL{hint}")
        return Path(value)
    raise ValueError("a file path or a postgresql:// URL")


def local_dir(target: Path | DatabaseUrl | str) -> Path:
    """The folder for what lives beside the database (the log file, the heartbeat):
    the SQLite file's own, and `data/` for a database on a server."""
    if isinstance(target, DatabaseUrl) or (isinstance(target, str) and is_url(target)):
        return Path("data")
    return Path(target).parent
