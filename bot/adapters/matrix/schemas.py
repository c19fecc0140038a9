"""nio's checks of answers and events, compiled once instead of interpreted on each call.

nio validates every answer from the homeserver, and every event in it, against its JSON
schemas with jsonschema, which builds a validator and walks the schema anew on each
call: a fifth of the adapter's time per command (py-spy over bench/matrix_bench.py) and
0.34 ms of every sync with one event in it, on the way from the command to its reply.
The same schemas compiled by fastjsonschema check the same things, fill in the same
defaults and raise the exception nio catches (jsonschema's ValidationError), in about a
tenth of the time. A schema it cannot compile, or one nio builds on the fly, keeps
nio's own check; so does every call before `install()`.
"""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

import fastjsonschema
import nio.schemas
from jsonschema.exceptions import ValidationError

log = logging.getLogger(__name__)

Check = Callable[[Any], Any]

# The modules that import `validate_json` by name, each holding its own reference.
USERS: Final = ("nio.schemas", "nio.responses", "nio.events.misc", "nio.crypto.olm_machine")

nio_validate_json: Final = nio.schemas.validate_json
DRAFT: Final = "http://json-schema.org/draft-04/schema#"  # nio's validator is Draft 4's

# id of each schema in nio.schemas.Schemas -> the schema (kept, so that its id stays its
# own); its check, compiled on first use, or None where nio's own check stays.
_known: dict[int, dict[str, Any]] = {}
_checks: dict[int, Check | None] = {}
_format_checks: dict[str, Callable[[str], bool]] = {}


def _formats() -> dict[str, Callable[[str], bool]]:
    """nio's own format checks (user ids, URLs), which refuse by raising; a format nio
    has no check for (room_id) is not checked, as in jsonschema."""
    checkers = nio.schemas.Checker.checkers
    known = {name: _refusing(func, raises) for name, (func, raises) in checkers.items()}
    for schema in _schemas():
        for name in _format_names(schema):
            known.setdefault(name, _anything)
    return known


def _refusing(
    check: Callable[[str], object], raises: type[Exception] | tuple[type[Exception], ...]
) -> Callable[[str], bool]:
    def accepts(value: str) -> bool:
        try:
            return bool(check(value))
        except raises:
            return False

    return accepts


def _anything(value: str) -> bool:
    return True


def _format_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("format"), str):
            yield node["format"]
        for value in node.values():
            yield from _format_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _format_names(value)


def _schemas() -> list[dict[str, Any]]:
    return [s for s in vars(nio.schemas.Schemas).values() if isinstance(s, dict)]


def compiled(schema: dict[str, Any]) -> Check | None:
    """The compiled check of a schema of nio's (compiled now if not yet), or None where
    nio's own check stays."""
    key = id(schema)
    if key in _checks:
        return _checks[key]
    check: Check | None = None
    if _known.get(key) is schema:
        try:
            prepared = _fill_defaults(copy.deepcopy(schema))
            check = fastjsonschema.compile({**prepared, "$schema": DRAFT}, formats=_format_checks)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            # nio's delete_devices schema has a malformed "required"; jsonschema lets it
            # pass, fastjsonschema refuses to compile it.
            log.debug("a nio schema is not compiled (%s); nio checks it itself", exc)
        _checks[key] = check
    return check


def _fill_defaults(node: Any) -> Any:
    """Defaults with the defaults of their own properties filled in: nio's validator
    fills a missing object in and then descends into it, filling what it lacks (and so
    mutates the default in its schema); fastjsonschema puts the default in as it is."""
    if isinstance(node, dict):
        for value in node.values():
            _fill_defaults(value)
        if "default" in node:
            node["default"] = _filled(node["default"], node)
    elif isinstance(node, list):
        for value in node:
            _fill_defaults(value)
    return node


def _filled(value: Any, schema: dict[str, Any]) -> Any:
    properties = schema.get("properties")
    if isinstance(value, dict) and isinstance(properties, dict):
        for name, sub in properties.items():
            if isinstance(sub, dict) and "default" in sub and name not in value:
                value[name] = _filled(copy.deepcopy(sub["default"]), sub)
    return value


def validate_json(instance: Any, schema: dict[str, Any]) -> None:
    """nio's `validate_json`, compiled: the same outcome, defaults filled in as nio's
    own validator does."""
    key = id(schema)
    # The lookup inline: this runs for every answer and every event.
    check = _checks[key] if key in _checks else compiled(schema)
    if check is None:
        nio_validate_json(instance, schema)
        return
    try:
        check(instance)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValidationError(exc.message) from None


def install() -> None:
    """Put the compiled check where nio calls it. Idempotent."""
    if not _known:
        _known.update((id(schema), schema) for schema in _schemas())
        _format_checks.update(_formats())
    for name in USERS:
        module = importlib.import_module(name)
        if getattr(module, "validate_json", None) in (nio_validate_json, validate_json):
            module.validate_json = validate_json  # type: ignore[attr-defined]
        else:
            # Another nio than the pinned one: its own check stays, and is only slower.
            log.warning("%s.validate_json is not nio's; its checks are not compiled", name)
