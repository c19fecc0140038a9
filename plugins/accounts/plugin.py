"""`link` (`koppla`): one person's accounts on two platforms, tied together.

`link` shows a one-time code, `link CODE` (typed from the other platform's account)
completes, `link remove` (`koppla ta-bort`) undoes. The work is in `bot.people`.

The contract's `link remove` cannot be a command of its own beside a bare `link`: Discord
slash commands cannot be invoked bare once they have subcommands. So `link` takes an
optional code, and the word `remove` (`ta-bort`) in its place removes the link; on
Discord, where that would read `/link code:remove`, `unlink` (`koppla-bort`) does it.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Final

from bot.commanding import CommandCall
from bot.core.commands import Param
from bot.core.errors import UserError
from bot.people import CODE_TTL, LinkRefused
from bot.plugin import Plugin, command, job
from bot.scheduling import JobRun

_REMOVE_WORDS: Final = frozenset({"remove", "ta-bort", "tabort", "bort"})
# Platforms whose answer to a command reaches the caller alone (Discord answers a slash
# command ephemerally, and never posts a private answer for everyone). Elsewhere a code
# is shown to the whole room, so its redemption has to be confirmed by its asker.
_PRIVATE_PLATFORMS: Final = frozenset({"discord"})
_PURGE_CRON: Final = "41 4 * * *"


def _minutes(span: timedelta) -> int:
    return max(1, math.ceil(span.total_seconds() / 60))


class AccountsPlugin(Plugin):
    name = "accounts"
    locales = str(Path(__file__).parent / "locales")

    async def on_start(self) -> None:
        # Codes live ten minutes; those nobody used are forgotten daily at the latest.
        await self.ctx.scheduler.every("purge", _PURGE_CRON, "purge", grace=timedelta(days=3650))

    @command(
        "link",
        sv="koppla",
        help="accounts.help.link",
        params=(Param("code", sv_name="kod", required=False),),
    )
    async def link(self, call: CommandCall) -> None:
        code = call.args.get("code")
        if code is None:
            await self._start(call)
        elif code.lower() in _REMOVE_WORDS:
            await self._remove(call)
        else:
            await self._complete(call, code)

    @command("unlink", sv="koppla-bort", help="accounts.help.unlink")
    async def unlink(self, call: CommandCall) -> None:
        await self._remove(call)

    @job("purge")
    async def purge(self, run: JobRun) -> None:
        await self.ctx.people.purge(self.ctx.clock.now())

    async def _start(self, call: CommandCall) -> None:
        private = call.room.platform in _PRIVATE_PLATFORMS
        code = await self.ctx.people.start_link(
            call.sender.user, self.ctx.clock.now(), private=private
        )
        key = "accounts.code.private" if private else "accounts.code.public"
        text = call.t(key, code=code, minutes=_minutes(CODE_TTL), prefix=call.prefix)
        await call.reply(text, ephemeral=True)

    async def _complete(self, call: CommandCall, code: str) -> None:
        try:
            done = await self.ctx.people.complete_link(call.sender.user, code, self.ctx.clock.now())
        except LinkRefused as refused:
            wait = _minutes(refused.wait) if refused.wait is not None else 0
            raise UserError(f"accounts.refused.{refused.reason}", minutes=wait) from None
        if done.confirm_code is not None:
            text = call.t("accounts.confirm", code=done.confirm_code, minutes=_minutes(CODE_TTL))
        else:
            text = call.t("accounts.linked", prefix=call.prefix)
        await call.reply(text, ephemeral=True)

    async def _remove(self, call: CommandCall) -> None:
        try:
            await self.ctx.people.unlink(call.sender.user)
        except LinkRefused as refused:
            raise UserError(f"accounts.refused.{refused.reason}") from None
        await call.reply(call.t("accounts.unlinked"), ephemeral=True)
