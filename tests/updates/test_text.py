"""Feed text into core text: escaped, linkified, cut, and pinging nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.core.i18n import Translator
from plugins.updates import UpdatesPlugin, text
from plugins.updates.filters import passes
from plugins.updates.formatting import Formatter
from plugins.updates.model import Entry
from plugins.updates.storage import StoredEntry

ZWSP = "\u200b"


def test_mentions_are_broken_but_read_the_same() -> None:
    raw = "@everyone @Here @room <@123> <@!45> <@&67> <#89> mejl@example.org @anna"
    out = text.neutralise(raw)
    assert out.replace(ZWSP, "") == raw
    for ping in ("@everyone", "@Here", "@room", "<@1", "<@!", "<@&", "<#8"):
        assert ping not in out
    assert "mejl@example.org @anna" in out  # nothing else changes


def test_markup_in_feed_text_is_escaped_but_urls_stay_whole() -> None:
    assert text.escape("*fet* _kursiv_ `kod` [a](b) ||x||") == (
        r"\*fet\* \_kursiv\_ \`kod\` \[a\](b) \|\|x\|\|"
    )
    assert text.escape("# rubrik\n> citat") == "\\# rubrik\n\\> citat"
    assert text.escape("se https://x.example/a_b*c") == "se https://x.example/a_b*c"


def test_links_are_http_only_and_cannot_break_out() -> None:
    assert text.link("Rubrik", "javascript:alert(1)") == "Rubrik"
    assert text.link("Rubrik", "data:text/html,x") == "Rubrik"
    assert text.link("Rubrik", "https://x.example/a b") == "Rubrik"
    assert text.link("A ] (b)", "https://x.example/(p)") == (
        r"[A \] (b)](https://x.example/%28p%29)"
    )


def test_summary_keeps_lines_and_links_and_is_cut_at_a_boundary() -> None:
    html = (
        "<h2>Rubrik</h2><p>Första <b>stycket</b> med "
        '<a href="https://x.example/l">en länk</a>.</p><ul><li>ett</li><li>två</li></ul>'
    )
    assert text.summary(html, is_html=True, lines=5, chars=300) == (
        "Rubrik\nFörsta stycket med [en länk](https://x.example/l).\nett\ntvå"
    )
    assert text.summary(html, is_html=True, lines=2, chars=300) == (
        "Rubrik\nFörsta stycket med [en länk](https://x.example/l). …"
    )
    cut = text.summary(html, is_html=True, lines=5, chars=26)
    assert cut == "Rubrik\nFörsta stycket med …"  # never half a link
    cut = text.summary(html, is_html=True, lines=5, chars=22)
    assert cut == "Rubrik\nFörsta stycket …"  # at a whole word
    assert text.summary("x" * 50_000, is_html=False, lines=3, chars=10) == "xxxxxxxxxx …"


def test_a_huge_summary_costs_what_is_shown() -> None:
    html = "<p>" + "<a href='https://x.example/'>a</a>" * 200_000 + "</p>"
    out = text.summary(html, is_html=True, lines=3, chars=40)
    assert out.endswith("…") and out.count("[a]") <= 40


def test_a_date_in_the_future_or_none_shows_when_the_bot_saw_it() -> None:
    translator = Translator()
    translator.load_dir(Path(UpdatesPlugin.locales or ""))
    fmt = Formatter(translator, ZoneInfo("Europe/Stockholm"))
    now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    seen = (now - timedelta(hours=2)).timestamp()
    future = StoredEntry(
        "f", "e", Entry(None, None, "T", "", datetime(2100, 1, 1, tzinfo=UTC)), "", 0, seen
    )
    undated = StoredEntry("f", "e", Entry(None, None, "T", "", None), "", 0, seen)
    dated = StoredEntry("f", "e", Entry(None, None, "T", "", now - timedelta(days=3)), "", 0, seen)
    assert fmt.entry_date(future, now).timestamp() == seen
    assert fmt.entry_date(undated, now).timestamp() == seen
    assert fmt.entry_date(dated, now) == now - timedelta(days=3)
    assert "fredag 20 november kl. 10.00" in fmt.entry(dated, None, "sv", now)


def test_include_and_exclude_are_plain_whole_words() -> None:
    entry = Entry(None, None, "Kollektivtrafik i Mora", "Nya busslinjer (.*) i länet", None)
    assert passes(entry, ("kollektivtrafik",), ())
    assert passes(entry, ("MORA", "falun"), ())
    assert not passes(entry, ("trafik",), ())  # a part of a word is not the word
    assert not passes(entry, ("falun",), ())
    assert not passes(entry, (), ("busslinjer",))
    assert passes(entry, (), (".*",))  # no patterns: nothing to match
    assert passes(entry, ("i länet",), ("falun",))
