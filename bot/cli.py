"""`samverkan run | check-config | health` (also `python -m bot ...`).

Exit codes: 0 fine, 1 a failure of ours or of a peer, 2 a mistake in the configuration
or the command line, told one line per problem, never a traceback, never a value of a
field. `check-config` and `run` apply the same checks (bot/config_checks.py), so what
one calls valid the other accepts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from bot.health_probe import ProbeConfigError, probe_settings
from bot.logs import LEVELS

log = logging.getLogger(__name__)

EXIT_CONFIG = 2

__all__ = ["main"]


def cmd_check_config(args: argparse.Namespace) -> int:
    # Imported here: `health` runs every few seconds in a container and needs none of it.
    from bot.cli_commands import cmd_check_config as command

    return command(args)


def cmd_run(args: argparse.Namespace) -> int:
    from bot.cli_commands import cmd_run as command

    return command(args)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 if a running bot touched its heartbeat file recently, or its HTTP service
    says it is ready (container checks: light, it loads nothing of the bot)."""
    try:
        probe = probe_settings(args.config)
    except ProbeConfigError as err:
        print(f"samverkan: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if probe.listen:
        from bot.health_check import http_health

        return http_health(probe.listen, live_only=args.live)
    beat = probe.heartbeat
    try:
        age = time.time() - beat.stat().st_mtime
        # Its second line is the role: active, or standby while another instance runs.
        lines = beat.read_text("utf-8", errors="replace").splitlines()
    except OSError:
        print(f"unhealthy: no heartbeat at {beat}", file=sys.stderr)
        return 1
    role = "".join(ch for ch in (lines[1] if len(lines) > 1 else "") if ch.isalnum())[:20]
    said = f" ({role})" if role else ""
    if age > args.max_age:
        print(f"unhealthy{said}: last heartbeat {age:.0f}s ago", file=sys.stderr)
        return 1
    print(f"healthy{said}: last heartbeat {age:.0f}s ago")
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


def build_parser(*, light: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog="samverkan", description="Samverkan chat bot")
    sub = parser.add_subparsers(dest="command", required=True)
    if not light:
        # Not for `health`: a container's probe, every few seconds, loads none of it.
        from bot.cli_migrate import add_commands as add_migrate_commands
        from bot.cli_privacy import add_commands as add_privacy_commands

        add_privacy_commands(sub)  # privacy report|export|erase, audit verify
        add_migrate_commands(sub)  # migrate-db --from PATH --to URL
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
    words = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser(light=words[:1] == ["health"]).parse_args(words)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`check-config | head`): nothing more to say, no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
