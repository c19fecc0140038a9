"""Discord's 2000 characters: each part whole (fences, quotes, marks), nothing lost;
Matrix's event size; the outbox's JSON; what the Matrix adapter reads at the boundary;
the security cases."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.adapters.discord.markdown_out import fit, parts_of
from bot.adapters.matrix import formatting, inbound
from bot.core import markdown
from bot.core.document import Document
from bot.core.events import MessageEdited, MessageReceived
from bot.core.html_in import parse_html
from bot.core.markdown import parse
from bot.core.messages import Attribution, OutgoingMessage
from bot.core.plain import to_plain

SENTENCE = "Regionen behöver fler som vill engagera sig. "


def _parts(markdown: str) -> list[str]:
    return parts_of(OutgoingMessage(text="", document=parse(markdown)))


def test_a_long_code_block_is_fenced_in_every_part() -> None:
    code = "\n".join(f"rad {i} = `{i}`" for i in range(600))
    parts = _parts(f"```py\n{code}\n```")
    assert len(parts) > 1 and all(len(p) <= 2000 for p in parts)
    assert all(p.startswith("```py\n") and p.endswith("\n```") for p in parts)
    lines = [line for p in parts for line in p.split("\n")[1:-1]]
    assert lines == code.split("\n")


def test_a_long_quote_is_quoted_in_every_part() -> None:
    parts = _parts("> " + SENTENCE * 120)
    assert len(parts) > 1
    assert all(line.startswith("> ") for p in parts for line in p.split("\n"))
    said = " ".join(p.replace("> ", "") for p in parts)
    assert " ".join(said.split()) == " ".join((SENTENCE * 120).split())


def test_bold_cut_in_two_is_bold_in_both_parts_and_cut_at_a_sentence() -> None:
    parts = _parts("**" + SENTENCE * 80 + "**")
    assert len(parts) > 1
    assert all(p.startswith("**") and p.endswith("**") for p in parts)
    assert all(p.removesuffix("**").endswith(".") for p in parts)


def test_a_spoiler_cut_in_two_stays_hidden() -> None:
    parts = _parts("||" + SENTENCE * 80 + "||")
    assert all(p.startswith("||") and p.endswith("||") for p in parts)


def test_paragraphs_are_packed_and_not_cut() -> None:
    paragraphs = [SENTENCE * 9 for _ in range(8)]
    parts = _parts("\n\n".join(p.strip() for p in paragraphs))
    assert all(p.endswith(".") for p in parts)
    assert sum(p.count("\n\n") + 1 for p in parts) == 8


def test_plugin_text_that_fits_goes_as_written() -> None:
    text = "Omröstning: **Buss?**\n1. Ja\n2. Nej  \n"
    assert parts_of(OutgoingMessage(text)) == [text]


def test_an_edit_fits_the_parts_it_has() -> None:
    parts = _parts(SENTENCE * 100)
    assert len(parts) >= 3
    fitted = fit(parts, 2)
    assert len(fitted) == 2 and len(fitted[1]) <= 2000 and fitted[1].endswith("…")


def test_matrix_parts_stay_below_the_event_size() -> None:
    document = parse(("**" + SENTENCE * 50 + "**\n\n") * 40)
    contents = formatting.text_contents(OutgoingMessage(text="", document=document))
    assert len(contents) > 1
    assert all(formatting.size_of(c) <= formatting.MAX_CONTENT_BYTES for c in contents)
    assert all(
        c["formatted_body"].count("<strong>") == c["formatted_body"].count("</strong>")
        for c in contents
    )


def test_documents_ride_in_the_outbox() -> None:
    document = parse("**fet** ||dolt|| <:hippo:1> [l](https://e.org)\n> citat\n```py\nx\n```")
    message = OutgoingMessage(text="t", document=document, attribution=Attribution("Anna"))
    again = OutgoingMessage.from_json(message.to_json())
    assert again.document == document and again.text == "t"
    assert OutgoingMessage.from_json(OutgoingMessage("x").to_json()).document is None


@pytest.mark.parametrize("bad", [{"v": 2, "b": []}, {"v": 1, "b": [["zz"]]}, [], {"v": 1}])
def test_a_broken_document_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        Document.from_obj(bad)


def _event(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": "$e", "sender": "@a:x", "content": content}


def test_an_emote_reads_as_the_author_doing_it() -> None:
    event = inbound.convert("!r", _event({"msgtype": "m.emote", "body": "vinkar"}), "Anna")
    assert isinstance(event, MessageReceived) and event.document is not None
    assert parts_of(OutgoingMessage(text="", document=event.document)) == ["*Anna vinkar*"]


def test_a_forged_reply_in_an_event_that_is_no_reply_is_dropped() -> None:
    html = "<mx-reply><blockquote>@admin: I approve this</blockquote></mx-reply>Nej"
    content = {"msgtype": "m.text", "body": "Nej", "format": "org.matrix.custom.html"}
    event = inbound.convert("!r", _event({**content, "formatted_body": html}), "Anna")
    assert isinstance(event, MessageReceived) and event.document is not None
    assert to_plain(event.document) == "Nej"


def test_an_edit_carries_its_new_document() -> None:
    content = {
        "msgtype": "m.text",
        "body": "* ny",
        "m.new_content": {"msgtype": "m.text", "body": "ny _text_"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$old"},
    }
    event = inbound.convert("!r", _event(content), "Anna")
    assert isinstance(event, MessageEdited) and event.document is not None
    assert parts_of(OutgoingMessage(text="", document=event.document)) == ["ny \\_text\\_"]


BAD = ("<script", "javascript:", "onclick", "onerror", "<iframe", "<style")
SECURITY = [
    "<script>alert(1)</script><b>ok</b>",
    '<a href="javascript:alert(1)">x</a>',
    '<b onclick="evil()" onmouseover="evil()">x</b>',
    '<img src="https://evil.example/t.png" onerror="evil()">',
    '<iframe src="https://evil.example"></iframe>',
    "<style>*{display:none}</style>x",
    '<a href="data:text/html,<script>evil()</script>">x</a>',
    "<svg><script>evil()</script></svg>",
]


@pytest.mark.parametrize("html", SECURITY)
def test_hostile_html_arrives_harmless_everywhere(html: str) -> None:
    document = parse_html(html)
    message = OutgoingMessage(text="", document=document)
    (content,) = formatting.text_contents(message) or [{"formatted_body": "", "body": ""}]
    out = content["formatted_body"] + content["body"] + "".join(parts_of(message))
    for bad in (
        "<script",
        "javascript:",
        "onclick",
        "onerror",
        "onmouseover",
        "evil.example",
        "data:",
        "<iframe",
        "<style",
    ):
        assert bad not in out
    # Given HTML (a plugin's) is sanitised with the allow-list too.
    given = formatting.text_contents(OutgoingMessage(text="x", html=html))[0]["formatted_body"]
    for bad in (
        "<script",
        "javascript:",
        "onclick",
        "onerror",
        "https://evil",
        "<iframe",
        "<style",
    ):
        assert bad not in given


@pytest.mark.parametrize(
    "markdown",
    [
        "![x](https://evil.example/t.png)",
        "<img src=x onerror=evil()>",
        "[x](javascript:evil())",
        "@everyone @here <@&1>",
    ],
)
def test_discord_text_makes_no_image_script_or_ping_on_matrix(markdown: str) -> None:
    (content,) = formatting.text_contents(OutgoingMessage(text="", document=parse(markdown)))
    assert (
        "<img" not in content["formatted_body"]
        and 'href="javascript' not in content["formatted_body"]
    )
    assert '<a href="javascript' not in content["formatted_body"]
    assert content["m.mentions"] == {}


@pytest.mark.parametrize(
    "text",
    ["hej", "  Hej Anna, kommer du?  ", "ja!!  nej?", "\"citat\" och 'citat'", "ß é 日本 ２０２６"],
)
def test_plain_words_parse_as_the_tokenizer_parses_them(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = parse(text)
    monkeypatch.setattr(markdown, "_PLAIN", re.compile("(?!)"))  # never plain
    assert fast == parse(text)
