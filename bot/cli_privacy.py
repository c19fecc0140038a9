"""`samverkan privacy report|export USER|erase USER` and `samverkan audit verify`.

For the operator, who gets a request from someone who may have left the platforms.
They work on the database beside a running bot (SQLite in WAL mode takes both). The
erasure's deletions of bridged copies are queued in the outbox, in one transaction: a
running bot takes them up at its next sweep of the outbox (`Delivery.sweep`, every
minute), a stopped one when it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.app import read_settings
from bot.audit import AuditLog
from bot.cli_commands import _print_problems
from bot.core.clock import SystemClock
from bot.core.refs import RoomRef, UserRef
from bot.data_map import all_lifetimes, framework_namespaces
from bot.lifetimes import days, report
from bot.outbox import Entry, Outbox, Target
from bot.people import People
from bot.privacy import Privacy
from bot.settings import ConfigError, config_path
from bot.storage.database import Database
from bot.storage.engines import open_database
from bot.storage.migrations import refuse_newer

EXIT_CONFIG = 2


def _load(path_arg: str | None) -> tuple[Any, list[Any]] | None:
    """The settings and plugins; only the database is needed, so a configuration
    whose platforms could not start still serves."""
    try:
        return read_settings(config_path(path_arg))
    except ConfigError as err:
        _print_problems(err.source, err.problems)
        return None


async def _open(settings: Any, classes: list[Any]) -> Database:
    db = await open_database(settings.bot.database)
    schemas = [c.migrations for c in classes if c.migrations is not None]
    await refuse_newer(db, [*framework_namespaces(), *schemas])
    for namespace in [*framework_namespaces(), *schemas]:
        await namespace.upgrade(db)
    return db


def _user(text: str) -> UserRef | None:
    try:
        return UserRef.parse(text)
    except ValueError:
        print(f"not a user reference (matrix:@user:server, discord:ID): {text}", file=sys.stderr)
        return None


async def _report(settings: Any, classes: list[Any]) -> int:
    db = await _open(settings, classes)
    try:
        now = SystemClock().now()
        rows = await report(
            db, all_lifetimes([c.migrations for c in classes]), now, settings.privacy.lifetimes
        )
    finally:
        await db.close()
    print(f"{'table':<22} {'rows':>9} {'oldest':>8} {'lifetime':>13}  holds")
    for r in rows:
        oldest = days(r.oldest) if r.oldest is not None else "-"
        print(f"{r.table:<22} {r.rows:>9} {oldest:>8} {days(r.lifetime):>13}  {r.holds}")
    return 0


async def _export(settings: Any, classes: list[Any], user: UserRef) -> str:
    db = await _open(settings, classes)
    try:
        privacy = Privacy(db, People(db), AuditLog(db), classes)
        data = await privacy.export(user, SystemClock().now())
    finally:
        await db.close()
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)


class _Queue:
    """Deletions written to the outbox for the bot to send; nothing is sent from here
    (no platform is connected), and no claim is kept on them: a running bot takes them
    up at its next sweep of the outbox (a minute at most), a stopped one when it starts."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._outbox = Outbox(db, f"cli-{secrets.token_hex(4)}")

    async def delete_many(self, items: Sequence[tuple[str, Target, RoomRef]]) -> int:
        now = SystemClock().now().timestamp()
        entries = [Entry(k, str(room), "delete", room, t.encode(), None) for k, t, room in items]
        async with self._db.transaction():
            queued = await self._outbox.insert_many(entries, now, now)
            await self._outbox.release_own()  # free for the bot to claim at once
        return len(queued)


async def _erase(settings: Any, classes: list[Any], user: UserRef, copies: bool) -> int:
    db = await _open(settings, classes)
    clock = SystemClock()
    try:
        privacy = Privacy(db, People(db), AuditLog(db), classes)
        queue = _Queue(db) if copies else None
        done = await privacy.erase(user, clock.now(), deleter=queue, by="operator")
    finally:
        await db.close()
    for part, count in sorted(done.rows.items()):
        print(f"{part}: {count} row(s) erased")
    if copies:
        print(f"bridged copies queued for deletion: {done.copies_queued}")
        if done.copies_queued:
            print(
                "the bot sends these deletions: a running bot within a minute,"
                " a stopped one when it next starts"
            )
    if not done.total:
        print("nothing was held about this person")
    return 0


async def _verify(settings: Any, classes: list[Any]) -> int:
    db = await _open(settings, classes)
    try:
        checked, broken = await AuditLog(db).verify()
    finally:
        await db.close()
    if broken is not None:
        print(f"audit log broken at entry {broken.seq}: {broken.reason}", file=sys.stderr)
        return 1
    print(f"audit log intact: {checked} entries")
    return 0


def cmd_privacy(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    settings, classes = loaded
    if args.action == "report":
        return asyncio.run(_report(settings, classes))
    user = _user(args.user or "")
    if user is None:
        return EXIT_CONFIG
    if args.action == "export":
        text = asyncio.run(_export(settings, classes, user))
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
        return 0
    if not args.yes:
        answer = input(f"erase everything held about {user} and their linked accounts? [y/N] ")
        if answer.strip().lower() not in {"y", "yes", "j", "ja"}:
            print("nothing erased")
            return 1
    return asyncio.run(_erase(settings, classes, user, args.delete_copies))


def cmd_audit(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    return asyncio.run(_verify(*loaded))


def add_commands(sub: Any) -> None:
    """`privacy` and `audit` on the CLI's subcommands."""
    privacy = sub.add_parser(
        "privacy", help="what the bot stores; a person's data exported or erased"
    )
    privacy.add_argument("action", choices=("report", "export", "erase"))
    privacy.add_argument("user", nargs="?", help="matrix:@user:server or discord:ID")
    privacy.add_argument("--out", help="export: write the JSON to this file, not stdout")
    privacy.add_argument("--yes", action="store_true", help="erase: do not ask to confirm")
    privacy.add_argument(
        "--delete-copies", action="store_true", help="erase: also delete the bridged copies"
    )
    privacy.set_defaults(func=cmd_privacy)
    audit = sub.add_parser("audit", help="check the audit log's hash chain")
    audit.add_argument("action", choices=("verify",))
    audit.set_defaults(func=cmd_audit)
    for p in (privacy, audit):
        p.add_argument(
            "--config",
            help="configuration file (default: $SAMVERKAN_CONFIG or config/samverkan.toml)",
        )
