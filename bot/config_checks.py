"""What `run` needs beyond what each key's own validation can tell: rules across keys.

`check-config` and `run` both apply these, so a configuration that check-config calls
valid is one run accepts, and each mistake is told as (key path, reason) before anything
is created. They are not model validators because the library's own users (tests, tools
built on `load_settings`) may well hold settings no deployment would run, such as no
adapter at all. Reasons never hold a value of the configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from bot.config_file import Problem
from bot.core.refs import RoomRef
from bot.settings import RootSettings
from bot.storage.checks import existing_file_problem, os_reason
from bot.storage.target import DatabaseUrl


def leaf_items(value: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, object]]:
    """Every value inside a settings model with its key path, in declaration order."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from leaf_items(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from leaf_items(item, (*path, str(n)))
    else:
        yield ".".join(path), value


def enabled_platforms(settings: RootSettings) -> set[str]:
    on = {p for p in ("matrix", "discord") if getattr(settings, p) is not None}
    return on | ({"console"} if settings.console.enabled else set())


def run_problems(settings: RootSettings) -> list[Problem]:
    """Every rule run enforces that the settings' own validation does not."""
    problems: list[Problem] = []
    enabled = enabled_platforms(settings)
    if not enabled:
        # Run would stop at once, having made a database for nothing.
        problems.append(
            (
                "(adapters)",
                "none is enabled: set console.enabled = true, or add a [matrix] or "
                "[discord] section",
            )
        )
    rooms = [(key, v) for key, v in leaf_items(settings) if isinstance(v, RoomRef)]
    for key, room in rooms:
        if enabled and room.platform not in enabled:
            problems.append((key, _platform_off(room.platform)))
    problems += _organiser_room_typos(rooms)
    problems += _matrix_problems(settings)
    problems += _discord_problems(settings)
    return problems


def _discord_problems(settings: RootSettings) -> list[Problem]:
    discord = settings.discord
    if discord is None or discord.identify_warn < discord.identify_limit:
        return []
    return [("discord.identify_warn", "must be below discord.identify_limit")]


def _platform_off(platform: str) -> str:
    if platform == "console":
        return "a console room, but the console is not enabled (console.enabled)"
    return f"a {platform} room, but there is no [{platform}] section"


def _organiser_room_typos(rooms: list[tuple[str, RoomRef]]) -> list[Problem]:
    # A console room exists because the configuration names it: one named only among
    # the organisers' rooms is a typo, which would otherwise become a room of its own
    # (and, being named first, the console's default room).
    prefix = "bot.organiser_rooms."
    elsewhere = {room for key, room in rooms if not key.startswith(prefix)}
    return [
        (key, "no association or bridge names this console room (a typo?)")
        for key, room in rooms
        if key.startswith(prefix) and room.platform == "console" and room not in elsewhere
    ]


def _matrix_problems(settings: RootSettings) -> list[Problem]:
    matrix = settings.matrix
    if matrix is None:
        return []
    problems: list[Problem] = []
    if matrix.pickle_key is None:
        problems.append(
            (
                "matrix.pickle_key",
                "missing: it protects the encryption store (set SAMVERKAN_MATRIX__PICKLE_KEY)",
            )
        )
    store = Path(matrix.store_path)
    if store.exists() and not store.is_dir():
        problems.append(("matrix.store_path", "is not a folder"))
    return problems


def database_problems(settings: RootSettings) -> list[Problem]:
    """What can be told about the database path without creating anything (the folder
    may not exist yet): run finds the rest when it opens the file, and says it in its
    own line (`database <path>: <reason>`). A server's database is looked at when run
    connects to it."""
    if isinstance(settings.bot.database, DatabaseUrl):
        return []
    path = Path(settings.bot.database)
    problem = _folder_problem(path) or existing_file_problem(path, allow_empty=True)
    return [("bot.database", problem)] if problem is not None else []


def _folder_problem(path: Path) -> str | None:
    # The nearest folder that exists is where the missing ones would be created.
    existing = path.parent
    try:
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return "its folder is not a folder"
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return f"its folder cannot be examined ({os_reason(exc)})"
    if read_only:
        return "is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "its folder is not writable (permission denied)"
    return None
