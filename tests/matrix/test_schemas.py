"""nio's checks compiled (bot/adapters/matrix/schemas.py) decide as nio's own do.

Differential: every schema nio has, instances drawn from the schema itself
(hypothesis-jsonschema) and the same instances damaged at one place, each checked by
nio's jsonschema validator and by the compiled one. Both accept or both refuse, and
leave the same instance behind (the defaults nio relies on filled in). Should nio's own
check crash on some input rather than refuse it, the compiled one must refuse it.
"""

from __future__ import annotations

import copy
from typing import Any

import nio.responses
import nio.schemas
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema.exceptions import ValidationError

from bot.adapters.matrix import schemas

schemas.install()

ALL = sorted(n for n, s in vars(nio.schemas.Schemas).items() if isinstance(s, dict))
# nio's delete_devices schema is malformed (a "required" among its properties): it keeps
# nio's own check, so there is nothing to compare.
NOT_COMPILED = {"delete_devices"}
NAMES = [n for n in ALL if n not in NOT_COMPILED]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def outcome(check: Any, instance: Any, schema: dict[str, Any]) -> tuple[str, Any]:
    mine = copy.deepcopy(instance)
    try:
        check(mine, schema)
    except ValidationError:
        return "refused", mine
    except Exception as exc:  # nio's own check crashing on hostile input
        return f"crashed: {type(exc).__name__}", mine
    return "accepted", mine


def same_decision(schema: dict[str, Any], instance: Any) -> None:
    # nio's validator writes into the defaults of the schema it is given: each time on a
    # fresh copy, so that what it did before does not decide what it does now.
    theirs, their_result = outcome(schemas.nio_validate_json, instance, copy.deepcopy(schema))
    ours, our_result = outcome(schemas.validate_json, instance, schema)
    if theirs.startswith("crashed"):
        assert ours == "refused", (theirs, instance)
        return
    assert ours == theirs, instance
    if ours == "accepted":
        assert our_result == their_result  # the same defaults filled in


def generable(node: Any) -> Any:
    """The schema as hypothesis-jsonschema can read it: nio has a Python set where a
    subschema belongs (m.room.avatar's mimetype); both validators ignore what it means,
    the generator cannot serialise it."""
    if isinstance(node, dict):
        return {k: generable(v) for k, v in node.items() if not isinstance(v, set)}
    if isinstance(node, list):
        return [generable(v) for v in node]
    return node


@st.composite
def damaged(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    """A valid instance with one value somewhere in it replaced by arbitrary JSON."""
    instance = draw(from_schema(schema))
    places: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                places.append((node, key))
                walk(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                places.append((node, i))
                walk(value)

    walk(instance)
    if not places:
        return draw(JSON)
    parent, key = draw(st.sampled_from(places))
    parent[key] = draw(JSON)
    return instance


CHECKED = settings(
    max_examples=15,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("name", NAMES)
def test_compiled_checks_decide_as_nios_own(name: str) -> None:
    schema = getattr(nio.schemas.Schemas, name)
    drawn = generable(schema)

    @CHECKED
    @given(st.one_of(from_schema(drawn), damaged(drawn), JSON))
    def check(instance: Any) -> None:
        same_decision(schema, instance)

    check()


def test_every_schema_but_the_malformed_one_is_compiled() -> None:
    uncompiled = {n for n in ALL if schemas.compiled(getattr(nio.schemas.Schemas, n)) is None}
    assert uncompiled == NOT_COMPILED
    assert len(NAMES) > 90  # nio 0.26 has 97


def test_nio_calls_the_compiled_check() -> None:
    assert nio.responses.validate_json is schemas.validate_json
    assert nio.schemas.validate_json is schemas.validate_json
    # Everything but the position left out: nio reads the rest from the defaults the
    # check fills in.
    answer = nio.responses.SyncResponse.from_dict({"next_batch": "s1"})
    assert isinstance(answer, nio.responses.SyncResponse)
    assert answer.next_batch == "s1"
    assert answer.rooms.join == {}


def test_defaults_within_defaults_are_filled_in_as_nio_fills_them() -> None:
    sync = nio.schemas.Schemas.sync
    ours: dict[str, Any] = {"next_batch": "s1"}
    theirs: dict[str, Any] = {"next_batch": "s1"}
    schemas.validate_json(ours, sync)
    schemas.nio_validate_json(theirs, copy.deepcopy(sync))
    assert ours == theirs
    assert ours["rooms"] == {"invite": {}, "join": {}, "leave": {}}
    # A fresh default each time: one answer's rooms are not another's.
    again: dict[str, Any] = {"next_batch": "s2"}
    schemas.validate_json(again, sync)
    assert again["rooms"] is not ours["rooms"]
    refused = nio.responses.SyncResponse.from_dict({"next_batch": 5})
    assert isinstance(refused, nio.responses.SyncError)


def test_a_malformed_sync_is_refused_as_nio_refuses_it() -> None:
    # The compiled check raises what nio catches: the answer becomes nio's SyncError,
    # not an exception out of the sync loop.
    for hostile in (
        {"next_batch": "s1", "rooms": []},
        {"next_batch": "s1", "rooms": {"join": {"!r:x": []}}},
        {"next_batch": "s1", "rooms": {"join": {"!r:x": {"timeline": {"events": 5}}}}},
    ):
        with pytest.raises(ValidationError):
            schemas.nio_validate_json(copy.deepcopy(hostile), nio.schemas.Schemas.sync)
        refused = nio.responses.SyncResponse.from_dict(hostile)
        assert isinstance(refused, nio.responses.SyncError), hostile
