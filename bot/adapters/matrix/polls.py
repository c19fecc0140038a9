"""Native polls in the form Element reads (MSC3381, unstable names), with text fallbacks.

Responses are read in both the unstable and the stable form (see inbound.py); we send
the unstable form because that is what clients in the field display. The bot sends the
end event itself: Element draws the results only for an end from the poll's sender.

A secret poll is never a native poll here: an "undisclosed" poll hides its votes only
on screen, and every response is a room event any member can read. It is posted as
words (the answers numbered, votes written to the bot in a direct chat), and its close
is a reply to that post rather than an end event no client would show.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from bot.core.messages import OutgoingMessage, Poll
from bot.storage.state import AdapterState

START: Final = "org.matrix.msc3381.poll.start"
END: Final = "org.matrix.msc3381.poll.end"
TEXT: Final = "org.matrix.msc1767.text"
DISCLOSED: Final = "org.matrix.msc3381.poll.disclosed"
UNDISCLOSED: Final = "org.matrix.msc3381.poll.undisclosed"


def fallback_text(poll: Poll, intro: str = "") -> str:
    lines = [intro] if intro and intro != poll.question else []
    if poll.question not in intro:
        lines.append(poll.question)
    lines.extend(f"{i}. {a.text}" for i, a in enumerate(poll.answers, 1))
    return "\n".join(lines)


def start_content(poll: Poll, intro: str = "") -> dict[str, Any]:
    text = fallback_text(poll, intro)
    return {
        START: {
            "question": {TEXT: poll.question, "body": poll.question, "msgtype": "m.text"},
            "kind": UNDISCLOSED if poll.secret else DISCLOSED,
            "max_selections": max(1, min(poll.max_selections, len(poll.answers))),
            "answers": [{"id": a.id, TEXT: a.text} for a in poll.answers],
        },
        TEXT: text,
        "body": text,
        "m.mentions": {},
    }


def end_content(poll_event_id: str, results_text: str) -> dict[str, Any]:
    return {
        "m.relates_to": {"rel_type": "m.reference", "event_id": poll_event_id},
        END: {},
        TEXT: results_text,
        "body": results_text,
        "m.mentions": {},
    }


def as_words(message: OutgoingMessage) -> OutgoingMessage:
    """A secret poll's post as a message of words: the intro and the numbered answers."""
    assert message.poll is not None
    return replace(message, poll=None, html=None, text=fallback_text(message.poll, message.text))


class SecretPosts:
    """The posts of secret polls (words, not native polls), until they are closed."""

    def __init__(self, state: AdapterState) -> None:
        self._state = state

    async def remember(self, event_id: str) -> None:
        await self._state.set(f"secret_poll:{event_id}", "1")

    async def has(self, event_id: str) -> bool:
        return await self._state.get(f"secret_poll:{event_id}") is not None

    async def forget(self, event_id: str) -> None:
        await self._state.delete_prefix(f"secret_poll:{event_id}")
