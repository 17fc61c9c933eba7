"""Filters are translated once (backend.conditions_of) and mean the same on both backends."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from soundalike.core.types import Track
from soundalike.search.backend import (
    AnyOf,
    Conditions,
    HasId,
    InRange,
    MatchAny,
    MatchValue,
    Where,
    conditions_of,
)
from soundalike.search.store import Store


def test_no_filter_and_an_empty_filter_mean_no_conditions() -> None:
    assert conditions_of(None) is None
    assert conditions_of(Where()) is None


def test_values_of_one_type_are_one_match() -> None:
    assert conditions_of(Where(equals={"genre": ("rock", "pop")})) == Conditions(
        must=(MatchAny("genre", ("rock", "pop")),), must_not=()
    )


def test_values_of_mixed_types_may_match_any_of_several_conditions() -> None:
    where = Where(equals={"extra.bpm": ("140", 140, 2.5, 3.0, True)})
    (any_of,) = conditions_of(where).must  # type: ignore[union-attr]
    assert any_of == AnyOf(
        (
            MatchAny("extra.bpm", ("140",)),
            MatchAny("extra.bpm", (140,)),
            # Floats match by range, so that 3.0 also finds an integer 3 and a float 3.0.
            InRange("extra.bpm", gte=2.5, lte=2.5),
            InRange("extra.bpm", gte=3.0, lte=3.0),
            MatchValue("extra.bpm", True),
        )
    )


def test_exclusions_bounds_and_ids() -> None:
    where = Where(
        not_equals={"artist_key": ("a", "b")},
        at_least={"track_count": 3},
        only_ids=frozenset({"id-2", "id-1"}),
        exclude_ids=frozenset({"id-9"}),
    )
    assert conditions_of(where) == Conditions(
        must=(InRange("track_count", gte=3.0), HasId(("id-1", "id-2"))),
        must_not=(MatchAny("artist_key", ("a", "b")), HasId(("id-9",))),
    )


def test_an_empty_id_set_is_kept_so_that_it_matches_nothing() -> None:
    assert conditions_of(Where(only_ids=frozenset())) == Conditions(must=(HasId(()),), must_not=())


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"bpm": 90.0}, {"Slow"}),
        ({"rating": 4.5}, {"Fast"}),
        ({"rating": [4.5, 3.0]}, {"Slow", "Fast"}),
        ({"live": True}, {"Fast"}),
        ({"live": [False, "yes"]}, {"Slow"}),
    ],
)
def test_float_and_boolean_filters_on_both_backends(
    store: Store,
    backend_kind: str,
    request: pytest.FixtureRequest,
    make_track: Callable[..., Track],
    filters: dict,
    expected: set[str],
) -> None:
    if backend_kind == "edge" and "live" in filters:
        # Strict: an XPASS fails, as a reminder to drop the mark once Edge matches booleans.
        reason = "qdrant-edge-py 0.9 turns MatchValue(True) into MatchValue(1): no match"
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    slow = make_track("Slow", 1)
    slow.extra = {"bpm": 90, "rating": 3.0, "live": False}
    fast = make_track("Fast", 1)
    fast.extra = {"bpm": 140, "rating": 4.5, "live": True}
    store.upsert_tracks([slow, fast])
    hits = store.search_tracks(np.ones(16), limit=10, filters=filters)
    assert {h.track.artist for h in hits} == expected
