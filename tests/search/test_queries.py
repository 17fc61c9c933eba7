"""The queries, on a small store of hand-made unit vectors whose cosines are known exactly.

Directions live in the first four of the 16 dimensions (e0..e3). Artists with two tracks have
them at c ± 0.1·e3 (normalised), so their centroid is exactly c:

    Alpha  (2 tracks, rock)  centroid e0               cos with Alpha 1.0
    Beta   (1 track,  jazz)  centroid 0.8·e0 + 0.6·e1  cos with Alpha 0.8
    Gamma  (2 tracks, pop)   centroid 0.6·e0 + 0.8·e1  cos with Alpha 0.6
    Delta  (1 track,  rock)  centroid e2               cos with Alpha 0.0
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from soundalike.core.errors import ArtistNotFound, InvalidRequest, TrackNotFound
from soundalike.core.identity import track_id
from soundalike.core.types import Track
from soundalike.search import queries
from soundalike.search.store import Store

DIM = 16
SPREAD = 0.1
NORM = math.sqrt(1 + SPREAD**2)


def direction(*coords: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float64)
    vector[: len(coords)] = coords
    return vector / np.linalg.norm(vector)


E3 = direction(0, 0, 0, 1)
CENTROIDS = {
    "Alpha": direction(1),
    "Beta": direction(0.8, 0.6),
    "Gamma": direction(0.6, 0.8),
    "Delta": direction(0, 0, 1),
}
GENRES = {"Alpha": "rock", "Beta": "jazz", "Gamma": "pop", "Delta": "rock"}
TRACK_COUNTS = {"Alpha": 2, "Beta": 1, "Gamma": 2, "Delta": 1}


def _track_vectors(name: str) -> list[np.ndarray]:
    centre = CENTROIDS[name]
    if TRACK_COUNTS[name] == 1:
        return [centre]
    return [direction(*(centre + SPREAD * E3)), direction(*(centre - SPREAD * E3))]


def _track(name: str, number: int, vector: np.ndarray) -> Track:
    key = name.lower()
    return Track(
        track_id=track_id(f"hash-{key}-{number}", key),
        artist=name,
        artist_key=key,
        vector=vector.tolist(),
        title=f"{name} {number}",
        genre=GENRES[name],
        path=f"/music/{name}/{number}.flac",
    )


@pytest.fixture
def catalogue(store: Store) -> dict[str, Track]:
    """The four artists; returns their tracks by title ("Alpha 1" is Alpha at e0 + 0.1·e3)."""
    tracks = {
        f"{name} {n}": _track(name, n, vector)
        for name in CENTROIDS
        for n, vector in enumerate(_track_vectors(name), start=1)
    }
    store.upsert_tracks(list(tracks.values()))
    store.recompute_centroids(name.lower() for name in CENTROIDS)
    return tracks


def _names(hits: list) -> list[str]:
    return [hit.artist.name for hit in hits]


def _titles(hits: list) -> list[str]:
    return [hit.track.title for hit in hits]


# --- artists like X ----------------------------------------------------------------------------


def test_artists_like_excludes_x_and_ranks_by_centroid_cosine(
    store: Store, catalogue: dict[str, Track]
) -> None:
    similar = queries.artists_like(store, "alpha")
    assert similar.artist.name == "Alpha"
    assert _names([r.hit for r in similar.results]) == ["Beta", "Gamma", "Delta"]
    scores = [r.hit.score for r in similar.results]
    assert scores == pytest.approx([0.8, 0.6, 0.0], abs=1e-4)
    assert all(r.closest_pairs == [] for r in similar.results)


def test_artists_like_limit_and_min_tracks(store: Store, catalogue: dict[str, Track]) -> None:
    assert _names([r.hit for r in queries.artists_like(store, "Alpha", limit=1).results]) == [
        "Beta"
    ]
    two_or_more = queries.artists_like(store, "Alpha", min_tracks=2)
    assert _names([r.hit for r in two_or_more.results]) == ["Gamma"]
    with pytest.raises(InvalidRequest, match="min_tracks"):
        queries.artists_like(store, "Alpha", min_tracks=0)
    with pytest.raises(InvalidRequest, match="limit"):
        queries.artists_like(store, "Alpha", limit=0)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"genre": "rock"}, ["Delta"]),  # Alpha is rock too, but never its own neighbour
        ({"genre": ["jazz", "pop"]}, ["Beta", "Gamma"]),
        ({"genre": "polka"}, []),
    ],
)
def test_artists_like_filters_on_the_artists_tracks(
    store: Store, catalogue: dict[str, Track], filters: dict, expected: list[str]
) -> None:
    similar = queries.artists_like(store, "Alpha", filters=filters)
    assert _names([r.hit for r in similar.results]) == expected


def test_artists_like_explains_with_the_closest_track_pairs(
    store: Store, catalogue: dict[str, Track]
) -> None:
    similar = queries.artists_like(store, "Gamma", limit=1, explain=True)
    (beta,) = similar.results
    assert beta.hit.artist.name == "Beta"
    # Beta has one track, so one pair; both Gamma tracks are 0.96/NORM from it.
    (pair,) = beta.closest_pairs
    assert pair.other_track.title == "Beta 1"
    assert pair.track.title in {"Gamma 1", "Gamma 2"}
    assert pair.score == pytest.approx(0.96 / NORM, abs=1e-4)


def test_closest_track_pairs_use_each_track_once(catalogue: dict[str, Track]) -> None:
    alpha = [catalogue["Alpha 1"], catalogue["Alpha 2"]]
    gamma = [catalogue["Gamma 1"], catalogue["Gamma 2"]]
    pairs = queries.closest_track_pairs(alpha, gamma, 3)
    # Same-side spreads pair up first, (0.6 + 0.01) / 1.01 each; then no track is left.
    assert {(p.track.title, p.other_track.title) for p in pairs} == {
        ("Alpha 1", "Gamma 1"),
        ("Alpha 2", "Gamma 2"),
    }
    assert [p.score for p in pairs] == pytest.approx([0.61 / 1.01] * 2, abs=1e-5)
    assert queries.closest_track_pairs(alpha, [], 3) == []


# --- tracks like a track ------------------------------------------------------------------------


def test_tracks_like_never_returns_the_track_itself(
    store: Store, catalogue: dict[str, Track]
) -> None:
    seed = catalogue["Alpha 1"]
    track, hits = queries.tracks_like(store, seed.track_id, max_per_artist=None)
    assert track.title == "Alpha 1" and track.vector is not None
    assert _titles(hits) == ["Alpha 2", "Beta 1", "Gamma 1", "Gamma 2", "Delta 1"]
    expected = [0.99 / 1.01, 0.8 / NORM, 0.61 / 1.01, 0.59 / 1.01, 0.0]
    assert [h.score for h in hits] == pytest.approx(expected, abs=1e-4)


def test_tracks_like_can_exclude_the_same_artist(store: Store, catalogue: dict[str, Track]) -> None:
    seed = catalogue["Alpha 1"]
    _, hits = queries.tracks_like(store, seed.track_id, exclude_same_artist=True)
    assert _titles(hits) == ["Beta 1", "Gamma 1", "Gamma 2", "Delta 1"]


def test_tracks_like_caps_tracks_per_artist(store: Store, catalogue: dict[str, Track]) -> None:
    seed = catalogue["Alpha 1"]
    _, hits = queries.tracks_like(store, seed.track_id, max_per_artist=1)
    assert _titles(hits) == ["Alpha 2", "Beta 1", "Gamma 1", "Delta 1"]
    _, hits = queries.tracks_like(store, seed.track_id, limit=3, max_per_artist=1)
    assert _titles(hits) == ["Alpha 2", "Beta 1", "Gamma 1"]
    with pytest.raises(InvalidRequest, match="max_per_artist"):
        queries.tracks_like(store, seed.track_id, max_per_artist=0)


def test_tracks_like_filters(store: Store, catalogue: dict[str, Track]) -> None:
    seed = catalogue["Alpha 1"]
    _, hits = queries.tracks_like(store, seed.track_id, filters={"genre": "rock"})
    assert _titles(hits) == ["Alpha 2", "Delta 1"]


def test_the_cap_fetches_further_when_one_artist_fills_the_first_page(
    store: Store, catalogue: dict[str, Track]
) -> None:
    """Ten more Alpha tracks right beside the seed: the first over-fetch holds only Alpha,
    and the query must look further to fill its page with other artists."""
    crowd = [
        _track("Alpha", n, direction(*(CENTROIDS["Alpha"] + 0.01 * n * E3))) for n in range(3, 13)
    ]
    store.upsert_tracks(crowd)
    seed = catalogue["Alpha 1"]
    _, hits = queries.tracks_like(store, seed.track_id, limit=2, max_per_artist=1)
    assert [h.track.artist for h in hits] == ["Alpha", "Beta"]


# --- search by vector ---------------------------------------------------------------------------


def test_like_vector_finds_tracks_and_artists(store: Store, catalogue: dict[str, Track]) -> None:
    matches = queries.like_vector(store, direction(0, 1), limit=2)
    assert sorted(_titles(matches.tracks)) == ["Gamma 1", "Gamma 2"]  # equally close
    assert [h.score for h in matches.tracks] == pytest.approx([0.8 / NORM] * 2, abs=1e-4)
    assert _names(matches.artists) == ["Gamma", "Beta"]
    assert [h.score for h in matches.artists] == pytest.approx([0.8, 0.6], abs=1e-4)

    capped = queries.like_vector(store, direction(0, 1), limit=2, max_per_artist=1)
    assert [h.track.artist for h in capped.tracks] == ["Gamma", "Beta"]


def test_like_vector_filters_tracks_and_artists_alike(
    store: Store, catalogue: dict[str, Track]
) -> None:
    matches = queries.like_vector(store, direction(0, 1), limit=5, filters={"genre": "rock"})
    assert {h.track.artist for h in matches.tracks} == {"Alpha", "Delta"}
    assert sorted(_names(matches.artists)) == ["Alpha", "Delta"]


# --- similarity matrix --------------------------------------------------------------------------


def test_similarity_matrix_is_the_centroid_cosines_in_the_given_order(
    store: Store, catalogue: dict[str, Track]
) -> None:
    artists, matrix = queries.similarity_matrix(store, ["gamma", "ALPHA", "Delta"])
    assert [a.name for a in artists] == ["Gamma", "Alpha", "Delta"]
    expected = [[1.0, 0.6, 0.0], [0.6, 1.0, 0.0], [0.0, 0.0, 1.0]]
    for row, expected_row in zip(matrix, expected, strict=True):
        assert row == pytest.approx(expected_row, abs=1e-4)


def test_similarity_matrix_refuses_no_or_too_many_artists(store: Store) -> None:
    with pytest.raises(InvalidRequest, match="at least one"):
        queries.similarity_matrix(store, [])
    with pytest.raises(InvalidRequest, match="at most"):
        queries.similarity_matrix(store, ["x"] * (queries.MAX_MATRIX_ARTISTS + 1))


# --- names and ids ------------------------------------------------------------------------------


def test_resolve_artist_ignores_case_accents_and_spacing(
    store: Store, catalogue: dict[str, Track]
) -> None:
    assert queries.resolve_artist(store, "  ÁLPHA ").name == "Alpha"
    assert queries.resolve_artist(store, "beta", with_centroid=True).centroid is not None


def test_resolve_artist_suggests_close_names_for_a_typo(
    store: Store, catalogue: dict[str, Track]
) -> None:
    with pytest.raises(ArtistNotFound) as info:
        queries.resolve_artist(store, "Gammma")
    assert info.value.suggestions[0] == "Gamma"
    assert "Did you mean: Gamma" in str(info.value)
    with pytest.raises(ArtistNotFound) as info:
        queries.resolve_artist(store, "Zzyzx Qqq")
    assert info.value.suggestions == []


def test_a_name_that_folds_to_nothing_is_an_unknown_artist(store: Store) -> None:
    with pytest.raises(ArtistNotFound) as info:
        queries.resolve_artist(store, "  \t\u0301")
    assert info.value.suggestions == []


def test_require_track_raises_track_not_found(store: Store, catalogue: dict[str, Track]) -> None:
    seed = catalogue["Delta 1"]
    assert queries.require_track(store, seed.track_id).title == "Delta 1"
    for unknown in (track_id("no-such-hash", "delta"), "not-a-uuid"):
        with pytest.raises(TrackNotFound) as info:
            queries.require_track(store, unknown)
        assert info.value.track_id == unknown
