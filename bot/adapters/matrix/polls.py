"""Native polls in the form Element reads (MSC3381, unstable names), with text fallbacks.

Responses are read in both the unstable and the stable form (see inbound.py); we send
the unstable form because that is what clients in the field display.
"""

from __future__ import annotations

from typing import Any, Final

from bot.core.messages import Poll

START: Final = "org.matrix.msc3381.poll.start"
END: Final = "org.matrix.msc3381.poll.end"
TEXT: Final = "org.matrix.msc1767.text"
DISCLOSED: Final = "org.matrix.msc3381.poll.disclosed"
UNDISCLOSED: Final = "org.matrix.msc3381.poll.undisclosed"


def fallback_text(poll: Poll, intro: str = "") -> str:
    lines = [intro] if intro and intro != poll.question else []
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
