"""`samverkan run | check-config | health` (also `python -m bot ...`).

Exit codes: 0 fine, 1 a failure of ours or of a peer, 2 a mistake in the configuration
or the command line, told one line per problem, never a traceback, never a value of a
field. `check-config` and `run` apply the same checks (bot/config_checks.py), so what
one calls valid the other accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bot.app import App, heartbeat_path, read_settings
from bot.config_checks import database_problems, run_problems
from bot.config_file import Problem
from bot.config_summary import summary
from bot.core.errors import StartRefused
from bot.health_check import http_health
from bot.logs import LEVELS, log_file_beside, setup_logging
from bot.settings import ConfigError, RootSettings, config_path
from bot.storage.checks import DatabaseOpenError
from bot.storage.migrations import SchemaTooNewError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2

__all__ = ["main", "summary"]


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
    app = App(settings, classes, allow_empty_database=args.allow_empty_database)
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
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 if a running bot touched its heartbeat file recently (container checks)."""
    path = config_path(args.config)
    try:
        settings, _ = read_settings(path)
    except ConfigError as err:
        _print_problems(err.source, err.problems)
        return EXIT_CONFIG
    if settings.http.listen:
        return http_health(settings.http.listen, live_only=args.live)
    beat = heartbeat_path(settings)
    try:
        age = time.time() - beat.stat().st_mtime
    except OSError:
        print(f"unhealthy: no heartbeat at {beat}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"unhealthy: last heartbeat {age:.0f}s ago", file=sys.stderr)
        return 1
    print(f"healthy: last heartbeat {age:.0f}s ago")
    return 0


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line and exit 2, like one in the file."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def _level(text: str) -> str:
    if text.upper() not in LEVELS:
        # The word given is not repeated: the list of those that work says enough.
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LEVELS)}")
    return text.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="samverkan", description="Samverkan chat bot")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the bot")
    check = sub.add_parser("check-config", help="validate the configuration and summarise it")
    health = sub.add_parser("health", help="exit 0 if the running bot is alive")
    health.add_argument("--max-age", type=float, default=120.0, help="seconds (default 120)")
    health.add_argument("--live", action="store_true", help="with [http]: ask /live, not /ready")
    health.set_defaults(func=cmd_health)
    check.add_argument(
        "--online",
        action="store_true",
        help="also ask Matrix and Discord (read-only) whether every configured room is usable",
    )
    for p in (run, check, health):
        p.add_argument(
            "--config",
            help="configuration file (default: $SAMVERKAN_CONFIG or config/samverkan.toml)",
        )
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--log-level", type=_level, default="INFO", help=", ".join(LEVELS))
    run.add_argument(
        "--log-file",
        help="where the log goes besides the terminal (default: samverkan.log beside the "
        "database); with the console on a terminal, only warnings show there",
    )
    run.add_argument(
        "--no-log-file", action="store_true", help="log to the terminal only, at every level"
    )
    run.add_argument(
        "--allow-empty-database",
        action="store_true",
        help="set up an existing empty database file as a new database (else refused)",
    )
    run.set_defaults(func=cmd_run)
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`check-config | head`): nothing more to say, no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
