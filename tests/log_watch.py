"""The log check over a whole test run: no record at INFO or above carries what a user
wrote or which answer they chose (issue 15, "What is logged").

A pytest plugin (named in tests/conftest.py). For the whole session a handler on the
root logger, at INFO, keeps every record's formatted message and exception text, with
the test that was running. What users say is registered as it goes in: every inbound
event the dispatcher of an in-process bot handles (the one way in for every adapter and
every harness), and what the harnesses send to a bot in another process (a Matrix
user's message, a Discord stand-in user's message, a console line). The choices of
votes are registered where they are stored (`plugins.polls.storage.Store`): the labels
of the chosen answers, and the answers as stored (a record whose arguments hold that
tuple carries the vote, whatever its text). Only texts distinctive enough to mean
something are registered (`MIN_LENGTH` characters or more): a short "Ja" or "1" would
be found in any log.

At the session's end every kept record is read for the texts registered in its test,
and every log file of a bot run as a process (`samverkan.log` beside its database,
anywhere under the run's base temporary folder, and the files a harness names with
`watch_file`) for every text registered in the run. A find fails the run, naming the
logger and the line. Records of the tests' own code (`tests.*`) are not the bot's log.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

MIN_LENGTH: Final = 12
LOG_FILE_GLOB: Final = "samverkan.log*"
# A text log line: "2026-12-02 10:00:00,123 INFO    bot.app: message".
_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(\S+): "
)
_JSON_LEVEL = re.compile(r'"level": "(DEBUG|INFO|WARNING|ERROR|CRITICAL)"')
_JSON_LOGGER = re.compile(r'"logger": "([^"]*)"')
_QUOTED = re.compile(r'["“”]([^"“”]+)["“”]')
_NOT_TEXT = re.compile(r"^(https?://|/|[a-z]+:[!@#\w])")


@dataclass(frozen=True, slots=True)
class Kept:
    """One record as the check reads it."""

    logger: str
    level: str
    where: str  # path:line of the logging call, or the log file and its line
    message: str
    choices: tuple[tuple[str, ...], ...] = ()  # the record's arguments that are tuples


@dataclass(frozen=True, slots=True)
class Leak:
    record: Kept
    found: str
    kind: str

    def __str__(self) -> str:
        shown = self.record.message if len(self.record.message) < 300 else self.record.message[:300]
        return (
            f"{self.record.level} {self.record.logger} ({self.record.where}) carries a"
            f" {self.kind} {self.found!r}: {shown!r}"
        )


def pieces(text: str) -> list[str]:
    """What of a user's text is worth looking for: the whole, each line, and each quoted
    part (a command's question, answers, titles, texts), when long enough; never a
    link, a path or a reference (an operator may well log those)."""
    found: list[str] = []
    for raw in [text, *text.splitlines(), *_QUOTED.findall(text)]:
        piece = raw.strip()
        if len(piece) >= MIN_LENGTH and not _NOT_TEXT.match(piece) and piece not in found:
            found.append(piece)
    return found


def leaks(
    records: Iterable[Kept],
    texts: dict[str, str],
    choices: AbstractSet[tuple[str, ...]] = frozenset(),
) -> list[Leak]:
    """Every record at INFO or above that holds a registered text (text -> its kind) or
    has a registered choice among its arguments."""
    found: list[Leak] = []
    for record in records:
        if record.level in {"DEBUG", "NOTSET"} or record.logger.split(".")[0] == "tests":
            continue
        for text, kind in texts.items():
            if text in record.message:
                found.append(Leak(record, text, kind))
                break
        else:
            for arg in record.choices:
                if arg in choices:
                    found.append(Leak(record, ",".join(arg), "vote"))
                    break
    return found


def file_records(path: Path) -> Iterator[Kept]:
    """The records of a bot's log file (text or JSON lines); a traceback's lines belong
    to the record before them."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    current: tuple[str, str, int, list[str]] | None = None
    for number, line in enumerate(lines, 1):
        text = _LINE.match(line)
        level = text.group(1) if text else None
        logger = text.group(2) if text else None
        if text is None and line.startswith("{"):
            json_level, json_logger = _JSON_LEVEL.search(line), _JSON_LOGGER.search(line)
            if json_level and json_logger:
                level, logger = json_level.group(1), json_logger.group(1)
        if level is not None and logger is not None:
            if current is not None:
                yield Kept(current[1], current[0], f"{path}:{current[2]}", "\n".join(current[3]))
            current = (level, logger, number, [line])
        elif current is not None:
            current[3].append(line)
    if current is not None:
        yield Kept(current[1], current[0], f"{path}:{current[2]}", "\n".join(current[3]))


class Watch(logging.Handler):
    """The session's registry of texts and choices, and the handler keeping records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.test: str = ""
        self.records: dict[str, list[Kept]] = defaultdict(list)
        self.texts: dict[str, dict[str, str]] = defaultdict(dict)
        self.choices: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        self.files: set[Path] = set()
        self._format = logging.Formatter()

    # -- registering -----------------------------------------------------------------

    def said(self, text: str | None, kind: str = "message text") -> None:
        if text:
            for piece in pieces(text):
                self.texts[self.test].setdefault(piece, kind)

    def chose(self, labels: Sequence[str], stored: Sequence[str]) -> None:
        for label in labels:
            self.said(label, "vote choice")
        if stored:
            self.choices[self.test].add(tuple(stored))

    # -- keeping ---------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.exc_info:
            message += "\n" + self._format.formatException(record.exc_info)
        elif record.exc_text:
            message += "\n" + record.exc_text
        args = record.args if isinstance(record.args, tuple) else ()
        choices = tuple(
            tuple(str(x) for x in a)
            for a in args
            if isinstance(a, tuple | list) and a and all(isinstance(x, str) for x in a)
        )
        self.records[self.test].append(
            Kept(
                record.name,
                record.levelname,
                f"{record.pathname}:{record.lineno}",
                message,
                choices,
            )
        )

    # -- checking --------------------------------------------------------------------

    def check(self, basetemp: Path | None) -> list[Leak]:
        found: list[Leak] = []
        shared = self.texts.get("", {})
        for test, records in self.records.items():
            texts = {**shared, **self.texts.get(test, {})}
            choices = self.choices.get(test, set()) | self.choices.get("", set())
            found += leaks(records, texts, choices)
        every: dict[str, str] = {}
        for texts in self.texts.values():
            every.update(texts)
        files = set(self.files)
        if basetemp is not None and basetemp.exists():
            files.update(basetemp.rglob(LOG_FILE_GLOB))
        for path in sorted(files):
            found += leaks(file_records(path), every)
        return found


WATCH: Final = Watch()


def said(text: str | None, kind: str = "message text") -> None:
    """A harness hands a user's text to a bot: look for it in the logs."""
    WATCH.said(text, kind)


def watch_file(path: Path) -> None:
    """A bot process logs to `path` (besides `samverkan.log`, which is found anyway)."""
    WATCH.files.add(path)


# -- what is registered in-process ------------------------------------------------------


def _event_texts(event: Any) -> Iterator[str]:
    text = getattr(event, "text", None)
    if isinstance(text, str):
        yield text
    args = getattr(event, "args", None)
    if isinstance(args, dict):
        for value in args.values():
            if isinstance(value, str):
                yield value


_saved: list[tuple[Any, str, Any]] = []


def _install() -> None:
    from bot.commanding import Dispatcher
    from plugins.polls.storage import Store, split

    handle = Dispatcher.handle

    async def watched_handle(self: Dispatcher, event: Any, prefix: str | None) -> None:
        for text in _event_texts(event):
            WATCH.said(text)
        await handle(self, event, prefix)

    async def labels(store: Store, poll_id: int, answers: Sequence[str]) -> list[str]:
        import json

        raw = await store.db.fetchval("SELECT answers FROM polls_polls WHERE id = ?", (poll_id,))
        options = [str(a) for a in json.loads(str(raw))] if raw is not None else []
        return [options[int(a) - 1] for a in answers if a.isdigit() and 0 < int(a) <= len(options)]

    put_vote = Store.put_vote

    async def watched_vote(self: Store, poll_id: int, person: str, *rest: Any, **kw: Any) -> None:
        answers = kw.get("answers", rest[1] if len(rest) > 1 else ())
        WATCH.chose(await labels(self, poll_id, answers), split(",".join(answers)))
        await put_vote(self, poll_id, person, *rest, **kw)

    put_ballot = Store.put_ballot

    async def watched_ballot(self: Store, poll_id: int, voter: str, *rest: Any, **kw: Any) -> None:
        answers = kw.get("answers", rest[1] if len(rest) > 1 else ())
        WATCH.chose(await labels(self, poll_id, answers), split(",".join(answers)))
        await put_ballot(self, poll_id, voter, *rest, **kw)

    for owner, name, new in (
        (Dispatcher, "handle", watched_handle),
        (Store, "put_vote", watched_vote),
        (Store, "put_ballot", watched_ballot),
    ):
        _saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)


# -- the plugin's hooks -----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    _install()
    root = logging.getLogger()
    root.addHandler(WATCH)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(WATCH)
    for owner, name, old in reversed(_saved):
        setattr(owner, name, old)
    _saved.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    WATCH.test = item.nodeid
    root = logging.getLogger()
    # A test that set logging up as `samverkan run` does may have replaced the handlers.
    if WATCH not in root.handlers:
        root.addHandler(WATCH)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        return (yield)
    finally:
        WATCH.test = ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.INTERRUPTED or not WATCH.records:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = factory.getbasetemp() if factory is not None else None
    found = WATCH.check(basetemp)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    texts = sum(len(t) for t in WATCH.texts.values())
    records = sum(len(r) for r in WATCH.records.values())
    if reporter is not None:
        reporter.write_line(
            f"log check: {records} record(s) at INFO or above read for {texts} registered"
            f" text(s); {len(found)} leak(s)"
        )
        for leak in found[:50]:
            reporter.write_line(f"  LEAK {leak}", red=True)
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
