"""From inbound events to plugin handlers: command parsing, permissions, replies.

Every event an adapter hands over ends here. Text that starts with the adapter's prefix
is a command; everything else goes to the plugins' `@on` handlers. Permissions are
checked on every call, in our code. A user's mistake gets a reply in their language
naming what is wrong; our own failure gets a logged traceback and a short apology.
A database that cannot be written (`StorageUnavailable`) is neither: it goes back to the
adapter, which does not count the event as handled and hands it over again later.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.associations import Directory
from bot.core.commands import (
    CommandRegistry,
    CommandSpec,
    ParseContext,
    ParsedCommand,
    bind_values,
    parse_command,
)
from bot.core.errors import UserError
from bot.core.events import CommandInvoked, InboundEvent, MessageReceived, Sender
from bot.core.i18n import Translator
from bot.core.messages import OutgoingMessage
from bot.core.permissions import Level
from bot.core.refs import MessageRef, RoomRef, UserRef
from bot.core.text import ECHO_LIMIT, shorten
from bot.delivery import Delivery
from bot.storage.health import StorageUnavailable

log = logging.getLogger(__name__)

# Error parameters that quote what the user wrote; the others are ours (the known
# associations, the choices), kept whole up to a generous bound.
_ECHOED = frozenset({"value", "name", "group"})
_LIST_LIMIT = 1000
# Events whose handlers were cut short by a storage failure, remembered to be resumed.
_PARTLY_DONE_MAX = 10_000

CommandHandler = Callable[["CommandCall"], Awaitable[None]]
EventHandler = Callable[[Any], Awaitable[None]]
OrganiserCheck = Callable[[UserRef, RoomRef], Awaitable[bool]]


@dataclass
class CommandCall:
    """One call of a command, as a handler sees it."""

    spec: CommandSpec
    args: Mapping[str, Any]
    sender: Sender
    room: RoomRef
    origin: MessageRef | None
    event_id: str
    language: str
    prefix: str
    is_organiser: bool
    translator: Translator
    delivery: Delivery
    _replies: int = field(default=0)

    def t(self, key: str, /, **params: object) -> str:
        return self.translator.t(key, self.language, **params)

    async def reply(self, text: str, *, ephemeral: bool = False) -> None:
        """Answer in the room the command came from (to the caller alone where the
        platform allows and `ephemeral` is set)."""
        self._replies += 1
        key = f"reply:{self.room.platform}:{self.event_id}:{self._replies}"
        message = OutgoingMessage(text=text, reply_to=self.origin, ephemeral=ephemeral)
        await self.delivery.send_reply(key, self.room, message)


class Dispatcher:
    def __init__(
        self,
        *,
        translator: Translator,
        delivery: Delivery,
        associations: Directory,
        timezone: Any,
        is_organiser: OrganiserCheck,
    ) -> None:
        self.registry = CommandRegistry()
        self._commands: dict[tuple[str, ...], CommandHandler] = {}
        self._events: dict[type[InboundEvent], list[tuple[str, EventHandler]]] = defaultdict(list)
        self._t = translator
        self._delivery = delivery
        self._associations = associations
        self._tz = timezone
        self._is_organiser = is_organiser
        self._partly_done: OrderedDict[str, set[str]] = OrderedDict()

    # -- registration -------------------------------------------------------------------

    def add(
        self,
        owner: str,
        commands: list[tuple[CommandSpec, CommandHandler]],
        events: list[tuple[type[InboundEvent], EventHandler]],
    ) -> None:
        """Register a plugin's handlers all at once, or none if a name clashes."""
        self.registry.add([spec for spec, _ in commands])
        for spec, fn in commands:
            self._commands[spec.path] = fn
        for event_type, fn in events:
            self._events[event_type].append((owner, fn))

    def remove(self, owner: str) -> None:
        specs = [s for s in self.registry.specs() if s.owner == owner]
        self.registry.remove(specs)
        for spec in specs:
            self._commands.pop(spec.path, None)
        for handlers in self._events.values():
            handlers[:] = [(o, fn) for o, fn in handlers if o != owner]

    def parse_context(self) -> ParseContext:
        return ParseContext(timezone=self._tz, associations=self._associations.ids())

    # -- handling ----------------------------------------------------------------------

    async def handle(self, event: InboundEvent, prefix: str | None) -> None:
        if isinstance(event, CommandInvoked):
            await self._command_event(event, prefix or "/")
            return
        if (
            isinstance(event, MessageReceived)
            and prefix
            and event.text.startswith(prefix)
            and len(event.text) > len(prefix)
            and not event.text[len(prefix)].isspace()
            and not event.is_notice
        ):
            await self._text_command(event, prefix)
            return
        # Handlers that finished before a storage failure are not run again when the
        # adapter hands the event over again: each plugin's writes are its own.
        name = f"{event.room.platform}:{event.event_id}"
        done = self._partly_done.pop(name, set())
        for event_type in type(event).__mro__:
            for owner, fn in list(self._events.get(event_type, ())):
                if owner in done:
                    continue
                try:
                    await fn(event)
                except StorageUnavailable:
                    self._partly_done[name] = done
                    while len(self._partly_done) > _PARTLY_DONE_MAX:
                        self._partly_done.popitem(last=False)
                    raise
                except Exception:
                    log.exception(
                        "plugin %s failed on %s %s", owner, type(event).__name__, event.event_id
                    )
                done.add(owner)

    async def _text_command(self, event: MessageReceived, prefix: str) -> None:
        language = self._associations.language_for(event.room)
        try:
            parsed = parse_command(event.text[len(prefix) :], self.registry, self.parse_context())
        except UserError as err:
            await self._answer_error(event.event_id, event.room, event.ref, language, err, prefix)
            return
        await self._run(
            parsed, event.sender, event.room, event.ref, event.event_id, language, prefix
        )

    async def _command_event(self, event: CommandInvoked, prefix: str) -> None:
        language = self._associations.language_for(event.room)
        spec = self.registry.get(event.path)
        if spec is None:
            err = UserError("error.unknown_command", name=" ".join(event.path))
            await self._answer_error(
                event.event_id, event.room, event.origin, language, err, prefix
            )
            return
        try:
            positional = [
                event.args[p.name] for p in spec.params if event.args.get(p.name) is not None
            ]
            flags = {
                f.name: event.args[f.name] for f in spec.flags if event.args.get(f.name) is not None
            }
            # Variadic values arrive from native commands as one list.
            if spec.params and spec.params[-1].variadic and positional:
                last = positional.pop()
                positional.extend(last if isinstance(last, list | tuple) else [last])
            args = bind_values(spec, positional, flags, self.parse_context())
        except UserError as err:
            await self._answer_error(
                event.event_id, event.room, event.origin, language, err, prefix
            )
            return
        await self._run(
            ParsedCommand(spec, args),
            event.sender,
            event.room,
            event.origin,
            event.event_id,
            language,
            prefix,
        )

    async def _run(
        self,
        parsed: ParsedCommand,
        sender: Sender,
        room: RoomRef,
        origin: MessageRef | None,
        event_id: str,
        language: str,
        prefix: str,
    ) -> None:
        spec = parsed.spec
        organiser = await self._is_organiser(sender.user, room)
        call = CommandCall(
            spec=spec,
            args=parsed.args,
            sender=sender,
            room=room,
            origin=origin,
            event_id=event_id,
            language=language,
            prefix=prefix,
            is_organiser=organiser,
            translator=self._t,
            delivery=self._delivery,
        )
        if spec.level >= Level.ORGANISER and not organiser:
            log.info("%s refused %s: not an organiser in %s", sender.user, spec.name, room)
            await call.reply(
                call.t("error.not_organiser", command=prefix + spec.name), ephemeral=True
            )
            return
        handler = self._commands[spec.path]
        try:
            await handler(call)
        except UserError as err:
            await call.reply(self._error_text(err, language, prefix), ephemeral=True)
        except StorageUnavailable:
            raise
        except Exception:
            log.exception("command %s from %s in %s failed", spec.name, sender.user, room)
            await call.reply(call.t("error.internal"), ephemeral=True)

    def _error_text(self, err: UserError, language: str, prefix: str) -> str:
        # What the user wrote is quoted back cut short: a reply never echoes a flood.
        params = {
            k: shorten(v, ECHO_LIMIT if k in _ECHOED else _LIST_LIMIT) if isinstance(v, str) else v
            for k, v in err.params_in(language).items()
        }
        params.setdefault("prefix", prefix)
        usage = params.pop("usage", None)
        text = self._t.t(err.key, language, **params)
        if isinstance(usage, CommandSpec):
            text += "\n" + self._t.t("error.usage", language, usage=usage.usage(prefix, language))
        return text

    async def _answer_error(
        self,
        event_id: str,
        room: RoomRef,
        origin: MessageRef | None,
        language: str,
        err: UserError,
        prefix: str,
    ) -> None:
        key = f"reply:{room.platform}:{event_id}:1"
        message = OutgoingMessage(
            text=self._error_text(err, language, prefix), reply_to=origin, ephemeral=True
        )
        await self._delivery.send_reply(key, room, message)
