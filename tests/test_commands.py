from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.core.commands import (
    CommandRegistry,
    CommandSpec,
    Flag,
    Kind,
    Param,
    ParseContext,
    parse_command,
    tokenize,
)
from bot.core.errors import UserError
from bot.core.permissions import Level

TZ = ZoneInfo("Europe/Stockholm")
CTX = ParseContext(timezone=TZ, associations=frozenset({"falun", "mora", "borlange"}))

POLL_NEW = CommandSpec(
    path=("poll", "new"),
    sv_path=("omröstning", "ny"),
    help="polls.new",
    params=(Param("question"), Param("answers", variadic=True)),
    flags=(
        Flag("multi", Kind.INTEGER),
        Flag("secret"),
        Flag("for", Kind.DURATION),
        Flag("until", Kind.TIME),
        Flag("in", Kind.ASSOCIATIONS),
    ),
    level=Level.ORGANISER,
)
HELP = CommandSpec(
    ("help",), ("hjälp",), "help.help", (Param("command", required=False, variadic=True),)
)


@pytest.fixture
def registry() -> CommandRegistry:
    reg = CommandRegistry()
    reg.add([POLL_NEW, HELP])
    return reg


def test_quoted_words_and_flags(registry: CommandRegistry) -> None:
    parsed = parse_command(
        'poll new "Ska vi ses?" "Ja, gärna" Nej --multi 2 --secret --for 3d --in falun,mora',
        registry,
        CTX,
    )
    assert parsed.spec is POLL_NEW
    assert parsed.args["question"] == "Ska vi ses?"
    assert parsed.args["answers"] == ("Ja, gärna", "Nej")
    assert parsed.args["multi"] == 2
    assert parsed.args["secret"] is True
    assert parsed.args["for"] == timedelta(days=3)
    assert parsed.args["in"] == ("falun", "mora")
    assert parsed.args["until"] is None


def test_swedish_alias_and_case(registry: CommandRegistry) -> None:
    parsed = parse_command('Omröstning NY "Fråga" A B --in=alla', registry, CTX)
    assert parsed.spec is POLL_NEW
    assert parsed.args["in"] == ("*",)


def test_typographic_quotes_from_phones() -> None:
    assert tokenize("poll new “Vart går vi?” ”Ja”") == ["poll", "new", "Vart går vi?", "Ja"]


def test_local_time_in_bot_zone(registry: CommandRegistry) -> None:
    parsed = parse_command('poll new Q A --until "2026-12-03 18:00"', registry, CTX)
    until = parsed.args["until"]
    assert until.tzinfo is TZ
    assert until.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("poll new", "error.missing_argument"),
        ("poll new Q", "error.missing_argument"),
        ("poll new Q A --for soon", "error.bad_duration"),
        ("poll new Q A --until tomorrow", "error.bad_time"),
        ('poll new Q A --until "2026-03-29 02:30"', "error.bad_time"),
        ("poll new Q A --in gagnef", "error.unknown_association"),
        ("poll new Q A --multi", "error.flag_needs_value"),
        ("poll new Q A --multi two", "error.bad_integer"),
        ("poll new Q A --colour red", "error.unknown_flag"),
        ('poll new "Q A', "error.unbalanced_quotes"),
        ("poll nytt Q A", "error.unknown_subcommand"),
        ("vote 1 2", "error.unknown_command"),
        ("help me please --x", "error.unknown_flag"),
    ],
)
def test_bad_calls_name_the_problem(registry: CommandRegistry, text: str, key: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_command(text, registry, CTX)
    assert caught.value.key == key


def test_missing_argument_carries_usage(registry: CommandRegistry) -> None:
    with pytest.raises(UserError) as caught:
        parse_command("omröstning ny", registry, CTX)
    usage = caught.value.params["usage"]
    assert isinstance(usage, CommandSpec)
    assert usage.usage("!", "sv").startswith("!omröstning ny <question> <answers...>")


def test_name_clash_is_refused(registry: CommandRegistry) -> None:
    clash = CommandSpec(("hjälp",), ("hjälp",), "x")
    with pytest.raises(ValueError, match="taken"):
        registry.add([clash])
    assert registry.get(["help"]) is HELP


def test_usage_names_each_flag_in_the_language_it_is_shown_in() -> None:
    spec = CommandSpec(
        ("update", "post"),
        ("uppdatering", "ny"),
        "updates.post",
        (Param("text", sv_name="text", variadic=True),),
        (Flag("at", Kind.TIME, sv_name="tid"), Flag("in", Kind.ASSOCIATIONS, sv_name="i"),
         Flag("loud", sv_name="högt"), Flag("plain")),
    )  # fmt: skip
    assert spec.usage("!", "sv") == (
        "!uppdatering ny <text...> [--tid …] [--i …] [--högt] [--plain]"
    )  # a flag without a Swedish name keeps its own
    assert spec.usage("!", "en") == "!update post <text...> [--at …] [--in …] [--loud] [--plain]"


def test_a_flag_without_its_value_is_named_as_typed() -> None:
    spec = CommandSpec(
        ("update", "post"), ("uppdatering", "ny"), "updates.post",
        (Param("text", variadic=True),), (Flag("at", Kind.TIME, sv_name="tid"),),
    )  # fmt: skip
    registry = CommandRegistry()
    registry.add([spec])
    for typed in ("tid", "at"):
        with pytest.raises(UserError) as caught:
            parse_command(f"uppdatering ny hej --{typed}", registry, CTX)
        assert caught.value.key == "error.flag_needs_value"
        assert caught.value.params["name"] == typed


def test_errors_name_parameters_and_flags_in_the_readers_language() -> None:
    spec = CommandSpec(
        ("event", "add"), ("händelse", "ny"), "calendar.add",
        (Param("title", sv_name="titel"), Param("start", Kind.TIME, sv_name="start")),
        (Flag("length", Kind.DURATION, sv_name="längd"),),
    )  # fmt: skip
    registry = CommandRegistry()
    registry.add([spec])
    with pytest.raises(UserError) as missing:
        parse_command("händelse ny", registry, CTX)
    assert missing.value.params_in("sv")["name"] == "titel"
    assert missing.value.params_in("en")["name"] == "title"
    with pytest.raises(UserError) as bad:
        parse_command('händelse ny Möte "2026-12-24 18:00" --längd evigt', registry, CTX)
    assert bad.value.key == "error.bad_duration"
    assert bad.value.params_in("sv")["name"] == "längd"
    assert bad.value.params_in("en")["name"] == "length"
    assert bad.value.params_in("sv")["value"] == "evigt"
