"""`samverkan migrate-db --from PATH --to URL` (see bot/migrate_db.py).

Exit 0 copied, 1 the copy failed (the target is left empty again), 2 a mistake on the
command line or a target that is not empty: one line, never the URL's password.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

# Everything else is imported by the command itself: the CLI's parser is built for
# `samverkan health` too, which must load nothing heavy.

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


def _namespaces(config: str | None) -> list[Any] | None:
    """The framework's namespaces and those of the configured plugins (every built-in
    one without a configuration file)."""
    from bot.cli_commands import _print_problems
    from bot.data_map import framework_namespaces
    from bot.loading import BUILTIN_PLUGINS, import_plugin, read_settings
    from bot.settings import ConfigError, config_path

    if config is not None or config_path(None).is_file():
        try:
            _, classes = read_settings(config_path(config))
        except ConfigError as err:
            _print_problems(err.source, err.problems)
            return None
    else:
        classes = [import_plugin(name) for name in BUILTIN_PLUGINS]
    plugins = [c.migrations for c in classes if c.migrations is not None]
    return [*framework_namespaces(), *plugins]


def cmd_migrate_db(args: argparse.Namespace) -> int:
    from bot.migrate_db import MigrateRefused, migrate
    from bot.storage.checks import DatabaseOpenError
    from bot.storage.target import DatabaseUrl, is_url, mask

    source, target = Path(args.source), str(args.target)
    if not is_url(target):
        print(f"samverkan: --to {mask(target)}: not a postgresql:// URL", file=sys.stderr)
        return EXIT_CONFIG
    if not source.is_file():
        print(f"samverkan: --from {source}: no such database file", file=sys.stderr)
        return EXIT_CONFIG
    try:
        url = DatabaseUrl(target)
    except ValueError as err:
        print(f"samverkan: --to {mask(target)}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    namespaces = _namespaces(args.config)
    if namespaces is None:
        return EXIT_CONFIG
    try:
        copied = asyncio.run(migrate(source, url, namespaces))
    except (MigrateRefused, DatabaseOpenError) as err:
        print(f"samverkan: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        log.debug("migrate-db failed", exc_info=True)
        print(f"samverkan: the copy failed, the target is left empty: {exc}", file=sys.stderr)
        return 1
    rows = sum(copied.tables.values())
    print(f"copied {rows} rows in {len(copied.tables)} tables to {url.masked}")
    return 0


def add_commands(sub: Any) -> None:
    """`migrate-db` on the CLI's subcommands."""
    migrate = sub.add_parser("migrate-db", help="copy a SQLite database to an empty PostgreSQL one")
    migrate.add_argument("--from", dest="source", required=True, help="the SQLite file")
    migrate.add_argument("--to", dest="target", required=True, help="postgresql://user@host/db")
    migrate.add_argument(
        "--config", help="configuration file naming the plugins (default: every built-in one)"
    )
    migrate.set_defaults(func=cmd_migrate_db)
