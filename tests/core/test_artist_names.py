"""Artist keys and close-name suggestions."""

from __future__ import annotations

import pytest

from soundalike.core.artist_names import artist_key, key_prefix, suggest
from soundalike.core.errors import InvalidRequest


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Éclair Ensemble", "eclair  ensemble"),
        ("  Björk ", "bjork"),
        ("MOTÖRHEAD", "motorhead"),
        ("Sigur\tRós", "sigur ros"),
        ("Die Ärzte", "DIE ARZTE"),
        ("Straße", "STRASSE"),
        ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
    ],
)
def test_keys_ignore_case_accents_and_spacing(a: str, b: str) -> None:
    assert artist_key(a) == artist_key(b)


def test_key_is_the_folded_name() -> None:
    assert artist_key("  Éclair   Ensemble\n") == "eclair ensemble"
    assert artist_key("Blur") != artist_key("Blurt")


@pytest.mark.parametrize("blank", ["", "   ", "\t\n", "\u0301"])
def test_empty_names_are_refused(blank: str) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        artist_key(blank)


def test_key_prefix_folds_without_refusing_empty() -> None:
    assert key_prefix("ÉCL") == "ecl"
    assert key_prefix("  ") == ""


CATALOGUE = {
    artist_key(name): name
    for name in [
        "The Beatles",
        "The Beach Boys",
        "Radiohead",
        "Radio Birdman",
        "Pink Floyd",
        "Éclair Ensemble",
        "Bach",
        "ABBA",
    ]
}


def test_suggestions_find_misspellings_best_first() -> None:
    assert suggest("beatls", CATALOGUE)[0] == "The Beatles"
    assert suggest("radiohed", CATALOGUE)[0] == "Radiohead"
    assert suggest("ECLAIR", CATALOGUE) == ["Éclair Ensemble"]


def test_suggestions_return_display_names_within_the_limit() -> None:
    found = suggest("the bea", CATALOGUE, limit=2)
    assert len(found) == 2
    assert set(found) <= set(CATALOGUE.values())


def test_unrelated_names_get_no_suggestions() -> None:
    assert suggest("zzzz qqq", CATALOGUE) == []
    assert suggest("", CATALOGUE) == []
    assert suggest("bach", {}) == []
