"""Slash commands from the core's command specs, and interaction options back into the
raw values the framework converts (`CommandInvoked.args`).

`poll new` becomes the command `poll` with the subcommand `new`; three words become a
subcommand group. Parameters and flags become options typed from their kind; Swedish
names and descriptions go into `name_localizations` / `description_localizations`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from bot.core.commands import CommandSpec, Flag, Kind, Param, tokenize
from bot.core.errors import UserError

log = logging.getLogger(__name__)

Json = dict[str, Any]
Translate = Callable[..., str]  # (key, language, **params) -> text

SV: Final = "sv-SE"
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN = 1, 2, 3, 4, 5
_CHOICES_MAX: Final = 25
_DESCRIPTION_MAX: Final = 100


def _describe(text: str) -> str:
    text = " ".join(text.split()) or "-"
    return text if len(text) <= _DESCRIPTION_MAX else text[: _DESCRIPTION_MAX - 1] + "…"


def _localized(name: str, sv_name: str | None) -> Json:
    return {SV: sv_name.lower()} if sv_name and sv_name.lower() != name.lower() else {}


def _option(
    item: Param | Flag, required: bool, t: Translate, autocomplete_kinds: set[Kind]
) -> Json:
    kind = item.kind
    option_type = {Kind.INTEGER: INTEGER, Kind.BOOL: BOOLEAN}.get(kind, STRING)
    key = f"discord.option.{kind.value}"
    option: Json = {
        "type": option_type,
        "name": item.name.lower(),
        "description": _describe(t(key, "en")),
        "description_localizations": {SV: _describe(t(key, "sv"))},
        "required": required,
    }
    localized = _localized(item.name, item.sv_name)
    if localized:
        option["name_localizations"] = localized
    if item.choices:
        option["choices"] = [{"name": c, "value": c} for c in item.choices[:_CHOICES_MAX]]
    elif kind in autocomplete_kinds or (isinstance(item, Param) and item.autocomplete):
        option["autocomplete"] = True
    return option


def spec_options(spec: CommandSpec, t: Translate) -> list[Json]:
    params = [_option(p, p.required, t, {Kind.ASSOCIATIONS}) for p in spec.params]
    flags = [_option(f, False, t, {Kind.ASSOCIATIONS}) for f in spec.flags]
    # Discord wants required options first; the framework binds by name, not position.
    return sorted(params, key=lambda o: not o["required"]) + flags


def _node(name: str, sv_name: str | None, description: str, sv_description: str) -> Json:
    node: Json = {
        "name": name.lower(),
        "description": _describe(description),
        "description_localizations": {SV: _describe(sv_description)},
    }
    localized = _localized(name, sv_name)
    if localized:
        node["name_localizations"] = localized
    return node


def build_commands(specs: Sequence[CommandSpec], t: Translate) -> list[Json]:
    """The payload of a bulk overwrite: one top-level command per first word."""
    roots: dict[str, Json] = {}
    leaves: dict[str, CommandSpec] = {}
    grouped: dict[str, list[CommandSpec]] = {}
    for spec in sorted(specs, key=lambda s: s.path):
        if not 1 <= len(spec.path) <= 3:
            log.warning("command %s has too many words for a slash command", spec.name)
            continue
        if len(spec.path) == 1:
            leaves[spec.path[0].lower()] = spec
        else:
            grouped.setdefault(spec.path[0].lower(), []).append(spec)
    for name, spec in leaves.items():
        if name in grouped:
            log.warning("/%s is both a command and a group: only the group is registered", name)
            continue
        node = _node(spec.path[0], spec.sv_path[0], t(spec.help, "en"), t(spec.help, "sv"))
        roots[name] = {**node, "type": 1, "options": spec_options(spec, t)}
    for name, members in grouped.items():
        first = members[0]
        label_en = t("discord.group", "en", name=first.path[0])
        label_sv = t("discord.group", "sv", name=first.sv_path[0])
        root = {**_node(first.path[0], first.sv_path[0], label_en, label_sv), "type": 1}
        options: list[Json] = []
        subgroups: dict[str, Json] = {}
        for spec in members:
            leaf = _node(spec.path[-1], spec.sv_path[-1], t(spec.help, "en"), t(spec.help, "sv"))
            leaf = {**leaf, "type": SUB_COMMAND, "options": spec_options(spec, t)}
            if len(spec.path) == 2:
                options.append(leaf)
                continue
            key = spec.path[1].lower()
            if key not in subgroups:
                sv_word = spec.sv_path[1] if len(spec.sv_path) > 2 else None
                subgroups[key] = {
                    **_node(spec.path[1], sv_word, label_en, label_sv),
                    "type": SUB_COMMAND_GROUP,
                    "options": [],
                }
                options.append(subgroups[key])
            subgroups[key]["options"].append(leaf)
        root["options"] = options
        roots[name] = root
    return [roots[k] for k in sorted(roots)]


def commands_hash(payload: Sequence[Json]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def parse_invocation(
    data: Mapping[str, Any], specs: Sequence[CommandSpec]
) -> tuple[tuple[str, ...], dict[str, Any], str | None]:
    """(path, raw args, focused option name) from an interaction's `data`."""
    path = [str(data.get("name", ""))]
    options: list[Json] = list(data.get("options") or [])
    while options and options[0].get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
        path.append(str(options[0]["name"]))
        options = list(options[0].get("options") or [])
    spec = next((s for s in specs if tuple(w.lower() for w in s.path) == tuple(path)), None)
    variadic = {p.name.lower() for p in spec.params if p.variadic} if spec else set()
    items: list[Param | Flag] = [*spec.params, *spec.flags] if spec else []
    names = {item.name.lower(): item.name for item in items}
    args: dict[str, Any] = {}
    focused: str | None = None
    for option in options:
        name = str(option.get("name", ""))
        value = option.get("value")
        if option.get("focused"):
            focused = names.get(name, name)
        if name in variadic and isinstance(value, str):
            try:
                words = tokenize(value)
            except UserError:
                words = value.split()
            value = words
        args[names.get(name, name)] = value
    return tuple(path), args, focused


def association_choices(
    typed: str, associations: Mapping[str, str], language: str = "sv"
) -> list[Json]:
    """Autocomplete for a comma-separated list of association ids: complete the last one."""
    parts = [p.strip() for p in str(typed).split(",")]
    done, last = [p for p in parts[:-1] if p], parts[-1].lower()
    out: list[Json] = []
    everyone = "alla" if language == "sv" else "all"
    if not done and everyone.startswith(last):
        out.append({"name": everyone, "value": "all"})
    for assoc_id, name in sorted(associations.items()):
        if assoc_id in done:
            continue
        if assoc_id.startswith(last) or name.lower().startswith(last):
            value = ",".join([*done, assoc_id])
            label = ", ".join([*(associations.get(d, d) for d in done), name])
            out.append({"name": label[:_DESCRIPTION_MAX], "value": value[:_DESCRIPTION_MAX]})
    return out[:_CHOICES_MAX]
