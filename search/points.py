"""Our types as stored points and back: the payloads of the schema (schema.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from soundalike.core.errors import InvalidRequest, StoreError
from soundalike.core.identity import artist_id64, artist_point_id, is_uuid
from soundalike.core.types import Artist, EmbeddingSpec, Track
from soundalike.search.backend import StoredPoint
from soundalike.search.centroids import artist_centroid
from soundalike.search.schema import (
    F_ALBUM,
    F_ARTIST,
    F_ARTIST_KEY,
    F_CONTENT_HASH,
    F_DURATION,
    F_EXTRA,
    F_GENRE,
    F_GENRES,
    F_ID64,
    F_ITEM_ID,
    F_PATH,
    F_PRECISION,
    F_SPEC,
    F_TITLE,
    F_TRACK_COUNT,
    F_YEAR,
)


def as_vector(vector: Sequence[float] | np.ndarray, dim: int, what: str) -> list[float]:
    """`vector` as floats for the store, refused unless it has `dim` finite values and a
    direction."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dim:
        raise InvalidRequest(
            f"{what}: expected {dim} floats (the store's embedding dim), got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InvalidRequest(f"{what}: contains NaN or infinite values")
    if not array.any():
        raise InvalidRequest(f"{what}: is all zeros and has no direction")
    return array.tolist()


def track_point(track: Track, spec: EmbeddingSpec) -> StoredPoint:
    if not is_uuid(track.track_id):
        raise InvalidRequest(f"track {track.track_id!r}: the id is not a UUID (use track_id())")
    if track.vector is None:
        raise InvalidRequest(f"track {track.track_id} ({track.path}): no vector to store")
    vector = as_vector(track.vector, spec.dim, f"track {track.track_id} ({track.path})")
    payload: dict[str, Any] = {
        F_ARTIST: track.artist,
        F_ARTIST_KEY: track.artist_key,
        F_TITLE: track.title,
        F_ALBUM: track.album,
        F_GENRE: track.genre,
        F_YEAR: track.year,
        F_PATH: track.path,
        F_DURATION: track.duration_seconds,
        F_CONTENT_HASH: track.content_hash,
        F_EXTRA: dict(track.extra),
        F_ITEM_ID: track.item_id,
        F_PRECISION: track.precision,
        F_SPEC: spec.to_dict(),
    }
    return StoredPoint(id=track.track_id, vector=vector, payload=payload)


def artist_point(artist: Artist, dim: int) -> StoredPoint:
    if artist.centroid is None:
        raise InvalidRequest(f"artist {artist.name!r}: no centroid to store")
    vector = as_vector(artist.centroid, dim, f"artist {artist.name!r}")
    payload = {
        F_ARTIST: artist.name,
        F_ARTIST_KEY: artist.artist_key,
        F_TRACK_COUNT: int(artist.track_count),
        F_GENRES: list(artist.genres),
        F_ID64: artist_id64(artist.artist_key),
    }
    return StoredPoint(artist_point_id(artist.artist_key), vector, payload)


def track_from(point: StoredPoint, *, with_vector: bool = True) -> Track:
    p = point.payload
    return Track(
        track_id=point.id,
        artist=str(p.get(F_ARTIST, "")),
        artist_key=str(p.get(F_ARTIST_KEY, "")),
        vector=point.vector if with_vector else None,
        title=p.get(F_TITLE),
        album=p.get(F_ALBUM),
        genre=p.get(F_GENRE),
        year=_optional_int(p.get(F_YEAR)),
        path=p.get(F_PATH),
        duration_seconds=_optional_float(p.get(F_DURATION)),
        content_hash=p.get(F_CONTENT_HASH),
        extra=dict(p.get(F_EXTRA) or {}),
        item_id=p.get(F_ITEM_ID),
        precision=p.get(F_PRECISION),
    )


def artist_from(point: StoredPoint) -> Artist:
    p = point.payload
    return Artist(
        name=str(p.get(F_ARTIST, "")),
        artist_key=str(p.get(F_ARTIST_KEY, "")),
        track_count=int(p.get(F_TRACK_COUNT) or 0),
        centroid=point.vector,
        genres=list(p.get(F_GENRES) or []),
    )


def artist_from_tracks(key: str, points: Sequence[StoredPoint]) -> Artist:
    """An artist recomputed from its tracks' vectors and payloads."""
    try:
        centroid = artist_centroid(np.array([p.vector for p in points], dtype=np.float32))
    except InvalidRequest as exc:
        # The vectors came from the store, not from the caller: the store is what is wrong.
        raise StoreError(f"artist {key!r}: cannot compute its centroid: {exc.message}") from exc
    # The display name most of its tracks carry; ties go to the alphabetically first.
    names = Counter(str(p.payload.get(F_ARTIST) or key) for p in points)
    display = min(names, key=lambda n: (-names[n], n))
    genres = sorted({str(g) for p in points if (g := p.payload.get(F_GENRE))})
    return Artist(
        name=display,
        artist_key=key,
        track_count=len(points),
        centroid=centroid.tolist(),
        genres=genres,
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
