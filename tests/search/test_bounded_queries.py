"""Work per request is bounded by the request, not by the catalogue: explaining a match between
two large artists, capping tracks per artist on a catalogue of few artists, and paging an
artist's tracks read a fixed number of points."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from soundalike.core.identity import track_id
from soundalike.core.types import Track
from soundalike.search import queries
from soundalike.search.store import Store

TRACKS_PER_ARTIST = 1200


class PointsRead:
    """Counts the points the store's backend hands back (and how many carry vectors)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.points = 0
        self.vectors = 0
        backend = store.backend_for_tests
        scroll, search, retrieve = backend.scroll, backend.search, backend.retrieve

        def counted(points: list) -> list:  # type: ignore[type-arg]
            self.points += len(points)
            self.vectors += sum(1 for p in points if p.vector is not None)
            return points

        def counting_scroll(*args: object, **kwargs: object) -> Iterator[object]:
            for point in scroll(*args, **kwargs):  # type: ignore[arg-type]
                counted([point])
                yield point

        def counting_search(*args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
            hits = search(*args, **kwargs)  # type: ignore[arg-type]
            counted([point for point, _ in hits])
            return hits

        def counting_retrieve(*args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
            return counted(retrieve(*args, **kwargs))  # type: ignore[arg-type]

        monkeypatch.setattr(backend, "scroll", counting_scroll)
        monkeypatch.setattr(backend, "search", counting_search)
        monkeypatch.setattr(backend, "retrieve", counting_retrieve)


@pytest.fixture
def two_big_artists(store: Store) -> Store:
    """Two artists of 1,200 tracks each around two nearby directions."""
    rng = np.random.default_rng(0)
    dim = store.spec().dim
    tracks = []
    for index, name in enumerate(["Big One", "Big Two"]):
        centre = np.zeros(dim)
        centre[0], centre[1] = 1.0, 0.3 * index
        for number in range(TRACKS_PER_ARTIST):
            vector = centre + 0.3 * rng.standard_normal(dim)
            tracks.append(
                Track(
                    track_id=track_id(f"{name}-{number}", name.lower()),
                    artist=name,
                    artist_key=name.lower(),
                    vector=(vector / np.linalg.norm(vector)).tolist(),
                    title=f"{number:04d}",
                    album=f"Album {number % 7}",
                    path=f"/music/{name}/{number:04d}.flac",
                )
            )
    store.upsert_tracks(tracks)
    store.recompute_centroids(["big one", "big two"])
    return store


def test_explaining_a_match_reads_a_bounded_number_of_tracks(
    two_big_artists: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = PointsRead(two_big_artists, monkeypatch)
    answer = queries.artists_like(two_big_artists, "Big One", limit=1, explain=True)
    (result,) = answer.results
    assert result.hit.artist.name == "Big Two"
    assert len(result.closest_pairs) == queries.EXPLAIN_PAIRS
    scores = [pair.score for pair in result.closest_pairs]
    assert scores == sorted(scores, reverse=True)
    # Each side's candidates, not each side's 1,200 tracks with their vectors.
    assert read.vectors <= 2 * queries.EXPLAIN_CANDIDATES + 2


def test_a_per_artist_cap_on_few_artists_stops_at_the_candidate_ceiling(
    two_big_artists: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = two_big_artists.tracks_of_artist("big one")[0]
    read = PointsRead(two_big_artists, monkeypatch)
    _, hits = queries.tracks_like(two_big_artists, query.track_id, limit=100, max_per_artist=1)
    assert sorted(hit.track.artist for hit in hits) == ["Big One", "Big Two"]
    # An over-fetch, then one read at the ceiling (the track itself is one more): never the
    # whole 2,400-track collection.
    assert read.points <= 100 * queries.OVERFETCH + queries.MAX_CANDIDATES + 1


def test_an_artist_s_tracks_come_a_page_at_a_time(
    two_big_artists: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = sorted(
        two_big_artists.tracks_of_artist("big one"),
        key=lambda t: (t.album or "", t.title or "", t.path or ""),
    )
    read = PointsRead(two_big_artists, monkeypatch)
    page = two_big_artists.artist_track_page("big one", limit=100, offset=1150)
    assert [t.track_id for t in page] == [t.track_id for t in everything[1150:]]
    assert read.vectors == 0
    assert two_big_artists.artist_track_page("big one", limit=10, offset=5000) == []
