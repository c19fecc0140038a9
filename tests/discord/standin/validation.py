"""What Discord rejects, as the stand-in checks it: each check returns None or an error."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class ApiError(Exception):
    status: int
    code: int
    message: str

    def body(self) -> Json:
        return {"message": self.message, "code": self.code}


def invalid_form(field: str, reason: str) -> ApiError:
    return ApiError(400, 50035, f"Invalid Form Body: {field}: {reason}")


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
    question = (poll.get("question") or {}).get("text") or ""
    if not question or len(question) > POLL_QUESTION_CHARS:
        raise invalid_form("poll.question.text", "must be 1 to 300 characters")
    answers = poll.get("answers") or []
    if not 1 <= len(answers) <= POLL_ANSWERS:
        raise invalid_form("poll.answers", f"Must be between 1 and {POLL_ANSWERS} in length.")
    for i, answer in enumerate(answers):
        text = (answer.get("poll_media") or {}).get("text") or ""
        if not text or len(text) > POLL_ANSWER_CHARS:
            raise invalid_form(
                f"poll.answers.{i}.poll_media.text",
                f"Must be between 1 and {POLL_ANSWER_CHARS} in length.",
            )
    duration = poll.get("duration", 24)
    whole = isinstance(duration, int | float) and float(duration).is_integer()
    if not whole or not 1 <= duration <= POLL_MAX_HOURS:
        raise invalid_form("poll.duration", f"hours between 1 and {POLL_MAX_HOURS}")


def check_components(rows: list[Any]) -> None:
    if len(rows) > 5:
        raise invalid_form("components", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for row in rows:
        items = row.get("components") or []
        if row.get("type") != 1 or not 1 <= len(items) <= 5:
            raise invalid_form("components", "an action row holds 1 to 5 components")
        for item in items:
            custom_id = str(item.get("custom_id") or "")
            if not custom_id or len(custom_id) > CUSTOM_ID_CHARS:
                raise invalid_form("components.custom_id", "1 to 100 characters")
            if custom_id in seen:
                raise invalid_form(
                    "components.custom_id", "Component custom id cannot be duplicated"
                )
            seen.add(custom_id)
            if len(str(item.get("label") or "")) > BUTTON_LABEL_CHARS:
                raise invalid_form("components.label", "Must be 80 or fewer in length.")


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
