"""Logging: readable lines by default, JSON lines on request, secrets redacted.

`samverkan run` logs to a file beside the database and to the terminal. The file keeps
every level asked for; the terminal gets the same, except when the console adapter
talks on it, where only warnings and errors would interrupt the conversation.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bot.settings import RootSettings

LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FILE_NAME: Final = "samverkan.log"
# A log that grows without end fills the disk the database needs: a few files, capped.
LOG_FILE_BYTES: Final = 10 * 2**20
LOG_FILE_BACKUPS: Final = 3

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a record's message and traceback with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self._clean(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._clean(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        return json.dumps(data, ensure_ascii=False)


def log_file_beside(settings: RootSettings) -> Path:
    """The default log file: in the database's folder, which is kept and backed up."""
    # Imported here: the CLI imports this module for `health` too, which loads nothing heavy.
    from bot.storage.target import local_dir

    return local_dir(settings.bot.database) / LOG_FILE_NAME


class LogFileHandler(logging.handlers.RotatingFileHandler):
    """A capped, rotated log file, opened at the first record (a configuration that is
    refused leaves no file behind), readable by the bot's user only (messages may be
    quoted in it). If it cannot be written, that is said once on stderr and the
    terminal keeps the log."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            maxBytes=LOG_FILE_BYTES,
            backupCount=LOG_FILE_BACKUPS,
            encoding="utf-8",
            delay=True,
        )
        self._broken = False

    def _open(self) -> io.TextIOWrapper:
        path = Path(self.baseFilename)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def handleError(self, record: logging.LogRecord) -> None:
        if not self._broken:
            self._broken = True
            _, exc, _ = sys.exc_info()
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            print(
                f"samverkan: cannot write the log file {self.baseFilename} ({why})", file=sys.stderr
            )
        logging.getLogger().removeHandler(self)


def setup_logging(
    fmt: str = "text",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    *,
    log_file: Path | None = None,
    terminal_level: str | None = None,
) -> None:
    """Log at `level` to stderr (at `terminal_level` there, if given) and to `log_file`."""
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel((terminal_level or level).upper())
    handlers: list[logging.Handler] = [terminal]
    if log_file is not None:
        handlers.append(LogFileHandler(log_file))
    redact = RedactingFilter(secrets)
    for handler in handlers:
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
            )
        handler.addFilter(redact)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    # The libraries are chatty at INFO; their warnings still show.
    for noisy in ("apscheduler", "aiosqlite", "nio", "discord", "peewee"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
