"""The log check is not hollow: a leaking record is found, a clean one is not."""

from __future__ import annotations

from tests.log_watch import Kept, leaks, pieces


def test_a_leaking_record_is_caught() -> None:
    texts = {p: "message text" for p in pieces('!poll new "Ska vi flytta mötet?" Ja Nej')}
    leak = Kept("plugins.polls", "INFO", "x.py:1", "created: Ska vi flytta mötet?")
    clean = Kept("plugins.polls", "INFO", "x.py:2", "poll 3 created in 2 room(s)")
    debug = Kept("plugins.polls", "DEBUG", "x.py:3", "Ska vi flytta mötet?")
    vote = Kept("plugins.polls", "INFO", "x.py:4", "vote", choices=(("2",),))
    found = leaks([leak, clean, debug, vote], texts, {("2",)})
    assert [f.record.where for f in found] == ["x.py:1", "x.py:4"]
