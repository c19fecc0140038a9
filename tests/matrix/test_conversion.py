"""The pure parts of the adapter: formatting, splitting, inbound conversion, polls."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from nio import ErrorResponse

from bot.adapters.matrix import formatting, inbound, polls
from bot.adapters.matrix.outbound import convert_error, guarded
from bot.core.errors import PermanentSendError, TransientSendError
from bot.core.events import MessageReceived, PollVoteReceived
from bot.core.messages import Attribution, OutgoingMessage, Poll, PollAnswer
from bot.core.refs import MessageRef, RoomRef, UserRef


def test_html_is_built_from_escaped_text() -> None:
    html = formatting.render_html('**fet** *kursiv* `<kod>` [länk](https://x.se) <b>"&"</b>\nrad')
    assert html == (
        "<strong>fet</strong> <em>kursiv</em> <code>&lt;kod&gt;</code> "
        '<a href="https://x.se">länk</a> &lt;b&gt;&quot;&amp;&quot;&lt;/b&gt;<br>rad'
    )


def test_given_html_is_sanitised_with_an_allow_list() -> None:
    message = OutgoingMessage(
        text="x",
        html='<b onclick="evil()">ok</b><script>bad()</script><a href="javascript:x">l</a>',
    )
    (content,) = formatting.text_contents(message)
    assert "<script" not in content["formatted_body"] and "onclick" not in content["formatted_body"]
    assert (
        "javascript" not in content["formatted_body"] and "<b>ok</b>" in content["formatted_body"]
    )


def test_mentions_are_empty_unless_meant_and_attribution_is_shown() -> None:
    plain = formatting.text_contents(OutgoingMessage(text="@room hej"))[0]
    assert plain["m.mentions"] == {}
    meant = OutgoingMessage(
        text="hej",
        mentions=(UserRef("matrix", "@a:x"), UserRef("discord", "1")),
        attribution=Attribution("Anna", "Falun"),
        notice=False,
    )
    content = formatting.text_contents(meant)[0]
    assert content["m.mentions"] == {"user_ids": ["@a:x"]}
    assert content["body"] == "Anna (Falun): hej" and content["msgtype"] == "m.text"


def test_long_text_is_split_below_the_size_limit() -> None:
    text = "ä" * 30_000
    contents = formatting.text_contents(OutgoingMessage(text=text))
    assert len(contents) > 1
    assert all(formatting.size_of(c) <= formatting.MAX_CONTENT_BYTES for c in contents)
    assert "".join(c["body"] for c in contents) == text


def test_reply_fallback_is_stripped_from_commands() -> None:
    source = {
        "type": "m.room.message",
        "event_id": "$2",
        "sender": "@a:x",
        "origin_server_ts": 1_700_000_000_000,
        "content": {
            "msgtype": "m.text",
            "body": "> <@b:x> earlier\n> more\n\n!help",
            "format": "org.matrix.custom.html",
            "formatted_body": "<mx-reply><blockquote>earlier</blockquote></mx-reply>!help",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$1"}},
        },
    }
    event = inbound.convert("!r", source, "A")
    assert isinstance(event, MessageReceived)
    assert event.text == "!help" and event.html == "!help"
    assert event.reply_to == MessageRef(RoomRef("matrix", "!r"), "$1")


def test_poll_content_and_both_response_forms() -> None:
    poll = Poll("Fika?", (PollAnswer("a", "Ja"), PollAnswer("b", "Nej")), 5, secret=True)
    content = polls.start_content(poll)
    body = content[polls.START]
    assert body["kind"] == polls.UNDISCLOSED and body["max_selections"] == 2
    assert content[polls.TEXT] == "Fika?\n1. Ja\n2. Nej"
    rel = {"rel_type": "m.reference", "event_id": "$poll"}
    unstable = {
        "type": "org.matrix.msc3381.poll.response",
        "event_id": "$v1",
        "sender": "@a:x",
        "content": {"m.relates_to": rel, "org.matrix.msc3381.poll.response": {"answers": ["a"]}},
    }
    stable = {
        "type": "m.poll.response",
        "event_id": "$v2",
        "sender": "@b:x",
        "content": {"m.relates_to": rel, "m.selections": []},
    }
    first, second = inbound.convert("!r", unstable, "A"), inbound.convert("!r", stable, "B")
    assert isinstance(first, PollVoteReceived) and first.answers == ("a",)
    assert isinstance(second, PollVoteReceived) and second.answers == ()  # withdrawn
    assert first.poll.id == "$poll"


def _error(status: int, errcode: str, retry_ms: int | None = None) -> ErrorResponse:
    answer = ErrorResponse("an error", errcode, retry_ms)
    answer.transport_response = SimpleNamespace(status=status)
    return answer


def test_errors_are_converted_at_the_boundary() -> None:
    limited = convert_error(_error(429, "M_LIMIT_EXCEEDED", 1500), "send")
    assert isinstance(limited, TransientSendError) and limited.retry_after == 1.5
    assert isinstance(convert_error(_error(502, "M_UNKNOWN"), "send"), TransientSendError)
    forbidden = convert_error(_error(403, "M_FORBIDDEN"), "send")
    assert isinstance(forbidden, PermanentSendError)


async def test_network_errors_are_transient() -> None:
    async def broken() -> None:
        raise aiohttp.ClientConnectionError("connection refused")

    with pytest.raises(TransientSendError):
        await guarded("send", broken())
