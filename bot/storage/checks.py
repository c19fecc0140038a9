"""What can be wrong with a database file, found before SQLite is given it.

SQLite itself says little that an operator can act on ("unable to open database file"),
treats an empty file as a new database (history gone without a word), and a truncated
file shows up only when a missing page is read, perhaps days later. So the path is
looked at first: what kind of file it is, whether its folder can be written, whether the
header is SQLite's and the file as long as the header says. What SQLite reports while
opening is translated into the same short reasons. A reason is a short phrase with no
value of the configuration in it besides the path, which the caller names.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

# The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_SIZE: Final = 100


class DatabaseOpenError(Exception):
    """The database cannot be used as it is: one line naming the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"database {path}: {reason}")
        self.path = path
        self.reason = reason


def os_reason(exc: OSError) -> str:
    """A short reason for a file-system error, without the path (the caller names it)."""
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or type(exc).__name__


def sqlite_reason(exc: sqlite3.Error) -> str:
    """A short reason for what SQLite reported while opening or checking the file."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    reasons = {
        sqlite3.SQLITE_NOTADB: "is not a SQLite database",
        sqlite3.SQLITE_CORRUPT: "is damaged (SQLite reports a malformed database)",
        sqlite3.SQLITE_READONLY: "cannot be written (read-only)",
        sqlite3.SQLITE_CANTOPEN: "cannot be opened (it, or its -wal or -shm file beside it)",
        sqlite3.SQLITE_PERM: "cannot be opened (permission denied)",
        sqlite3.SQLITE_BUSY: "is locked by another program",
        sqlite3.SQLITE_LOCKED: "is locked by another program",
        sqlite3.SQLITE_IOERR: "cannot be read or written (I/O error)",
        sqlite3.SQLITE_FULL: "cannot be written (the disk is full)",
    }
    if primary in reasons:
        return reasons[primary]
    return f"cannot be opened ({getattr(exc, 'sqlite_errorname', None) or exc})"


def existing_file_problem(path: Path, *, allow_empty: bool) -> str | None:
    """Why the file at `path` cannot be the database; None if it is absent or looks
    sound. Reads at most the header; creates nothing."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be examined ({os_reason(exc)})"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a device, pipe or socket)"
    if info.st_size == 0:
        if allow_empty:
            return None
        return "is an empty file; start with --allow-empty-database to set it up as a new database"
    try:
        with path.open("rb") as fh:
            header = fh.read(_HEADER_SIZE)
    except OSError as exc:
        return f"cannot be read ({os_reason(exc)})"
    if not header.startswith(SQLITE_MAGIC):
        return "is not a SQLite database"
    if len(header) < _HEADER_SIZE:
        return "is damaged (shorter than a SQLite header)"
    return _truncation(path, header, info.st_size)


def _truncation(path: Path, header: bytes, size: int) -> str | None:
    # Page size: 2 bytes at 16, a power of two from 512 to 32768, or 1 for 65536.
    raw_page = int.from_bytes(header[16:18], "big")
    page_size = 65536 if raw_page == 1 else raw_page
    if page_size < 512 or page_size & (page_size - 1):
        return "is damaged (its header is not valid)"
    # The page count at 28 is only valid when the change counter (24) equals the
    # version-valid-for number (92) and it is not zero (SQLite's file format, 1.3.7).
    pages = int.from_bytes(header[28:32], "big")
    if pages == 0 or header[24:28] != header[92:96]:
        return None
    # With a write-ahead log beside it, a checkpoint cut short may have written the
    # header before the pages that make the file that long; SQLite repairs that from
    # the log, so only the deeper check after opening judges such a file.
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return None
    expected = pages * page_size
    if size < expected:
        return f"is damaged (truncated: {size} of {expected} bytes)"
    return None


def folder_problem(path: Path) -> str | None:
    """Why the database's folder cannot hold it (SQLite writes the log and the shared
    memory file beside the database), creating the folder if it is missing."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "its folder is not a folder"
    except OSError as exc:
        return f"its folder cannot be created ({os_reason(exc)})"
    # Permission bits do not stop root, but a read-only mount stops everyone: ask the
    # file system itself, then the permissions for everyone else.
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return f"its folder cannot be examined ({os_reason(exc)})"
    if read_only:
        return "is on a read-only file system"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "its folder is not writable (permission denied)"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return "cannot be read and written (permission denied)"
    return None


def check_before_open(path: Path, *, allow_empty: bool) -> int:
    """Raise `DatabaseOpenError` for a path that cannot be opened as the database;
    returns the file's size (0 for a new one)."""
    problem = existing_file_problem(path, allow_empty=allow_empty) or folder_problem(path)
    if problem is not None:
        raise DatabaseOpenError(str(path), problem)
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
