"""Commands declared once, presented natively by each adapter.

A `CommandSpec` names a command (with its Swedish alias), its typed parameters and flags
and the level needed to run it. Text platforms (Matrix, console) parse `!name args` with
shell-style quoting here; Discord builds slash commands from the same specs and hands
back raw option values, which go through the same `convert` as text arguments.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.core.errors import UserError
from bot.core.permissions import Level
from bot.core.timeparse import (
    LONGEST_DURATION,
    SHORTEST_DURATION,
    OutOfRangeError,
    format_duration,
    parse_duration,
    parse_local_time,
)

# Characters a text command may hold: a poll of 20 long answers fits with room to spare.
COMMAND_LIMIT: Final = 4000
# The database's integers (signed 64 bits): a parameter that goes to the database
# unchecked declares `maximum=LARGEST_INTEGER`, so a larger one gets a reply, not an
# error deep in SQLite.
SMALLEST_INTEGER: Final = -(2**63)
LARGEST_INTEGER: Final = 2**63 - 1

Bound = int | timedelta | None


class Kind(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    DURATION = "duration"  # -> timedelta
    TIME = "time"  # YYYY-MM-DD HH:MM in bot.timezone -> aware datetime
    ASSOCIATIONS = "associations"  # "falun,mora" or "all" -> tuple of ids ("*" for all)
    NUMBERS = "numbers"  # "1,3" -> tuple of ints
    CHOICE = "choice"
    BOOL = "bool"  # flags only: present or not


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind = Kind.STRING
    sv_name: str | None = None
    required: bool = True
    variadic: bool = False  # takes every remaining positional word
    choices: tuple[str, ...] = ()
    autocomplete: bool = False
    # The range an INTEGER (int) or DURATION (timedelta) must lie in; None: the kind's.
    minimum: Bound = None
    maximum: Bound = None

    def label(self, language: str) -> str:
        """Its name as a user of `language` sees it (usage, error messages)."""
        return (self.sv_name or self.name) if language == "sv" else self.name


# The id of a stored row (an event, a feed, a queued update): a positive database integer.
ID_PARAM: Final = Param("id", Kind.INTEGER, minimum=1, maximum=LARGEST_INTEGER)


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    kind: Kind = Kind.BOOL
    sv_name: str | None = None
    choices: tuple[str, ...] = ()
    minimum: Bound = None
    maximum: Bound = None

    def label(self, language: str) -> str:
        """Its name as a user of `language` sees it (usage, error messages)."""
        return (self.sv_name or self.name) if language == "sv" else self.name


# A parameter or flag in an error: shown by its name in the reader's language.
Named = str | Param | Flag


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command. `help` is an i18n key; `path` and `sv_path` are its names."""

    path: tuple[str, ...]
    sv_path: tuple[str, ...]
    help: str
    params: tuple[Param, ...] = ()
    flags: tuple[Flag, ...] = ()
    level: Level = Level.MEMBER
    owner: str = ""

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def sv_name(self) -> str:
        return " ".join(self.sv_path)

    def usage(self, prefix: str = "!", language: str = "sv") -> str:
        words = [prefix + (self.sv_name if language == "sv" else self.name)]
        for p in self.params:
            label = p.label(language)
            label = f"{label}..." if p.variadic else label
            words.append(f"<{label}>" if p.required else f"[{label}]")
        for f in self.flags:
            flag = f.label(language)
            words.append(f"[--{flag}]" if f.kind is Kind.BOOL else f"[--{flag} …]")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What conversion needs to know: the local zone, now, and the associations."""

    timezone: ZoneInfo
    associations: frozenset[str]
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    spec: CommandSpec
    args: Mapping[str, Any] = field(default_factory=dict)


class CommandRegistry:
    """Every command of every plugin, looked up by English or Swedish name."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, ...], CommandSpec] = {}
        self._names: dict[tuple[str, ...], CommandSpec] = {}

    def __iter__(self) -> Iterable[CommandSpec]:
        return iter(list(self._specs.values()))

    def specs(self) -> list[CommandSpec]:
        return list(self._specs.values())

    def check(self, specs: Sequence[CommandSpec]) -> None:
        """Raise ValueError if any of `specs` clashes with a registered name or another."""
        seen: set[tuple[str, ...]] = set(self._names)
        for spec in specs:
            for name in {spec.path, spec.sv_path}:
                key = tuple(w.lower() for w in name)
                if key in seen:
                    raise ValueError(f"command name {' '.join(name)!r} is taken")
                seen.add(key)

    def add(self, specs: Sequence[CommandSpec]) -> None:
        self.check(specs)
        for spec in specs:
            self._specs[spec.path] = spec
            for name in (spec.path, spec.sv_path):
                self._names[tuple(w.lower() for w in name)] = spec

    def remove(self, specs: Sequence[CommandSpec]) -> None:
        for spec in specs:
            self._specs.pop(spec.path, None)
            for name in (spec.path, spec.sv_path):
                self._names.pop(tuple(w.lower() for w in name), None)

    def get(self, path: Sequence[str]) -> CommandSpec | None:
        return self._names.get(tuple(w.lower() for w in path))

    def lookup(self, words: Sequence[str]) -> tuple[CommandSpec, int] | None:
        """The command that the leading words name (longest match) and how many it used."""
        for n in (3, 2, 1):
            if len(words) >= n:
                spec = self.get(words[:n])
                if spec is not None:
                    return spec, n
        return None

    def groups(self) -> set[str]:
        return {w.lower() for spec in self._specs.values() for w in (spec.path[0], spec.sv_path[0])}


def convert(
    kind: Kind,
    raw: object,
    ctx: ParseContext,
    *,
    name: Named,
    choices: tuple[str, ...] = (),
    minimum: Bound = None,
    maximum: Bound = None,
) -> Any:
    """Turn a raw argument (text, or an already typed Discord option value) into its type;
    a number or a duration outside its range is a UserError that says the range."""
    text = str(raw).strip()
    try:
        if kind is Kind.STRING:
            if not text:
                raise UserError("error.empty_argument", name=name)
            return text
        if kind is Kind.INTEGER:
            number = raw if isinstance(raw, int) and not isinstance(raw, bool) else int(text)
            if minimum is None and maximum is None:
                return number  # the command judges it (an id past any stored is "not found")
            low = SMALLEST_INTEGER if minimum is None else minimum
            high = LARGEST_INTEGER if maximum is None else maximum
            return _in_range(number, low, high, name=name, text=text)
        if kind is Kind.DURATION:
            low = SHORTEST_DURATION if minimum is None else minimum
            high = LONGEST_DURATION if maximum is None else maximum
            try:
                length = raw if isinstance(raw, timedelta) else parse_duration(text)
            except OutOfRangeError:
                length = None  # well written, but longer than any duration we take
            return _in_range(length, low, high, name=name, text=text)
        if kind is Kind.TIME:
            try:
                return parse_local_time(text, ctx.timezone)
            except OutOfRangeError as exc:
                raise UserError(
                    "error.out_of_range", name=name, value=text, low=exc.low, high=exc.high
                ) from None
        if kind is Kind.NUMBERS:
            numbers = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
            if not numbers:
                raise ValueError(text)
            return numbers
        if kind is Kind.ASSOCIATIONS:
            return parse_associations(text, ctx.associations, name)
        if kind is Kind.CHOICE:
            if text.lower() not in choices:
                raise UserError(
                    "error.bad_choice", name=name, value=text, choices=", ".join(choices)
                )
            return text.lower()
        if kind is Kind.BOOL:
            return bool(raw)
    except UserError:
        raise
    except ValueError:
        raise UserError(f"error.bad_{kind.value}", name=name, value=text) from None
    raise AssertionError(kind)


def _in_range(value: Any, low: Any, high: Any, *, name: Named, text: str) -> Any:
    """`value` if `low <= value <= high`; otherwise a UserError naming the range. None
    stands for a value past every range."""
    if value is not None and low <= value <= high:
        return value
    shown = [format_duration(b) if isinstance(b, timedelta) else str(b) for b in (low, high)]
    raise UserError("error.out_of_range", name=name, value=text, low=shown[0], high=shown[1])


def parse_associations(text: str, known: frozenset[str], name: Named = "in") -> tuple[str, ...]:
    ids = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if not ids:
        raise UserError("error.bad_associations", name=name, value=text)
    if ids in {("all",), ("alla",), ("*",)}:
        return ("*",)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UserError(
            "error.unknown_association", value=", ".join(unknown), known=", ".join(sorted(known))
        )
    return ids


def tokenize(text: str) -> list[str]:
    """Shell-style words; typographic quotes (as phones type them) count as quotes."""
    normalized = text.replace("“", '"').replace("”", '"').replace("„", '"').replace("’", "'")
    try:
        return shlex.split(normalized)
    except ValueError:
        raise UserError("error.unbalanced_quotes") from None


def parse_command(text: str, registry: CommandRegistry, ctx: ParseContext) -> ParsedCommand:
    """Parse the words after the prefix. Raises UserError with a usage hint when wrong."""
    if len(text) > COMMAND_LIMIT:
        # Before tokenising: shlex takes time quadratic in the length of one word.
        raise UserError("error.command_too_long", limit=COMMAND_LIMIT)
    words = tokenize(text)
    if not words:
        raise UserError("error.unknown_command", name="")
    found = registry.lookup(words)
    if found is None:
        if words[0].lower() in registry.groups():
            raise UserError("error.unknown_subcommand", name=" ".join(words[:2]), group=words[0])
        raise UserError("error.unknown_command", name=words[0])
    spec, used = found
    return ParsedCommand(spec, bind_words(spec, words[used:], ctx))


def _flag_named(spec: CommandSpec, name: str) -> Flag | None:
    lowered = name.lower()
    return next((f for f in spec.flags if lowered in {f.name, f.sv_name}), None)


def bind_words(spec: CommandSpec, words: Sequence[str], ctx: ParseContext) -> dict[str, Any]:
    positional: list[str] = []
    raw_flags: dict[str, object] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            flag = _flag_named(spec, name)
            if flag is None:
                raise UserError("error.unknown_flag", name=name, usage=spec)
            if flag.kind is Kind.BOOL:
                raw_flags[flag.name] = True
            elif eq:
                raw_flags[flag.name] = value
            elif i + 1 < len(words):
                i += 1
                raw_flags[flag.name] = words[i]
            else:
                raise UserError("error.flag_needs_value", name=name, usage=spec)  # as typed
        else:
            positional.append(word)
        i += 1
    return bind_values(spec, positional, raw_flags, ctx)


def bind_values(
    spec: CommandSpec,
    positional: Sequence[object],
    raw_flags: Mapping[str, object],
    ctx: ParseContext,
) -> dict[str, Any]:
    """Assign positional values to parameters and convert everything to its type."""
    args: dict[str, Any] = {}
    rest = list(positional)
    for param in spec.params:
        if param.variadic:
            values, rest = rest, []
            if param.required and not values:
                raise UserError("error.missing_argument", name=param, usage=spec)
            args[param.name] = tuple(_convert_param(param, v, ctx) for v in values)
        elif rest:
            args[param.name] = _convert_param(param, rest.pop(0), ctx)
        elif param.required:
            raise UserError("error.missing_argument", name=param, usage=spec)
        else:
            args[param.name] = None
    if rest:
        raise UserError("error.too_many_arguments", value=" ".join(map(str, rest)), usage=spec)
    for flag in spec.flags:
        if flag.name in raw_flags:
            args[flag.name] = convert(
                flag.kind,
                raw_flags[flag.name],
                ctx,
                name=flag,
                choices=flag.choices,
                minimum=flag.minimum,
                maximum=flag.maximum,
            )
        else:
            args[flag.name] = False if flag.kind is Kind.BOOL else None
    return args


def _convert_param(param: Param, raw: object, ctx: ParseContext) -> Any:
    return convert(
        param.kind,
        raw,
        ctx,
        name=param,
        choices=param.choices,
        minimum=param.minimum,
        maximum=param.maximum,
    )
