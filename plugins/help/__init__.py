"""`help` (`hjälp`): the commands this user may run, in their language."""

from __future__ import annotations

from pathlib import Path

from bot.commanding import CommandCall
from bot.core.commands import CommandSpec, Param
from bot.core.permissions import Level
from bot.core.text import shorten
from bot.plugin import Plugin, command


def _names(spec: CommandSpec) -> set[tuple[str, ...]]:
    return {tuple(w.lower() for w in spec.path), tuple(w.lower() for w in spec.sv_path)}


class HelpPlugin(Plugin):
    name = "help"
    locales = str(Path(__file__).parent / "locales")

    @command(
        "help",
        sv="hjälp",
        help="help.help",
        params=(Param("command", sv_name="kommando", required=False, variadic=True),),
    )
    async def help(self, call: CommandCall) -> None:
        allowed = Level.ORGANISER if call.is_organiser else Level.MEMBER
        specs = [s for s in self.ctx.commands() if s.level <= allowed]
        words = tuple(w.lower() for w in call.args.get("command") or ())
        if words:
            specs = [s for s in specs if words in _names(s)] or [
                s for s in specs if words[0] in {s.path[0].lower(), s.sv_path[0].lower()}
            ]
            if not specs:
                await call.reply(
                    call.t("help.unknown", name=shorten(" ".join(words)), prefix=call.prefix)
                )
                return
        lines = [] if words else [call.t("help.title")]
        for spec in sorted(specs, key=lambda s: s.path):
            lines.append(f"{spec.usage(call.prefix, call.language)} – {call.t(spec.help)}")
        if not words and not call.is_organiser:
            lines.append(call.t("help.more_for_organisers"))
        await call.reply("\n".join(lines))


PLUGIN = HelpPlugin
