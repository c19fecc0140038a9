"""The count and its folding rule, checked by hand on small cases."""

from __future__ import annotations

import time

from plugins.polls.tally import OTHERS, Group, Tally, count, fold

IDS = ("1", "2")
ORDER = ("a", "b", "c", "d")


def ballots(spec: dict[str, list[str]]) -> list[tuple[str, tuple[str, ...]]]:
    """{"a": ["1", "1", "2"]}: three voters in a, two chose 1, one chose 2."""
    return [(assoc, tuple(choice.split(","))) for assoc, cs in spec.items() for choice in cs]


def shown(tally: Tally) -> list[tuple[str, int]]:
    return [(g.association, g.voters) for g in tally.groups]


def test_counts_and_shares() -> None:
    tally = count(ballots({"a": ["1", "1", "2"], "b": ["2", "1,2"]}), IDS, ORDER, 3)
    assert tally.voters == 5
    assert dict(tally.counts) == {"1": 3, "2": 3}
    assert tally.share("1") == 3 / 5  # with several choices, shares add up to more than 1


def test_a_group_of_two_is_folded_with_another_small_one() -> None:
    tally = count(ballots({"a": ["1"] * 4, "b": ["2", "2"], "c": ["1"]}), IDS, ORDER, 3)
    assert shown(tally) == [("a", 4), (OTHERS, 3)]
    assert dict(tally.groups[1].counts) == {"1": 1, "2": 2}


def test_others_too_small_takes_in_the_smallest_group_shown() -> None:
    # b alone in "others" (2) could be read off as total minus a and c: c joins it.
    tally = count(ballots({"a": ["1"] * 5, "b": ["2", "2"], "c": ["1", "2", "2"]}), IDS, ORDER, 3)
    assert shown(tally) == [("a", 5), (OTHERS, 5)]
    assert dict(tally.groups[1].counts) == {"1": 1, "2": 4}


def test_no_breakdown_when_it_would_repeat_the_total_or_show_too_few() -> None:
    assert count(ballots({"a": ["1"] * 6}), IDS, ORDER, 3).groups == ()
    assert count(ballots({"a": ["1"] * 6, "b": ["2"] * 2}), IDS, ORDER, 3).groups == ()
    assert count(ballots({"a": ["1"], "b": ["2"]}), IDS, ORDER, 3).groups == ()
    assert count([], IDS, ORDER, 3) == Tally(0, {"1": 0, "2": 0}, ())


def test_fold_keeps_big_groups_and_a_larger_minimum() -> None:
    groups = [Group("a", 5, {"1": 5}), Group("b", 4, {"2": 4}), Group("c", 3, {"1": 3})]
    assert [g.association for g in fold(groups, IDS, 3)] == ["a", "b", "c"]
    assert [(g.association, g.voters) for g in fold(groups, IDS, 5)] == [("a", 5), (OTHERS, 7)]


def test_unknown_answers_and_repeats_in_a_ballot_are_not_counted() -> None:
    tally = count([("a", ("1", "1", "9")), ("a", ("9",))], IDS, ORDER, 3)
    assert tally.voters == 1 and dict(tally.counts) == {"1": 1, "2": 0}


def test_round_trip_through_json() -> None:
    tally = count(ballots({"a": ["1"] * 4, "b": ["2"] * 3}), IDS, ORDER, 3)
    assert Tally.from_json(tally.to_json()) == tally


def test_five_thousand_ballots_are_counted_in_milliseconds() -> None:
    spec = {a: ["1", "2", "1,2"] * 417 for a in ("a", "b", "c", "d")}
    many = ballots(spec)[:5000]
    assert len(many) == 5000
    started = time.perf_counter()
    tally = count(many, IDS, ORDER, 3)
    elapsed = time.perf_counter() - started
    assert tally.voters == 5000
    assert elapsed < 0.5, elapsed
