"""`my-data` (`mina-data`), `forget-me` (`glöm-mig`) and `audit` (`granskning`).

The work is in `bot.privacy` and `bot.audit`. A person's data and their confirmation
code are shown to them alone: ephemerally on Discord, in a direct message on Matrix (a
room that belongs to no association and is no organisers' room); in a shared room the
command is refused. Confirmation codes are kept in memory for ten minutes: a restart
only means asking again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from bot.commanding import CommandCall
from bot.core.commands import Flag, Kind, Param
from bot.core.errors import UserError
from bot.core.messages import Attachment, OutgoingMessage
from bot.core.permissions import Level
from bot.plugin import Plugin, command
from bot.privacy import Privacy
from plugins.privacy.summary import audit_lines, summary

CODE_TTL: Final = timedelta(minutes=10)
# Platforms whose replies can reach the caller alone wherever the command is given.
_PRIVATE_PLATFORMS: Final = frozenset({"discord", "console"})
_AUDIT_SHOWN: Final = 50


class PrivacyPlugin(Plugin):
    name = "privacy"
    locales = str(Path(__file__).parent / "locales")

    async def on_start(self) -> None:
        # account -> (hash of the code, when it expires); never the code itself.
        self._codes: dict[str, tuple[str, datetime]] = {}

    @property
    def _privacy(self) -> Privacy:
        assert self.ctx.privacy is not None, "the app gives every plugin the privacy service"
        return self.ctx.privacy

    def _private(self, call: CommandCall) -> bool:
        if call.room.platform in _PRIVATE_PLATFORMS:
            return True
        shared = self.ctx.associations.of_room(call.room) is not None
        return not shared and call.room not in self.ctx.organiser_rooms

    @command("my-data", sv="mina-data", help="privacy.help.my_data")
    async def my_data(self, call: CommandCall) -> None:
        if not self._private(call):
            raise UserError("privacy.not_private")
        now = self.ctx.clock.now()
        data = await self._privacy.export(call.sender.user, now)
        body = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True).encode()
        name = "mina-data.json" if call.language == "sv" else "my-data.json"
        message = OutgoingMessage(
            text=summary(call, data),
            attachments=(Attachment(name, "application/json", data=body, size=len(body)),),
            reply_to=call.origin,
            ephemeral=True,
        )
        await self.ctx.delivery.send(
            f"privacy-export:{call.room.platform}:{call.event_id}", call.room, message
        )

    @command(
        "forget-me",
        sv="glöm-mig",
        help="privacy.help.forget_me",
        params=(Param("code", sv_name="kod", required=False),),
        flags=(Flag("copies", sv_name="kopior"),),
    )
    async def forget_me(self, call: CommandCall) -> None:
        if not self._private(call):
            raise UserError("privacy.not_private")
        account = str(call.sender.user)
        now = self.ctx.clock.now()
        code = call.args.get("code")
        if code is None:
            fresh = f"{secrets.randbelow(10**6):06d}"
            self._codes[account] = (_hash(fresh), now + CODE_TTL)
            await call.reply(
                call.t("privacy.confirm", code=fresh, prefix=call.prefix), ephemeral=True
            )
            return
        held = self._codes.get(account)
        if held is None or held[1] < now or not secrets.compare_digest(held[0], _hash(code)):
            raise UserError("privacy.wrong_code", prefix=call.prefix)
        del self._codes[account]
        deleter = self.ctx.delivery if call.args.get("copies") else None
        done = await self._privacy.erase(call.sender.user, now, deleter=deleter, by="self")
        if done.total == 0:
            await call.reply(call.t("privacy.nothing"), ephemeral=True)
            return
        text = call.t("privacy.erased", rows=sum(done.rows.values()), copies=done.copies_queued)
        await call.reply(text, ephemeral=True)

    @command(
        "audit",
        sv="granskning",
        help="privacy.help.audit",
        flags=(
            Flag("days", Kind.INTEGER, sv_name="dagar", minimum=1, maximum=3650),
            Flag("in", Kind.ASSOCIATIONS, sv_name="i"),
        ),
        level=Level.ORGANISER,
    )
    async def audit(self, call: CommandCall) -> None:
        days = int(call.args.get("days") or 30)
        since = self.ctx.clock.now() - timedelta(days=days)
        chosen: Any = call.args.get("in")
        associations: list[str] | None
        if chosen is None:
            here = self.ctx.associations.of_room(call.room)
            associations = [here.id] if here is not None else None
        elif "*" in chosen:
            associations = None
        else:
            associations = [str(a) for a in chosen]
        audit_log = self._privacy.audit_log
        entries = await audit_log.entries(
            since=since, associations=associations, limit=_AUDIT_SHOWN + 1
        )
        if not entries:
            await call.reply(call.t("privacy.audit.none", days=days))
            return
        lines = [call.t("privacy.audit.title", days=days)]
        lines += audit_lines(call, entries[:_AUDIT_SHOWN], self.ctx.timezone_name)
        if len(entries) > _AUDIT_SHOWN:
            lines.append(call.t("privacy.audit.more", shown=_AUDIT_SHOWN))
        await call.reply("\n".join(lines))


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()
