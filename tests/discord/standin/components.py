"""A message's components as a Discord client shows them: what a member can click or
pick. The stand-in's test helpers refuse what no client could send (a disabled button,
a value the menu does not offer, more picks than it allows)."""

from __future__ import annotations

from tests.discord.standin.model import Json, Message


def find(message: Message, custom_id: str, *, kind: int) -> Json:
    for row in message.data.get("components") or []:
        for item in row.get("components") or []:
            if item.get("custom_id") == custom_id and item.get("type") == kind:
                if item.get("disabled"):
                    raise AssertionError(f"{custom_id} is disabled: no client sends a click")
                return dict(item)
    raise AssertionError(f"message {message.id} shows no component {custom_id} of type {kind}")


def check_choice(menu: Json, values: list[str]) -> None:
    offered = {str(o["value"]) for o in menu.get("options") or []}
    low, high = int(menu.get("min_values", 1)), int(menu.get("max_values", 1))
    if not low <= len(values) <= high:
        raise AssertionError(f"{len(values)} picks where the menu takes {low} to {high}")
    if len(set(values)) != len(values) or not set(values) <= offered:
        raise AssertionError(f"{values} are not distinct values of {sorted(offered)}")
