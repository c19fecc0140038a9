"""The work of `samverkan run` and `check-config`: settings, checks, logging, the App.

Apart from bot/cli.py so that `samverkan health` (a container's check, every few
seconds) imports none of it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.app import App, InstanceLockLost, read_settings
from bot.config_checks import database_problems, run_problems
from bot.config_file import Problem
from bot.config_summary import summary
from bot.core.errors import StartRefused
from bot.logs import log_file_beside, setup_logging
from bot.settings import ConfigError, RootSettings, config_path
from bot.storage.checks import DatabaseOpenError
from bot.storage.health import StorageUnavailable
from bot.storage.migrations import SchemaTooNewError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


def _print_problems(source: str, problems: Sequence[Problem]) -> None:
    print(f"configuration {source} is not valid:", file=sys.stderr)
    for key, reason in problems:
        print(f"  {key}: {reason}", file=sys.stderr)


def _load(
    path_arg: str | None, *, database: bool = False
) -> tuple[RootSettings, list[type]] | None:
    """The settings and plugin classes, or None once every problem is printed."""
    path = config_path(path_arg)
    try:
        settings, classes = read_settings(path)
    except ConfigError as err:
        _print_problems(err.source, err.problems)
        return None
    problems = run_problems(settings)
    if database:
        problems += database_problems(settings)
    if problems:
        _print_problems(str(path), problems)
        return None
    return settings, classes


def cmd_check_config(args: argparse.Namespace) -> int:
    # The database is looked at too, without creating anything; run says the same of
    # it when it opens the file.
    loaded = _load(args.config, database=True)
    if loaded is None:
        return EXIT_CONFIG
    settings, _ = loaded
    print(f"configuration {config_path(args.config)} is valid")
    print(summary(settings))
    if args.online:
        problems = asyncio.run(probe_rooms(settings))
        if problems:
            print("rooms the bot cannot use:")
            for room, reason in problems:
                print(f"  {room}: {reason}")
            return 1
        print("every configured room is reachable")
    return 0


async def probe_rooms(settings: RootSettings) -> list[tuple[str, str]]:
    """Ask each platform, read-only, about every room the configuration names."""
    problems: list[tuple[str, str]] = []
    rooms = settings.all_rooms()
    for platform in ("matrix", "discord"):
        section = getattr(settings, platform)
        mine = [r for r in rooms if r.platform == platform]
        if not mine:
            continue
        if section is None:
            problems += [(str(r), f"the [{platform}] section is missing") for r in mine]
            continue
        # Imported by name: a deployment without a platform never loads its library.
        probe = importlib.import_module(f"bot.adapters.{platform}.probe").probe_rooms
        found: dict[object, str | None] = await probe(section, mine)
        problems += [(str(r), why) for r, why in found.items() if why]
    return problems


def _start_logging(args: argparse.Namespace, settings: RootSettings) -> None:
    """The log goes to a file beside the database (unless --no-log-file) and to the
    terminal; when the console adapter talks on that terminal, only warnings and errors
    share it, so the conversation reads clearly."""
    log_file = None
    if not args.no_log_file:
        log_file = Path(args.log_file) if args.log_file else log_file_beside(settings)
    quiet = log_file is not None and settings.console.enabled and sys.stdin.isatty()
    setup_logging(
        args.log_format,
        args.log_level,
        settings.secrets(),
        log_file=log_file,
        terminal_level="WARNING" if quiet else None,
    )
    if quiet:
        print(f"samverkan: the log is in {log_file}; warnings also show here", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    settings, classes = loaded
    _start_logging(args, settings)
    app = App(settings, classes, allow_empty_database=args.allow_empty_database, own_process=True)
    try:
        asyncio.run(app.run())
    except DatabaseOpenError as err:
        # The operator's to fix (a path, a folder, a file, another instance running):
        # one line, no traceback.
        print(f"samverkan: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except SchemaTooNewError as err:
        log.error("%s", err)
        return EXIT_CONFIG
    except StartRefused as err:  # a platform refused the password or token
        print(f"samverkan: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except StorageUnavailable as err:
        # Only while starting or stopping does it come this far (running, writes are
        # held and retried): the disk filled during the migrations, say. Each migration
        # is one transaction, so nothing is half-done; the next start goes on from there.
        print(
            f"samverkan: the database cannot be written ({err}) while starting;"
            " the migrations done are kept: free space and start again",
            file=sys.stderr,
        )
        return 1
    except InstanceLockLost:
        # Logged as the run's last error line; a supervisor's restart makes it a standby.
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
