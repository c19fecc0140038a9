"""Parsing feeds from bytes: every format we promise, and every bad input with a clear
reason and a bounded cost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.fetching import FetchError
from plugins.updates import text
from plugins.updates.model import ParsedFeed
from plugins.updates.parsing import parse_feed
from tests.updates.support import Item, atom, json_feed, rss

WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ITEMS = [
    Item("Andra", "tag:region.example,2026:2", "https://region.example/2", "<p>Två</p>", WHEN),
    Item(
        "Första",
        "tag:region.example,2026:1",
        "https://region.example/1",
        "<p>Ett</p>",
        WHEN - timedelta(days=1),
    ),
]


def parse(body: bytes, content_type: str | None = None, **caps: int) -> ParsedFeed:
    return parse_feed(
        body,
        content_type=content_type,
        url="https://region.example/feed",
        max_entries=caps.get("max_entries", 100),
        summary_lines=caps.get("summary_lines", 3),
        summary_chars=caps.get("summary_chars", 300),
    )


def reason_of(body: bytes, content_type: str | None = None) -> str:
    with pytest.raises(FetchError) as caught:
        parse(body, content_type)
    assert caught.value.kind == "bad_content"
    return caught.value.reason_key


@pytest.mark.parametrize(
    ("build", "kind"), [(rss, "rss20"), (atom, "atom10"), (json_feed, "json1.1")]
)
def test_rss_atom_and_json_feed_give_the_same_entries(build: object, kind: str) -> None:
    assert callable(build)
    parsed = parse(build(ITEMS, title="Region & län"))
    assert parsed.kind == kind
    assert parsed.title == "Region & län"
    got = [(e.guid, e.link, e.title, e.summary, e.published) for e in parsed.entries]
    assert got == [(i.guid, i.link, i.title, i.summary[3:-4], i.published) for i in ITEMS]


def test_rss_091_with_netscapes_dtd_and_rss_10() -> None:
    rss091 = b"""<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
 "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Gammal</title><link>https://old.example/</link>
<item><title>Nyhet</title><link>https://old.example/1</link><description>Text</description></item>
</channel></rss>"""
    parsed = parse(rss091)
    assert parsed.kind.startswith("rss09")
    assert [(e.title, e.link, e.summary) for e in parsed.entries] == [
        ("Nyhet", "https://old.example/1", "Text")
    ]
    rss10 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="https://rdf.example/"><title>RDF</title><link>https://rdf.example/</link>
<description>d</description></channel>
<item rdf:about="https://rdf.example/1"><title>Ett</title><link>https://rdf.example/1</link>
<description>Text ett</description></item></rdf:RDF>"""
    parsed = parse(rss10)
    assert parsed.kind == "rss10"
    assert [(e.guid, e.title) for e in parsed.entries] == [("https://rdf.example/1", "Ett")]


def test_html_served_as_a_feed_has_its_own_reason() -> None:
    page = b"<!DOCTYPE html><html><head><title>Start</title></head><body>Hej</body></html>"
    assert reason_of(page, "text/html") == "updates.reason.html"
    assert reason_of(b"<html><body><p>x</p></body></html>") == "updates.reason.html"


def test_neither_a_feed_nor_html_nor_json_feed() -> None:
    assert reason_of(b"<note><to>x</to></note>") == "updates.reason.not_feed"
    assert reason_of(b'{"version": "1", "items": []}') == "updates.reason.not_feed"
    assert reason_of(b"{not json") == "updates.reason.bad_json"
    assert reason_of(b"[" * 100_000) == "updates.reason.bad_json"  # nesting, bounded
    assert reason_of(b"  \n ") == "updates.reason.empty"


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [' + "".join(entities) + "]>\n"
        '<rss version="2.0"><channel><title>&lol9;</title></channel></rss>'
    ).encode()
    started = time.perf_counter()
    assert reason_of(bomb) == "updates.reason.entities"
    # Expanded it would be 10**9 "lol"s; refused it costs a parse of 700 bytes.
    assert time.perf_counter() - started < 1.0
    # Not well-formed after the declarations: still refused.
    assert reason_of(bomb.replace(b"</channel>", b"</chanel>")) == "updates.reason.entities"


def test_ten_thousand_entries_are_read_up_to_the_cap() -> None:
    many = [Item(f"N {i}", f"g{i}", f"https://x.example/{i}") for i in range(10_000)]
    started = time.perf_counter()
    parsed = parse(rss(many), max_entries=500)
    assert time.perf_counter() - started < 30
    assert len(parsed.entries) == 500 and parsed.dropped == 9_500
    assert parsed.entries[0].title == "N 0"


def test_entries_without_guid_or_link_and_dates_that_mean_nothing() -> None:
    body = """<rss version="2.0"><channel><title>T</title>
<item><title>Utan allt</title><description>Bara text</description>
<pubDate>inte ett datum</pubDate></item>
<item><title>Framtid</title><pubDate>Mon, 01 Jan 2199 00:00:00 GMT</pubDate></item>
<item><title>Långt fram</title><pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate></item>
<item></item>
</channel></rss>""".encode()
    parsed = parse(body)
    assert [(e.title, e.guid, e.link) for e in parsed.entries] == [
        ("Utan allt", None, None),
        ("Framtid", None, None),
        ("Långt fram", None, None),
    ]
    assert parsed.unusable == 1  # neither title nor content
    assert parsed.entries[0].published is None
    # Kept as the feed says; the post shows when the bot saw it (test_formatting).
    assert parsed.entries[2].published == datetime(2100, 1, 1, tzinfo=UTC)
    assert parsed.entries[0].primary.startswith("h:")


def test_scripts_javascript_links_and_mentions_never_survive() -> None:
    evil = Item(
        "@everyone <@&1234> läs!",
        "g1",
        "javascript:alert(1)",
        '<p>Hej<script>alert("x")</script> <a href="javascript:alert(2)">klick</a>'
        ' <a href="https://ok.example/a">bra</a> <img src=x onerror=alert(3)>'
        "<style>p { color: red }</style> @here</p>",
    )
    for build in (rss, atom, json_feed):
        (entry,) = parse(build([evil])).entries
        assert entry.link is None
        # Titles are kept as they are and escaped where they are shown.
        assert entry.title == "@everyone <@&1234> läs!"
        shown = text.link(entry.title, entry.link)
        assert shown == "@\u200beveryone <\u200b@&1234> läs!"
        assert "alert" not in entry.summary and "color" not in entry.summary
        assert "javascript" not in entry.summary
        assert entry.summary == "Hej klick [bra](https://ok.example/a) @\u200bhere"


def test_plain_text_content_stays_text() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
<entry><id>1</id><title>Tecken</title>
<content type="text">a &lt;b&gt; *c* [d](e)</content></entry></feed>"""
    (entry,) = parse(body).entries
    assert entry.summary == r"a <b> \*c\* \[d\](e)"
