"""What Discord rejects, as the stand-in checks it: each check returns None or raises.

A form error has Discord's shape: code 50035, "Invalid Form Body", and an `errors`
object nested by field path whose leaves hold `_errors` (what discord.py reads to say
"In poll.answers.0.poll_media.text: ...")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.discord.standin.model import Json

CONTENT_LIMIT = 2000
POLL_ANSWERS = 10
POLL_ANSWER_CHARS = 55
POLL_QUESTION_CHARS = 300
POLL_MAX_HOURS = 32 * 24
USERNAME_CHARS = 80
CUSTOM_ID_CHARS = 100
BUTTON_LABEL_CHARS = 80
SELECT_OPTIONS = 25
SELECT_TEXT_CHARS = 100
SELECT_PLACEHOLDER_CHARS = 150
ACTION_ROW, BUTTON, STRING_SELECT = 1, 2, 3
SELECT_TYPES = (3, 5, 6, 7, 8)  # string, user, role, mentionable, channel
LINK_STYLE, PREMIUM_STYLE = 5, 6


@dataclass(frozen=True)
class ApiError(Exception):
    status: int
    code: int
    message: str
    errors: Json | None = field(default=None, compare=False)

    def body(self) -> Json:
        out: Json = {"message": self.message, "code": self.code}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def invalid_form(path: str, reason: str, code: str = "BASE_TYPE_INVALID") -> ApiError:
    """Discord's 50035 for the field at dotted `path` (`poll.answers.0.poll_media.text`)."""
    leaf: Json = {"_errors": [{"code": code, "message": reason}]}
    for part in reversed(path.split(".")):
        leaf = {part: leaf}
    return ApiError(400, 50035, "Invalid Form Body", leaf)


def check_message(body: Json, *, has_files: bool = False) -> None:
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        raise invalid_form("content", "must be a string")
    if content and len(content) > CONTENT_LIMIT:
        raise invalid_form("content", f"Must be {CONTENT_LIMIT} or fewer in length.")
    nonce = body.get("nonce")
    if nonce is not None and len(str(nonce)) > 25:
        raise invalid_form("nonce", "Must be 25 or fewer in length.")
    if body.get("poll") is not None:
        check_poll(body["poll"])
    check_components(body.get("components") or [])
    empty = (
        not content
        and not body.get("embeds")
        and not body.get("poll")
        and not body.get("sticker_ids")
        and not has_files
    )
    if empty:
        raise ApiError(400, 50006, "Cannot send an empty message")


def check_poll(poll: Json) -> None:
    question = (poll.get("question") or {}).get("text")
    if not isinstance(question, str) or not 1 <= len(question) <= POLL_QUESTION_CHARS:
        raise invalid_form(
            "poll.question.text",
            f"Must be between 1 and {POLL_QUESTION_CHARS} in length.",
            "BASE_TYPE_BAD_LENGTH",
        )
    answers = poll.get("answers")
    if not isinstance(answers, list) or not 1 <= len(answers) <= POLL_ANSWERS:
        raise invalid_form(
            "poll.answers",
            f"Must be between 1 and {POLL_ANSWERS} in length.",
            "BASE_TYPE_BAD_LENGTH",
        )
    for i, answer in enumerate(answers):
        text = (answer.get("poll_media") or {}).get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str) or not 1 <= len(text) <= POLL_ANSWER_CHARS:
            raise invalid_form(
                f"poll.answers.{i}.poll_media.text",
                f"Must be between 1 and {POLL_ANSWER_CHARS} in length.",
                "BASE_TYPE_BAD_LENGTH",
            )
    duration = poll.get("duration", 24)
    # A whole number, also written 48.0 (as discord.py sends it).
    whole = isinstance(duration, int | float) and float(duration).is_integer()
    if not whole or isinstance(duration, bool):
        raise invalid_form("poll.duration", "Value must be a valid integer.", "NUMBER_TYPE_COERCE")
    if duration < 1:
        raise invalid_form(
            "poll.duration", "int value should be greater than or equal to 1.", "NUMBER_TYPE_MIN"
        )
    if duration > POLL_MAX_HOURS:
        raise invalid_form(
            "poll.duration",
            f"int value should be less than or equal to {POLL_MAX_HOURS}.",
            "NUMBER_TYPE_MAX",
        )
    if poll.get("layout_type", 1) != 1:
        raise invalid_form("poll.layout_type", "Value must be one of {1}.", "ENUM_TYPE_COERCE")
    if not isinstance(poll.get("allow_multiselect", False), bool):
        raise invalid_form(
            "poll.allow_multiselect", "Must be either true or false.", "BOOLEAN_TYPE_COERCE"
        )


def check_components(rows: list[Any]) -> None:
    """Action rows of buttons, or of one select menu each, as Discord lays them out."""
    if not isinstance(rows, list) or len(rows) > 5:
        raise invalid_form("components", "Must be 5 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
    seen: set[str] = set()
    for r, row in enumerate(rows):
        where = f"components.{r}"
        items = row.get("components") if isinstance(row, dict) else None
        if row.get("type") != ACTION_ROW or not isinstance(items, list):
            raise invalid_form(f"{where}.type", "Value must be one of {1}.", "ENUM_TYPE_COERCE")
        if not 1 <= len(items) <= 5:
            raise invalid_form(
                f"{where}.components", "Must be between 1 and 5 in length.", "BASE_TYPE_BAD_LENGTH"
            )
        for c, item in enumerate(items):
            here = f"{where}.components.{c}"
            kind = item.get("type")
            if kind == BUTTON:
                _check_button(item, here)
            elif kind in SELECT_TYPES:
                if len(items) != 1:
                    # A select menu takes its row's whole width.
                    raise invalid_form(
                        f"{where}.components",
                        "The specified component exceeds the maximum width",
                        "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    )
                _check_select(item, here)
            else:
                raise invalid_form(
                    f"{here}.type", "Value must be one of {2, 3, 5, 6, 7, 8}.", "ENUM_TYPE_COERCE"
                )
            custom_id = item.get("custom_id")
            if custom_id is None:
                continue
            if custom_id in seen:
                raise invalid_form(
                    f"{here}.custom_id",
                    "Component custom id cannot be duplicated",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                )
            seen.add(str(custom_id))


def _check_custom_id(item: Json, where: str) -> None:
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID_CHARS:
        raise invalid_form(
            f"{where}.custom_id",
            f"Must be between 1 and {CUSTOM_ID_CHARS} in length.",
            "BASE_TYPE_BAD_LENGTH",
        )


def _check_button(item: Json, where: str) -> None:
    style = item.get("style")
    if style not in (1, 2, 3, 4, LINK_STYLE, PREMIUM_STYLE):
        raise invalid_form(
            f"{where}.style", "Value must be one of {1, 2, 3, 4, 5, 6}.", "ENUM_TYPE_COERCE"
        )
    if style == LINK_STYLE:
        if not item.get("url") or item.get("custom_id") is not None:
            raise invalid_form(
                f"{where}.url",
                "A link button needs a url and no custom_id",
                "BUTTON_COMPONENT_INVALID",
            )
    elif style != PREMIUM_STYLE:
        _check_custom_id(item, where)
    label = item.get("label")
    if label is not None and len(str(label)) > BUTTON_LABEL_CHARS:
        raise invalid_form(
            f"{where}.label",
            f"Must be {BUTTON_LABEL_CHARS} or fewer in length.",
            "BASE_TYPE_MAX_LENGTH",
        )
    if not label and not item.get("emoji") and style != PREMIUM_STYLE:
        raise invalid_form(
            f"{where}.label", "A button needs a label or an emoji", "BUTTON_COMPONENT_INVALID"
        )


def _check_select(item: Json, where: str) -> None:
    _check_custom_id(item, where)
    placeholder = item.get("placeholder")
    if placeholder is not None and len(str(placeholder)) > SELECT_PLACEHOLDER_CHARS:
        raise invalid_form(
            f"{where}.placeholder",
            f"Must be {SELECT_PLACEHOLDER_CHARS} or fewer in length.",
            "BASE_TYPE_MAX_LENGTH",
        )
    low, high = item.get("min_values", 1), item.get("max_values", 1)
    if not isinstance(low, int) or not 0 <= low <= SELECT_OPTIONS:
        raise invalid_form(
            f"{where}.min_values", "int value should be between 0 and 25.", "NUMBER_TYPE_MAX"
        )
    if not isinstance(high, int) or not 1 <= high <= SELECT_OPTIONS:
        raise invalid_form(
            f"{where}.max_values", "int value should be between 1 and 25.", "NUMBER_TYPE_MAX"
        )
    if low > high:
        raise invalid_form(
            f"{where}.min_values",
            "min_values must be less than or equal to max_values",
            "SELECT_COMPONENT_MIN_VALUES_EXCEEDED",
        )
    if item.get("type") != STRING_SELECT:
        return  # the other selects list users, roles or channels: Discord fills them
    options = item.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= SELECT_OPTIONS:
        raise invalid_form(
            f"{where}.options",
            f"Must be between 1 and {SELECT_OPTIONS} in length.",
            "BASE_TYPE_BAD_LENGTH",
        )
    if high > len(options):
        raise invalid_form(
            f"{where}.max_values",
            f"int value should be less than or equal to {len(options)}.",
            "NUMBER_TYPE_MAX",
        )
    values: set[str] = set()
    defaults = 0
    for o, option in enumerate(options):
        for key in ("label", "value"):
            text = option.get(key)
            if not isinstance(text, str) or not 1 <= len(text) <= SELECT_TEXT_CHARS:
                raise invalid_form(
                    f"{where}.options.{o}.{key}",
                    f"Must be between 1 and {SELECT_TEXT_CHARS} in length.",
                    "BASE_TYPE_BAD_LENGTH",
                )
        description = option.get("description")
        if description is not None and len(str(description)) > SELECT_TEXT_CHARS:
            raise invalid_form(
                f"{where}.options.{o}.description",
                f"Must be {SELECT_TEXT_CHARS} or fewer in length.",
                "BASE_TYPE_MAX_LENGTH",
            )
        if option["value"] in values:
            raise invalid_form(
                f"{where}.options.{o}.value",
                "Select component option values must be unique",
                "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
            )
        values.add(option["value"])
        defaults += bool(option.get("default"))
    if defaults > high:
        raise invalid_form(
            f"{where}.options",
            "Too many default options",
            "SELECT_COMPONENT_TOO_MANY_DEFAULT_VALUES",
        )


def check_webhook_name(name: str, field: str = "name") -> None:
    lowered = name.lower()
    if "discord" in lowered or "clyde" in lowered:
        raise invalid_form(field, f'Username cannot contain "{name}"')
    if not 1 <= len(name) <= USERNAME_CHARS:
        raise invalid_form(field, "Must be between 1 and 80 in length.")


def check_commands(commands: list[Json]) -> None:
    names: set[tuple[int, str]] = set()
    for cmd in commands:
        name = str(cmd.get("name") or "")
        if not 1 <= len(name) <= 32 or name != name.lower():
            raise invalid_form("name", "lower case, 1 to 32 characters")
        key = (int(cmd.get("type", 1)), name)
        if key in names:
            raise ApiError(400, 50035, "Application command names must be unique")
        names.add(key)
        description = str(cmd.get("description") or "")
        if not 1 <= len(description) <= 100:
            raise invalid_form(f"{name}.description", "1 to 100 characters")
        _check_options(cmd.get("options") or [], name)


def _check_options(options: list[Json], where: str) -> None:
    if len(options) > 25:
        raise invalid_form(f"{where}.options", "Must be 25 or fewer in length.")
    required_done = False
    for opt in options:
        name = str(opt.get("name") or "")
        if not 1 <= len(name) <= 32 or name != name.lower():
            raise invalid_form(f"{where}.options.name", "lower case, 1 to 32 characters")
        if not 1 <= len(str(opt.get("description") or "")) <= 100:
            raise invalid_form(f"{where}.{name}.description", "1 to 100 characters")
        if opt.get("type") in (1, 2):
            _check_options(opt.get("options") or [], f"{where}.{name}")
            continue
        if opt.get("required"):
            if required_done:
                raise invalid_form(
                    f"{where}.{name}", "Required options must be placed before non-required options"
                )
        else:
            required_done = True
