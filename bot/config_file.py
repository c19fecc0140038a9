"""The configuration as read, before and around validation: the file, the environment,
and what pydantic says about them, turned into (key path, reason) problems.

The contract is one line per problem and never a value of a field: a secret pasted into
the wrong key must not be printed back by `check-config` or `run`, nor end in a log. So
a reason is a phrase of ours; pydantic's messages are kept only once whatever string the
key held is cut out of them, and nothing from the file's bytes is quoted.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bot.storage.checks import os_reason

Problem = tuple[str, str]
T = TypeVar("T")

ENV_PREFIX: Final = "SAMVERKAN_"
ENV_DELIMITER: Final = "__"
# Environment variables of ours that are not settings keys.
_NOT_KEYS: Final = frozenset({"SAMVERKAN_CONFIG"})
_PYDANTIC_PREFIX: Final = re.compile(r"^(Value|Assertion) error, ")
# Shorter strings are not cut out of a message: they would garble its words, and two
# characters tell nothing of a secret.
_SCRUB_MIN: Final = 3


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` are (key path, reason) pairs."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(f"{source}: " + "; ".join(f"{k}: {r}" for k, r in problems))
        self.source = source
        self.problems = problems


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's TOML as a dict; ConfigError for a file that is missing, not a file,
    unreadable, not UTF-8 or not TOML. Read once: what is validated is what was read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), [("(file)", "no such configuration file")]) from None
    except IsADirectoryError:
        raise ConfigError(str(path), [("(file)", "is a directory, not a file")]) from None
    except OSError as exc:
        reason = f"cannot be read ({os_reason(exc)})"
        raise ConfigError(str(path), [("(file)", reason)]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"is not UTF-8 text (a bad byte at offset {exc.start}); is it a binary file?"
        raise ConfigError(str(path), [("(file)", reason)]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages name keys and positions, never a value.
        raise ConfigError(str(path), [("(file)", f"not valid TOML: {exc}")]) from None


def environment_problems(model: type[BaseModel]) -> list[Problem]:
    """Environment variables for lists and sections that are not JSON, which is how
    pydantic-settings reads them (otherwise it stops with an error naming only the
    section)."""
    problems: list[Problem] = []
    for name, value in sorted(os.environ.items()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in _NOT_KEYS:
            continue
        parts = upper[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
        annotation = _annotation_at(model, parts)
        if annotation is None or not _is_complex(annotation):
            continue
        try:
            json.loads(value)
        except ValueError:
            problems.append(
                (
                    ".".join(parts),
                    f"{name} in the environment is not JSON (a list is written"
                    ' ["a", "b"], a section {"key": "value"})',
                )
            )
    return problems


def _unwrap(annotation: Any) -> list[Any]:
    """The types an annotation may hold, Annotated and Optional taken apart."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [t for arg in get_args(annotation) for t in _unwrap(arg) if t is not NoneType]
    return [annotation]


def _annotation_at(model: type[BaseModel], parts: list[str]) -> Any:
    fields = {name.lower(): info for name, info in model.model_fields.items()}
    info = fields.get(parts[0])
    if info is None:
        return None
    if len(parts) == 1:
        return info.annotation
    for candidate in _unwrap(info.annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return _annotation_at(candidate, parts[1:])
    return None


def _is_complex(annotation: Any) -> bool:
    for candidate in _unwrap(annotation):
        if get_origin(candidate) in (list, tuple, set, frozenset, dict):
            return True
        if isinstance(candidate, type) and issubclass(candidate, BaseModel | list | dict):
            return True
    return False


def validation_problems(exc: ValidationError) -> list[Problem]:
    """Every error as (key path, reason), with nothing of the input in the reason."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
        else:
            reason = scrub(_PYDANTIC_PREFIX.sub("", err["msg"]), err.get("input"))
        problems.append((key, reason))
    return problems


def scrub(reason: str, given: object) -> str:
    """`reason` with every string held in `given` cut out (quoted or not)."""
    for text in sorted(set(_strings(given)), key=len, reverse=True):
        if len(text) >= _SCRUB_MIN:
            reason = reason.replace(repr(text), "(the value)").replace(text, "(the value)")
    return reason


def _strings(value: object, depth: int = 0) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif depth < 8 and isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif depth < 8 and isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, depth + 1)


def settings_error_problem(exc: Exception) -> Problem:
    """What pydantic-settings' own error (a value in the environment it could not
    decode) says, as a problem: it names the section, never the value."""
    found = re.search(r'field "([^"]+)"', str(exc))
    key = found.group(1) if found else "(environment)"
    return (key, "a value in the environment cannot be read (lists and sections are JSON)")


def import_plugins(
    path: Path, names: Sequence[object], base: type[T], *, listed: bool
) -> list[type[T]]:
    """The `PLUGIN` class of each module. When the configuration lists them
    (`bot.plugins`), a module that is not there or is no plugin is a ConfigError naming
    its entry; a module that is there but fails to import is a failure of ours and
    propagates, as does any failure of the built-in list."""
    classes: list[type[T]] = []
    problems: list[Problem] = []
    for n, name in enumerate(names):
        if not isinstance(name, str):
            continue  # validation names the entry
        key = f"bot.plugins.{n}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not listed or not (name == missing or name.startswith(missing + ".")):
                raise
            problems.append((key, "no such module"))
            continue
        except (TypeError, ValueError):  # "", ".relative"
            if not listed:
                raise
            problems.append((key, "not a module name (e.g. plugins.help)"))
            continue
        cls = getattr(module, "PLUGIN", None)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            if not listed:
                raise ImportError(f"{name} has no PLUGIN (a Plugin subclass)")
            problems.append((key, "is not a plugin (the module has no PLUGIN)"))
            continue
        classes.append(cls)
    if problems:
        raise ConfigError(str(path), problems)
    return classes
