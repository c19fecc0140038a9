"""`samverkan run | check-config` (also `python -m bot ...`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bot.app import App, heartbeat_path, read_settings
from bot.core.errors import StartRefused
from bot.health_check import http_health
from bot.settings import ConfigError, RootSettings, config_path
from bot.storage.checks import DatabaseOpenError, existing_file_problem
from bot.storage.migrations import SchemaTooNewError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


def _print_errors(err: ConfigError) -> None:
    print(f"configuration {err.source} is not valid:", file=sys.stderr)
    for key, reason in err.problems:
        print(f"  {key}: {reason}", file=sys.stderr)


def summary(settings: RootSettings) -> str:
    lines = []
    adapters = [
        name
        for name, on in (
            ("console", settings.console.enabled),
            ("matrix", settings.matrix is not None),
            ("discord", settings.discord is not None),
        )
        if on
    ]
    bot = settings.bot
    lines.append(f"adapters: {', '.join(adapters) or 'none'}")
    lines.append(f"language: {bot.language}; timezone: {bot.timezone}; database: {bot.database}")
    lines.append(f"organisers: {', '.join(map(str, bot.organisers)) or 'none'}")
    if settings.matrix is not None:
        m = settings.matrix
        auth = "password" if m.password is not None else "access token"
        lines.append(f"matrix: {m.user_id} on {m.homeserver} ({auth}); store {m.store_path}")
    if settings.discord is not None:
        d = settings.discord
        guilds = ", ".join(map(str, d.guild_ids)) or "global commands"
        lines.append(f"discord: guilds {guilds}; organiser roles {len(d.organiser_roles)}")
    lines.append(f"associations: {len(settings.associations)}")
    for assoc in settings.associations:
        rooms = ", ".join(map(str, assoc.rooms)) or "no rooms"
        lines.append(f"  {assoc.id} ({assoc.name}): {rooms}")
    extra = settings.model_dump(mode="json", exclude=set(RootSettings.model_fields))
    for key, value in extra.items():
        lines.append(f"{key}: {_describe(value)}")
    return "\n".join(lines)


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}" + "".join(
            f"\n  {_describe(v)}" for v in value
        )
    if isinstance(value, dict):
        return "; ".join(
            f"{k} {_describe(v)}" for k, v in value.items() if not isinstance(v, list) or v
        )
    return str(value)


def _load(path_arg: str | None) -> tuple[RootSettings, list[type]] | None:
    path = config_path(path_arg)
    try:
        settings, classes = read_settings(path)
    except ConfigError as err:
        _print_errors(err)
        return None
    return settings, classes


def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    settings, _ = loaded
    # Only what can be told without creating anything: the folder may not exist yet.
    problem = existing_file_problem(Path(settings.bot.database), allow_empty=True)
    if problem is not None:
        print(f"configuration {config_path(args.config)} is not valid:", file=sys.stderr)
        print(f"  bot.database: {problem}", file=sys.stderr)
        return EXIT_CONFIG
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


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    settings, classes = loaded
    from bot.logs import setup_logging

    setup_logging(args.log_format, args.log_level, settings.secrets())
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
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    if loaded[0].http.listen:
        return http_health(loaded[0].http.listen, live_only=args.live)
    path = heartbeat_path(loaded[0])
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        print(f"unhealthy: no heartbeat at {path}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"unhealthy: last heartbeat {age:.0f}s ago", file=sys.stderr)
        return 1
    print(f"healthy: last heartbeat {age:.0f}s ago")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samverkan", description="Samverkan chat bot")
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
    run.add_argument("--log-level", default="INFO")
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
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
