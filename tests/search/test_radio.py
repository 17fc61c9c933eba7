"""radio: Qdrant's recommendation query over both backends, seeds, caps and exclusions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from soundalike.core.errors import ArtistNotFound, InvalidRequest, TrackNotFound
from soundalike.core.types import Track
from soundalike.search.radio import Seed, radio
from soundalike.search.store import Store

ARTISTS = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]


@pytest.fixture
def tracks(stored_tracks: Callable[[list[str], int], list[Track]]) -> list[Track]:
    return stored_tracks(ARTISTS, 6)


def _brute_force(
    tracks: list[Track], query: np.ndarray, excluded: set[str], cap: int | None, limit: int
) -> list[tuple[str, float]]:
    """The expected answer: every track ranked by exact cosine to the query, capped."""
    unit = query / np.linalg.norm(query)
    ranked = sorted(
        ((t.track_id, t.artist_key, float(np.asarray(t.vector) @ unit)) for t in tracks),
        key=lambda row: -row[2],
    )
    per_artist: dict[str, int] = {}
    answer: list[tuple[str, float]] = []
    for track_id, key, score in ranked:
        if track_id in excluded or (cap is not None and per_artist.get(key, 0) >= cap):
            continue
        per_artist[key] = per_artist.get(key, 0) + 1
        answer.append((track_id, score))
    return answer[:limit]


def test_one_liked_track_gives_its_nearest_tracks_never_itself(
    store: Store, tracks: list[Track]
) -> None:
    seed = tracks[0]
    hits = radio(store, [Seed(track_id=seed.track_id)], limit=8, max_per_artist=None)
    expected = _brute_force(tracks, np.asarray(seed.vector), {seed.track_id}, None, 8)
    assert [h.track.track_id for h in hits] == [track_id for track_id, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-4)
    assert seed.track_id not in {h.track.track_id for h in hits}


def test_liked_and_unliked_rank_by_cosine_to_their_difference(
    store: Store, tracks: list[Track]
) -> None:
    liked, also_liked, unliked = tracks[0], tracks[7], tracks[13]
    hits = radio(
        store,
        [Seed(track_id=liked.track_id), Seed(track_id=also_liked.track_id)],
        [Seed(track_id=unliked.track_id)],
        limit=10,
        max_per_artist=3,
    )
    query = np.asarray(liked.vector) + np.asarray(also_liked.vector) - np.asarray(unliked.vector)
    seeds = {liked.track_id, also_liked.track_id, unliked.track_id}
    expected = _brute_force(tracks, query, seeds, 3, 10)
    assert [h.track.track_id for h in hits] == [track_id for track_id, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-4)


def test_artist_seeds_use_centroids_and_an_unliked_artist_never_plays(
    store: Store, tracks: list[Track]
) -> None:
    alpha = store.get_artist("alpha", with_centroid=True)
    beta = store.get_artist("beta", with_centroid=True)
    assert alpha is not None and beta is not None
    hits = radio(
        store, [Seed(artist="ALPHA")], [Seed(artist="beta")], limit=12, max_per_artist=None
    )
    query = np.asarray(alpha.centroid) - np.asarray(beta.centroid)
    not_beta = [t for t in tracks if t.artist_key != "beta"]
    expected = _brute_force(not_beta, query, set(), None, 12)
    assert [h.track.track_id for h in hits] == [track_id for track_id, _ in expected]
    assert all(h.track.artist_key != "beta" for h in hits)


def test_artist_cap_and_exclusions(store: Store, tracks: list[Track]) -> None:
    seed = tracks[0]
    played = [t.track_id for t in tracks[1:4]]
    hits = radio(
        store, [Seed(track_id=seed.track_id)], limit=10, max_per_artist=2, exclude_track_ids=played
    )
    assert len(hits) == 10  # five artists, two each
    counts: dict[str, int] = {}
    for hit in hits:
        counts[hit.track.artist_key] = counts.get(hit.track.artist_key, 0) + 1
    assert max(counts.values()) == 2
    assert not {h.track.track_id for h in hits} & {seed.track_id, *played}
    # A cap the catalogue cannot fill gives fewer tracks, never a repeat.
    capped = radio(store, [Seed(track_id=seed.track_id)], limit=20, max_per_artist=1)
    assert len(capped) == len(ARTISTS)
    assert len({h.track.artist_key for h in capped}) == len(ARTISTS)


def test_bad_seeds_are_refused(store: Store, tracks: list[Track]) -> None:
    with pytest.raises(TrackNotFound):
        radio(store, [Seed(track_id="00000000-0000-0000-0000-000000000000")])
    with pytest.raises(ArtistNotFound):
        radio(store, [Seed(artist="nobody at all")])
    with pytest.raises(InvalidRequest, match="liked seeds"):
        radio(store, [])
    with pytest.raises(InvalidRequest, match="exactly one"):
        Seed(track_id=tracks[0].track_id, artist="Alpha")
    with pytest.raises(InvalidRequest, match="exactly one"):
        Seed()
    with pytest.raises(InvalidRequest, match="both liked and unliked"):
        radio(store, [Seed(artist="alpha")], [Seed(artist="Alpha")])
    with pytest.raises(InvalidRequest, match="limit"):
        radio(store, [Seed(artist="alpha")], limit=0)
