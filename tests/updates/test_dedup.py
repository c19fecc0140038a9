"""Knowing an entry again: by guid, else link, else content; never twice in a fetch."""

from __future__ import annotations

from plugins.updates.dedup import Known, match
from plugins.updates.model import POSTED, Entry


def known_of(feed: str, entries: list[Entry]) -> list[Known]:
    found = match(feed, entries, [])
    return [Known(i, e.guid, e.link, e.title, e.digest, POSTED, 0) for i, e in found.new]


def test_guid_then_link_then_content() -> None:
    first = [
        Entry("g1", "https://x.example/1", "Ett", "", None),
        Entry(None, "https://x.example/2", "Två", "", None),
        Entry(None, None, "Tre", "text", None),
    ]
    known = known_of("f", first)
    assert len(known) == 3
    again = match("f", first, known)
    assert again.new == [] and len(again.unchanged) == 3
    # The same entries with a new guid, a retitled one, and one new.
    later = [
        Entry("g1-new", "https://x.example/1", "Ett", "", None),  # guid changed, link kept
        Entry(None, "https://x.example/2", "Två, rättad", "", None),
        Entry(None, None, "Tre", "text", None),
        Entry(None, None, "Fyra", "text", None),
    ]
    found = match("f", later, known)
    assert [e.title for _, e in found.new] == ["Fyra"]
    assert [(k.guid, e.guid) for k, e in found.moved] == [("g1", "g1-new")]
    assert [(k.link, e.title) for k, e in found.changed] == [("https://x.example/2", "Två, rättad")]
    assert [k.digest for k in found.unchanged] == [later[2].digest]


def test_a_link_shared_by_many_entries_identifies_none_of_them() -> None:
    front = "https://x.example/"
    first = [Entry(f"g{i}", front, f"Nyhet {i}", "", None) for i in range(3)]
    known = known_of("f", first)
    later = [Entry(f"g{i}", front, f"Nyhet {i}", "", None) for i in range(5)]
    assert [e.guid for _, e in match("f", later, known).new] == ["g3", "g4"]
    # One entry at a time, always the front page: a new title and guid is a new entry.
    assert [e.guid for _, e in match("f", [Entry("g9", front, "Ny", "", None)], known).new] == [
        "g9"
    ]


def test_a_feed_of_one_entry_at_a_time_with_one_link() -> None:
    front = "https://x.example/"
    known = known_of("f", [Entry("g1", front, "Första", "", None)])
    assert len(match("f", [Entry("g2", front, "Andra", "", None)], known).new) == 1
    # The same title under a new guid: the site changed its guids, not its news.
    assert match("f", [Entry("g2", front, "Första", "", None)], known).new == []


def test_two_entries_with_the_same_words_but_guids_of_their_own_stay_two() -> None:
    same = [
        Entry("a", None, "Pressmeddelande", "", None),
        Entry("b", None, "Pressmeddelande", "", None),
    ]
    assert len(match("f", same, []).new) == 2


def test_an_entry_twice_in_one_fetch_counts_once() -> None:
    twice = [Entry("g1", None, "Ett", "", None), Entry("g1", None, "Ett igen", "", None)]
    found = match("f", twice, [])
    assert len(found.new) == 1 and found.repeated == 1


def test_ids_are_per_feed() -> None:
    entry = [Entry("g1", None, "Ett", "", None)]
    assert match("a", entry, []).new[0][0] != match("b", entry, []).new[0][0]
