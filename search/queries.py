"""The questions soundalike answers, as plain functions over a Store.

Queries take names, ids or vectors and never need the model: "search by audio" embeds upstream
and calls `like_vector`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soundalike.core.artist_names import key_prefix, suggest
from soundalike.core.errors import ArtistNotFound, InvalidRequest, TrackNotFound
from soundalike.core.types import Artist, ArtistHit, Track, TrackHit
from soundalike.search.store import Store

MAX_LIMIT = 100
MAX_MATRIX_ARTISTS = 50
EXPLAIN_PAIRS = 3
# Over-fetch factor when a per-artist cap will drop hits; doubled until the page is full.
OVERFETCH = 4
# Most tracks one capped search reads (bounded work per request, whatever the catalogue).
MAX_CANDIDATES = 1000
# Tracks of each artist compared when explaining a match.
EXPLAIN_CANDIDATES = 64


@dataclass
class TrackPair:
    """Why two artists are close: one track of each and their cosine similarity."""

    track: Track
    other_track: Track
    score: float


@dataclass
class SimilarArtist:
    hit: ArtistHit
    closest_pairs: list[TrackPair] = field(default_factory=list)


@dataclass
class ArtistNeighbours:
    """An artist and the artists that sound most like it, best first (the domain answer; the
    HTTP shape is api/schemas.py's SimilarArtists)."""

    artist: Artist
    results: list[SimilarArtist]


@dataclass
class VectorMatches:
    """Tracks and artists nearest to a query vector (a clip's, for search by audio)."""

    tracks: list[TrackHit]
    artists: list[ArtistHit]


def resolve_artist(store: Store, name: str, *, with_centroid: bool = False) -> Artist:
    """An artist by name, case-, accent- and spacing-insensitively.

    ArtistNotFound (with close names as suggestions) when unknown, a name that is empty once
    folded included (no stored artist has an empty key)."""
    key = key_prefix(name)  # folds like artist_key; a name that folds to nothing is unknown
    artist = store.get_artist(key, with_centroid=with_centroid) if key else None
    if artist is None:
        raise ArtistNotFound(name, suggest(name, store.artist_names()))
    return artist


def require_track(store: Store, track_id: str) -> Track:
    """The stored track with its vector, or TrackNotFound (a 404)."""
    track = store.get_track(track_id)
    if track is None:
        raise TrackNotFound(track_id)
    return track


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def artists_like(
    store: Store,
    name: str,
    *,
    limit: int = 10,
    min_tracks: int = 1,
    filters: dict[str, Any] | None = None,
    explain: bool = False,
    lookup: bool = True,
) -> ArtistNeighbours:
    """Nearest artist centroids to the named artist's, the artist itself excluded, best first.

    With filters (genre, album, year, declared columns) an artist qualifies when at least one of
    its tracks passes them. `lookup`: answer from the artist's stored exact neighbour list when
    it is valid and, once filtered, still fills `limit` (scores then within 1.5e-5 of exact);
    otherwise, or with lookup=False, search the centroids live.
    """
    _check_limit(limit)
    if min_tracks < 1:
        raise InvalidRequest(f"min_tracks must be >= 1, got {min_tracks}")
    # Answered from memory: no centroid needed (read only if the live search must run).
    from_memory = lookup and not explain and store.answers_from_memory()
    artist = resolve_artist(store, name, with_centroid=not from_memory)
    only_keys = store.artist_keys_with(filters) if filters else None
    if only_keys is not None:
        only_keys.discard(artist.artist_key)
        if not only_keys:
            return ArtistNeighbours(artist, [])
    hits = (
        store.neighbours_of(
            artist.artist_key,
            limit=limit,
            min_tracks=min_tracks,
            only_keys=only_keys,
            centroid=artist.centroid,
        )
        if lookup
        else None
    )
    if hits is None:
        if artist.centroid is None:
            artist = resolve_artist(store, name, with_centroid=True)
        assert artist.centroid is not None
        hits = store.search_artists(
            artist.centroid,
            limit=limit,
            exclude_keys={artist.artist_key},
            min_tracks=min_tracks,
            only_keys=only_keys,
        )
    results = [SimilarArtist(hit) for hit in hits]
    if explain and results:
        assert artist.centroid is not None  # explaining reads it (from_memory is False)
        others = store.get_artists([r.hit.artist.artist_key for r in results], with_centroid=True)
        for result in results:
            other = others.get(result.hit.artist.artist_key)
            if other is None or other.centroid is None:
                continue  # removed since the search: nothing to explain
            result.closest_pairs = closest_track_pairs(
                _tracks_nearest(store, artist.artist_key, other.centroid),
                _tracks_nearest(store, other.artist_key, artist.centroid),
                EXPLAIN_PAIRS,
            )
    return ArtistNeighbours(artist, results)


def _tracks_nearest(store: Store, artist_key: str, toward: list[float]) -> list[Track]:
    """The artist's tracks nearest to another artist's centroid, at most EXPLAIN_CANDIDATES:
    the closest pairs of two artists are found among these, so explaining costs the same for a
    5,000-track artist as for a 5-track one (and is exact up to EXPLAIN_CANDIDATES tracks)."""
    hits = store.search_tracks(
        toward, limit=EXPLAIN_CANDIDATES, artist_keys=[artist_key], with_vectors=True
    )
    return [hit.track for hit in hits]


def closest_track_pairs(tracks: list[Track], others: list[Track], count: int) -> list[TrackPair]:
    """The `count` most similar (track, other track) pairs, each track used at most once."""
    if not tracks or not others:
        return []
    mine = np.asarray([t.vector for t in tracks], dtype=np.float32)
    theirs = np.asarray([t.vector for t in others], dtype=np.float32)
    similarity = mine @ theirs.T
    pairs: list[TrackPair] = []
    used_mine: set[int] = set()
    used_theirs: set[int] = set()
    for flat in np.argsort(-similarity, axis=None):
        i, j = divmod(int(flat), similarity.shape[1])
        if i in used_mine or j in used_theirs:
            continue
        pairs.append(TrackPair(tracks[i], others[j], float(similarity[i, j])))
        used_mine.add(i)
        used_theirs.add(j)
        if len(pairs) == count:
            break
    return pairs


def _capped_track_search(
    store: Store,
    vector: list[float] | np.ndarray,
    *,
    limit: int,
    max_per_artist: int | None,
    exclude_ids: set[str],
    exclude_artist_key: str | None,
    filters: dict[str, Any] | None,
) -> list[TrackHit]:
    """Nearest tracks with at most `max_per_artist` per artist: an over-fetch, then when the
    cap left the page short one read of MAX_CANDIDATES (a catalogue of few artists then gives
    fewer results rather than a scan of the whole collection). A read that returns fewer hits
    than asked has seen every track that passes: no count of the collection is needed (an
    exact count costs 50 ms at 1M tracks, ten times the search)."""
    return capped_reads(
        lambda fetch: store.search_tracks(
            vector,
            limit=fetch,
            exclude_ids=exclude_ids,
            exclude_artist_key=exclude_artist_key,
            filters=filters,
        ),
        limit,
        max_per_artist,
    )


def capped_reads(
    read: Callable[[int], list[TrackHit]], limit: int, max_per_artist: int | None
) -> list[TrackHit]:
    """The first `limit` hits of `read(n)` (the best n tracks) with at most `max_per_artist`
    per artist: `read` over-fetches OVERFETCH times the limit, and once more MAX_CANDIDATES when
    the cap left the page short; two reads at most."""
    fetch = limit if max_per_artist is None else min(limit * OVERFETCH, MAX_CANDIDATES)
    while True:
        hits = read(fetch)
        page = cap_per_artist(hits, max_per_artist, limit)
        if len(page) >= limit or len(hits) < fetch or fetch >= MAX_CANDIDATES:
            return page
        fetch = MAX_CANDIDATES  # one more, wider read


def cap_per_artist(hits: list[TrackHit], max_per_artist: int | None, limit: int) -> list[TrackHit]:
    """The first `limit` hits, at most `max_per_artist` of any one artist (None: no cap)."""
    if max_per_artist is None:
        return hits[:limit]
    cap = max_per_artist
    per_artist: Counter[str] = Counter()

    def within_cap(hit: TrackHit) -> bool:
        per_artist[hit.track.artist_key] += 1
        return per_artist[hit.track.artist_key] <= cap

    # islice stops at `limit`: the hits after it are never counted.
    return list(itertools.islice(filter(within_cap, hits), limit))


def tracks_like(
    store: Store,
    track_id: str,
    *,
    limit: int = 10,
    exclude_same_artist: bool = False,
    max_per_artist: int | None = 2,
    filters: dict[str, Any] | None = None,
) -> tuple[Track, list[TrackHit]]:
    """Nearest tracks to a stored track; never the track itself."""
    _check_limit(limit)
    if max_per_artist is not None and max_per_artist < 1:
        raise InvalidRequest(f"max_per_artist must be >= 1, got {max_per_artist}")
    track = require_track(store, track_id)
    assert track.vector is not None
    hits = _capped_track_search(
        store,
        track.vector,
        limit=limit,
        max_per_artist=max_per_artist,
        exclude_ids={track.track_id},
        exclude_artist_key=track.artist_key if exclude_same_artist else None,
        filters=filters,
    )
    return track, hits


def like_vector(
    store: Store,
    vector: list[float] | np.ndarray,
    *,
    limit: int = 10,
    max_per_artist: int | None = 2,
    filters: dict[str, Any] | None = None,
) -> VectorMatches:
    """Tracks and artists nearest to a query vector (an embedded upload)."""
    _check_limit(limit)
    tracks = _capped_track_search(
        store,
        vector,
        limit=limit,
        max_per_artist=max_per_artist,
        exclude_ids=set(),
        exclude_artist_key=None,
        filters=filters,
    )
    only_keys = store.artist_keys_with(filters) if filters else None
    artists = store.search_artists(vector, limit=limit, only_keys=only_keys)
    return VectorMatches(tracks, artists)


def similarity_matrix(store: Store, names: list[str]) -> tuple[list[Artist], list[list[float]]]:
    """Artist-by-artist cosine similarity of centroids, in the order the names were given."""
    if not names:
        raise InvalidRequest("give at least one artist")
    if len(names) > MAX_MATRIX_ARTISTS:
        raise InvalidRequest(f"at most {MAX_MATRIX_ARTISTS} artists, got {len(names)}")
    artists = [resolve_artist(store, name, with_centroid=True) for name in names]
    centroids = np.asarray([a.centroid for a in artists], dtype=np.float32)
    matrix = np.clip(centroids @ centroids.T, -1.0, 1.0)
    return artists, [[round(float(x), 6) for x in row] for row in matrix]
