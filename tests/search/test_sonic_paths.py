"""Sonic paths: ends, length, no repeats, artist caps, short hops."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest, TrackNotFound
from soundalike.core.types import Track
from soundalike.search.radio import Seed
from soundalike.search.sonic_paths import path_from_seeds, sonic_path, waypoints
from soundalike.search.store import Store

ARTISTS = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"]


@pytest.fixture
def tracks(stored_tracks: Callable[[list[str], int], list[Track]]) -> list[Track]:
    return stored_tracks(ARTISTS, 8)


def _far_pair(tracks: list[Track]) -> tuple[Track, Track]:
    vectors = np.asarray([t.vector for t in tracks])
    i, j = np.unravel_index(np.argmin(vectors @ vectors.T), (len(tracks), len(tracks)))
    return tracks[int(i)], tracks[int(j)]


def _cos(a: Track, b: Track) -> float:
    return float(np.asarray(a.vector) @ np.asarray(b.vector))


def test_waypoints_lie_evenly_on_the_great_circle() -> None:
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    points = waypoints(a, b, 2)
    angles = [float(np.degrees(np.arctan2(p[1], p[0]))) for p in points]
    assert angles == pytest.approx([30.0, 60.0])
    assert all(np.linalg.norm(p) == pytest.approx(1.0) for p in points)


def test_fixed_size_path_has_both_ends_exact_length_no_repeats(
    store: Store, tracks: list[Track]
) -> None:
    start, end = _far_pair(tracks)
    path = sonic_path(store, start.track_id, end.track_id, steps=12)
    ids = [step.track.track_id for step in path.steps]
    assert len(ids) == 12
    assert ids[0] == start.track_id and ids[-1] == end.track_id
    assert len(set(ids)) == len(ids)
    assert path.steps[0].hop_score is None
    by_id = {t.track_id: t for t in tracks}
    for before, step in zip(path.steps, path.steps[1:], strict=False):
        assert step.hop_score == pytest.approx(
            _cos(by_id[before.track.track_id], by_id[step.track.track_id]), abs=1e-5
        )
    assert path.total_distance == pytest.approx(sum(1 - s.hop_score for s in path.steps[1:]))


def test_the_path_is_smoother_than_random_orders(store: Store, tracks: list[Track]) -> None:
    start, end = _far_pair(tracks)
    path = sonic_path(store, start.track_id, end.track_id, steps=8)
    longest = max(1 - s.hop_score for s in path.steps[1:])
    # Every hop is shorter than jumping straight from start to end.
    assert longest < 1 - _cos(start, end)


def test_artist_cap_counts_the_ends(store: Store, tracks: list[Track]) -> None:
    start, end = _far_pair(tracks)
    path = sonic_path(store, start.track_id, end.track_id, steps=10, max_per_artist=2)
    counts: dict[str, int] = {}
    for step in path.steps:
        counts[step.track.artist_key] = counts.get(step.track.artist_key, 0) + 1
    assert max(counts.values()) <= 2
    assert len(path.steps) == 10
    # One per artist: six artists, so at most six tracks, each of another artist.
    alpha, zeta = tracks[0], tracks[-1]
    capped = sonic_path(store, alpha.track_id, zeta.track_id, steps=10, max_per_artist=1)
    keys = [s.track.artist_key for s in capped.steps]
    assert len(keys) == len(ARTISTS)
    assert sorted(keys) == sorted({t.artist_key for t in tracks})


def test_unfixed_path_never_hops_further_than_the_direct_distance(
    store: Store, tracks: list[Track]
) -> None:
    for start, end in [_far_pair(tracks), (tracks[0], tracks[20]), (tracks[5], tracks[44])]:
        direct = 1 - _cos(start, end)
        path = sonic_path(store, start.track_id, end.track_id, steps=25, fixed_size=False)
        ids = [s.track.track_id for s in path.steps]
        assert 2 <= len(ids) <= 25
        assert ids[0] == start.track_id and ids[-1] == end.track_id
        assert len(set(ids)) == len(ids)
        assert all(1 - s.hop_score <= direct + 1e-5 for s in path.steps[1:])


def test_a_path_longer_than_the_catalogue_uses_every_track_once(
    store: Store, tracks: list[Track]
) -> None:
    start, end = tracks[0], tracks[-1]
    path = sonic_path(store, start.track_id, end.track_id, steps=200)
    ids = [s.track.track_id for s in path.steps]
    assert sorted(ids) == sorted(t.track_id for t in tracks)


def test_artist_seeds_stand_for_their_track_nearest_the_other_end(
    store: Store, tracks: list[Track]
) -> None:
    end = tracks[-1]  # a Zeta track
    path = path_from_seeds(store, Seed(artist="alpha"), Seed(track_id=end.track_id), steps=5)
    alpha = [t for t in tracks if t.artist_key == "alpha"]
    nearest = max(alpha, key=lambda t: _cos(t, end))
    assert path.steps[0].track.track_id == nearest.track_id
    assert path.steps[-1].track.track_id == end.track_id
    both = path_from_seeds(store, Seed(artist="alpha"), Seed(artist="beta"), steps=4)
    assert both.steps[0].track.artist_key == "alpha"
    assert both.steps[-1].track.artist_key == "beta"


def test_bad_requests(store: Store, tracks: list[Track]) -> None:
    a, b = tracks[0].track_id, tracks[1].track_id
    with pytest.raises(InvalidRequest, match="different"):
        sonic_path(store, a, a)
    with pytest.raises(TrackNotFound):
        sonic_path(store, a, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidRequest, match="steps"):
        sonic_path(store, a, b, steps=1)
    with pytest.raises(InvalidRequest, match="max_per_artist"):
        sonic_path(store, a, b, max_per_artist=0)
    with pytest.raises(InvalidRequest, match="different"):
        path_from_seeds(store, Seed(track_id=a), Seed(artist="alpha"))
