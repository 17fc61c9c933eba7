"""Radio: tracks near what a listener likes and far from what they do not.

Seeds are tracks or artists (an artist stands for its centroid). The store answers with Qdrant's
recommendation query (positive and negative examples, "sum of scores"), which for unit vectors
orders tracks by cosine to Σliked − Σunliked: `radio` reports that cosine as each track's score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from soundalike.core.errors import InvalidRequest
from soundalike.core.types import TrackHit
from soundalike.search.queries import (
    capped_reads,
    require_track,
    resolve_artist,
)
from soundalike.search.store import Store

MAX_SEEDS = 20
MAX_RADIO_LIMIT = 200
# Below this length Σliked − Σunliked points nowhere: the seeds cancel out.
MIN_QUERY_NORM = 1e-4


@dataclass(frozen=True)
class Seed:
    """A track (by our track id) or an artist (by name): exactly one of the two."""

    track_id: str | None = None
    artist: str | None = None

    def __post_init__(self) -> None:
        if (self.track_id is None) == (self.artist is None):
            raise InvalidRequest("a seed is a track_id or an artist, exactly one of them")


@dataclass(frozen=True)
class _Resolved:
    vectors: list[list[float]]
    track_ids: set[str]
    artist_keys: set[str]


def _resolve(store: Store, seeds: Sequence[Seed]) -> _Resolved:
    """Each seed's vector (a track's, an artist's centroid); 404 for an unknown one."""
    vectors: list[list[float]] = []
    track_ids: set[str] = set()
    artist_keys: set[str] = set()
    for seed in seeds:
        if seed.track_id is not None:
            track = require_track(store, seed.track_id)
            assert track.vector is not None
            vectors.append(track.vector)
            track_ids.add(track.track_id)
        else:
            assert seed.artist is not None
            artist = resolve_artist(store, seed.artist, with_centroid=True)
            assert artist.centroid is not None
            vectors.append(artist.centroid)
            artist_keys.add(artist.artist_key)
    return _Resolved(vectors, track_ids, artist_keys)


def radio(
    store: Store,
    like: Sequence[Seed],
    unlike: Sequence[Seed] = (),
    *,
    limit: int = 20,
    max_per_artist: int | None = 2,
    exclude_track_ids: Iterable[str] = (),
    filters: dict[str, Any] | None = None,
) -> list[TrackHit]:
    """Tracks best matching the seeds, best first, with score = cosine to Σliked − Σunliked.

    Never a seed track nor one of `exclude_track_ids`; never a track of an unliked artist; at
    most `max_per_artist` tracks per artist (None: no cap; a catalogue of few artists may then
    give fewer than `limit`, as at most MAX_CANDIDATES tracks are read)."""
    if not 1 <= len(like) <= MAX_SEEDS:
        raise InvalidRequest(f"give between 1 and {MAX_SEEDS} liked seeds, got {len(like)}")
    if len(unlike) > MAX_SEEDS:
        raise InvalidRequest(f"give at most {MAX_SEEDS} unliked seeds, got {len(unlike)}")
    if not 1 <= limit <= MAX_RADIO_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_RADIO_LIMIT}, got {limit}")
    if max_per_artist is not None and max_per_artist < 1:
        raise InvalidRequest(f"max_per_artist must be >= 1, got {max_per_artist}")
    liked, unliked = _resolve(store, like), _resolve(store, unlike)
    both = liked.artist_keys & unliked.artist_keys
    if both or liked.track_ids & unliked.track_ids:
        raise InvalidRequest("the same seed is both liked and unliked")
    return radio_towards(
        store,
        liked.vectors,
        unliked.vectors,
        limit=limit,
        max_per_artist=max_per_artist,
        exclude_track_ids=liked.track_ids | unliked.track_ids | set(exclude_track_ids),
        exclude_artist_keys=unliked.artist_keys,
        filters=filters,
    )


def radio_towards(
    store: Store,
    liked: Sequence[Sequence[float] | np.ndarray],
    unliked: Sequence[Sequence[float] | np.ndarray] = (),
    *,
    limit: int,
    max_per_artist: int | None,
    exclude_track_ids: Iterable[str] = (),
    exclude_artist_keys: Iterable[str] = (),
    filters: dict[str, Any] | None = None,
) -> list[TrackHit]:
    """`radio` over seed vectors already resolved (an album's mean, a group of seeds' centre):
    the tracks best matching Σliked − Σunliked, score = cosine to it, best first."""
    query = np.sum(np.asarray(liked, np.float64), axis=0) - (
        np.sum(np.asarray(unliked, np.float64), axis=0) if len(unliked) else 0.0
    )
    norm = float(np.linalg.norm(query))
    if norm < MIN_QUERY_NORM:
        raise InvalidRequest("the liked and unliked seeds cancel out: nothing to move towards")
    excluded, excluded_artists = set(exclude_track_ids), tuple(exclude_artist_keys)
    page = capped_reads(
        lambda fetch: store.recommend_tracks(
            liked,
            unliked,
            limit=fetch,
            exclude_ids=excluded,
            exclude_artist_keys=excluded_artists,
            filters=filters,
        ),
        limit,
        max_per_artist,
    )
    # Sum of cosines = |query| × cosine to the query, for unit track vectors.
    return [TrackHit(hit.track, min(1.0, max(-1.0, hit.score / norm))) for hit in page]
