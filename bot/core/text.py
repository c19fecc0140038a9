"""Text from outside, made safe once at the boundary: control characters that no
platform shows are removed, lengths are capped, echoes are cut short.

A NUL or a lone surrogate from a platform's JSON breaks databases, terminals and
parsers further in; a carriage return lets a line overwrite another on a terminal. So
every inbound event passes `clean_event` before any plugin sees it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final, TypeVar

from bot.core.events import InboundEvent, Sender
from bot.core.messages import Attachment

ELLIPSIS: Final = "…"
NAME_LIMIT: Final = 256  # display names, file names, reaction keys, button ids
ECHO_LIMIT: Final = 80  # user input quoted back in a reply

# C0 controls but tab and line feed, DEL, C1 controls, lone surrogates and the two
# noncharacters of the BMP's end: nothing a platform displays.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# What a terminal would act on rather than show, and the bidirectional overrides that
# make a line read differently from what it holds.
_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

E = TypeVar("E", bound=InboundEvent)


def clean(text: str) -> str:
    """`text` without invisible control characters; line breaks become `\\n`."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", text)


def cap(text: str, limit: int) -> str:
    """At most `limit` characters, the last one `…` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """User input as a reply may quote it: one line, cut short."""
    return cap(" ".join(text.split()), limit)


def for_terminal(text: str) -> str:
    """Control characters written as escapes (`\\r`, `\\x1b`, `\\u202e`), so that text
    printed on a terminal shows what it holds and cannot move the cursor."""
    return _TERMINAL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return match[0].encode("unicode_escape").decode("ascii")


def clean_event(event: E, limit: int) -> E:
    """`event` with every piece of text in it cleaned, and message text capped at
    `limit` characters (the adapter's inbound limit; HTML gets twice that for its
    markup)."""
    changes: dict[str, Any] = {}
    for name in _field_names(type(event)):
        value = getattr(event, name)
        fresh = _clean_value(name, value, limit)
        if fresh is not value:
            changes[name] = fresh
    return dataclasses.replace(event, **changes) if changes else event


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    # `dataclasses.fields` builds its answer anew on every call; an event type's fields
    # do not change.
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def _clean_value(name: str, value: Any, limit: int) -> Any:
    if isinstance(value, str):
        if name in ("text", "reply_quote"):
            fresh = cap(clean(value), limit)
        elif name == "html":
            fresh = cap(clean(value), 2 * limit)
        elif name == "event_id":
            return value  # ids are the platform's, compared as they came
        else:
            fresh = cap(clean(value), NAME_LIMIT)
        return value if fresh == value else fresh
    if isinstance(value, Sender):
        display = cap(clean(value.display_name), NAME_LIMIT)
        return (
            value
            if display == value.display_name
            else dataclasses.replace(value, display_name=display)
        )
    if isinstance(value, tuple) and value and isinstance(value[0], Attachment):
        return tuple(
            dataclasses.replace(a, filename=cap(clean(a.filename), NAME_LIMIT)) for a in value
        )
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
        return tuple(cap(clean(v), NAME_LIMIT) for v in value)
    if isinstance(value, dict):
        # Native command options: typed values pass, text is cleaned like a message.
        return {k: _clean_option(v, limit) for k, v in value.items()}
    return value


def _clean_option(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cap(clean(value), limit)
    if isinstance(value, list | tuple):
        return type(value)(_clean_option(v, limit) for v in value)
    return value
