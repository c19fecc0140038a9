"""Counting ballots, and the per-association breakdown that never shows a small group.

The folding rule (docs/polls.md): an association with fewer than `minimum` voters is
folded into "others". Because the total is always shown, "others" can be worked out as
the total minus the groups shown, so leaving it out would hide nothing: when "others"
would hold between 1 and `minimum - 1` voters, the smallest association still shown is
folded in too (fewest voters first, then by id), again until "others" is empty or holds
at least `minimum`. A breakdown that would then show a single group (the total again) or
nothing is left out altogether. Pure functions: no I/O, easy to check by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

OTHERS: Final = ""  # the id of the folded group


@dataclass(frozen=True, slots=True)
class Group:
    association: str  # OTHERS for the folded group
    voters: int
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Tally:
    voters: int
    counts: Mapping[str, int]  # answer id -> how many chose it
    groups: tuple[Group, ...]  # empty: no breakdown may be shown

    def share(self, answer: str) -> float:
        """The share of voters who chose `answer` (with several choices each, the shares
        add up to more than 1)."""
        return self.counts.get(answer, 0) / self.voters if self.voters else 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "voters": self.voters,
                "counts": dict(self.counts),
                "groups": [[g.association, g.voters, dict(g.counts)] for g in self.groups],
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Tally:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            voters=int(data["voters"]),
            counts={str(k): int(v) for k, v in data["counts"].items()},
            groups=tuple(
                Group(str(a), int(n), {str(k): int(v) for k, v in c.items()})
                for a, n, c in data["groups"]
            ),
        )


def count(
    ballots: Iterable[tuple[str, Sequence[str]]],
    answer_ids: Sequence[str],
    order: Sequence[str],
    minimum: int,
) -> Tally:
    """The tally of `(association, answers)` ballots, one per voter. `order` is the order
    associations are listed in; `minimum` the smallest group the breakdown may show."""
    totals: Counter[str] = Counter()
    per: dict[str, Counter[str]] = {}
    voters: Counter[str] = Counter()
    known = set(answer_ids)
    for association, answers in ballots:
        chosen = [a for a in dict.fromkeys(answers) if a in known]
        if not chosen:
            continue
        voters[association] += 1
        totals.update(chosen)
        per.setdefault(association, Counter()).update(chosen)
    groups = fold(
        [Group(a, voters[a], per[a]) for a in _ordered(voters, order)],
        answer_ids,
        minimum,
    )
    return Tally(
        voters=sum(voters.values()),
        counts={a: totals.get(a, 0) for a in answer_ids},
        groups=groups,
    )


def _ordered(voters: Mapping[str, int], order: Sequence[str]) -> list[str]:
    rank = {a: i for i, a in enumerate(order)}
    return sorted(voters, key=lambda a: (rank.get(a, len(rank)), a))


def fold(groups: Sequence[Group], answer_ids: Sequence[str], minimum: int) -> tuple[Group, ...]:
    """The breakdown to show, by the rule in the module docstring."""
    shown = [g for g in groups if g.voters >= minimum]
    folded = [g for g in groups if g.voters < minimum]
    while shown and 0 < sum(g.voters for g in folded) < minimum:
        smallest = min(shown, key=lambda g: (g.voters, g.association))
        shown.remove(smallest)
        folded.append(smallest)
    others_voters = sum(g.voters for g in folded)
    result = list(shown)
    if others_voters >= minimum:
        counts: Counter[str] = Counter()
        for g in folded:
            counts.update(g.counts)
        result.append(Group(OTHERS, others_voters, {a: counts.get(a, 0) for a in answer_ids}))
    if len(result) < 2:
        return ()
    return tuple(
        Group(g.association, g.voters, {a: g.counts.get(a, 0) for a in answer_ids}) for g in result
    )
