"""Sonic paths: a smooth sequence of tracks from one track to another.

Waypoints are spaced evenly along the great circle between the two tracks' unit vectors; each
is taken by the nearest unused track within the artist cap. A candidate is preferred when the
hop to it from the previous track, and its distance to the end, are no longer than the direct
start→end distance: then no hop of the path is longer than the direct one. With `fixed_size`
a waypoint with no such candidate takes its nearest track anyway (the path keeps its length);
without it the waypoint is skipped (the path gets shorter, its hops stay short).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soundalike.core.errors import InvalidRequest
from soundalike.core.types import Track
from soundalike.search.queries import require_track, resolve_artist
from soundalike.search.radio import Seed
from soundalike.search.store import Store

MIN_STEPS = 2
MAX_STEPS = 200
# Tracks read per waypoint; when none of them fits (used, capped), one wider read.
CANDIDATES = 64
WIDE_CANDIDATES = 512
VECTOR_BATCH = 8
# Float32 vectors: a hop "no longer than the direct one" is judged with this slack.
_SLACK = 1e-6


@dataclass
class PathStep:
    track: Track
    hop_score: float | None  # cosine to the previous track; None for the first


@dataclass
class SonicPath:
    steps: list[PathStep]
    total_distance: float  # Σ (1 − hop cosine)


def _unit(vector: list[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


def waypoints(start: np.ndarray, end: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` unit vectors evenly spaced on the great circle strictly between two unit
    vectors (spherical linear interpolation)."""
    cosine = float(np.clip(start @ end, -1.0, 1.0))
    angle = float(np.arccos(cosine))
    points: list[np.ndarray] = []
    for i in range(1, count + 1):
        t = i / (count + 1)
        if np.sin(angle) < 1e-6:
            # Same or opposite directions: no unique great circle; a straight line's
            # normalised points (or the start, where it passes through the origin).
            mixed = (1 - t) * start + t * end
            points.append(_unit(mixed) if np.linalg.norm(mixed) > 1e-6 else start)
        else:
            mixed = (np.sin((1 - t) * angle) * start + np.sin(t * angle) * end) / np.sin(angle)
            points.append(_unit(mixed))
    return points


def _check(steps: int, max_per_artist: int | None) -> None:
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise InvalidRequest(f"steps must be between {MIN_STEPS} and {MAX_STEPS}, got {steps}")
    if max_per_artist is not None and max_per_artist < 1:
        raise InvalidRequest(f"max_per_artist must be >= 1, got {max_per_artist}")


def sonic_path(
    store: Store,
    start_id: str,
    end_id: str,
    *,
    steps: int = 10,
    max_per_artist: int | None = None,
    fixed_size: bool = True,
) -> SonicPath:
    """The path from one stored track to another (ids are ours); see the module docstring.

    `steps` counts both ends. 404 for an unknown id; InvalidRequest when start is end."""
    _check(steps, max_per_artist)
    start = require_track(store, start_id)
    end = require_track(store, end_id)
    if start.track_id == end.track_id:
        raise InvalidRequest("the start and end of a path must be different tracks")
    return path_between(
        store, start, end, steps=steps, max_per_artist=max_per_artist, fixed_size=fixed_size
    )


def path_from_seeds(
    store: Store,
    start: Seed,
    end: Seed,
    *,
    steps: int = 10,
    max_per_artist: int | None = None,
    fixed_size: bool = True,
) -> SonicPath:
    """A path between two seeds; an artist seed stands for its track nearest the other end
    (that end's track, or its artist's centroid)."""
    _check(steps, max_per_artist)
    start_track = _seed_track(store, start, toward=_seed_vector(store, end))
    end_track = _seed_track(store, end, toward=_seed_vector(store, start))
    if start_track.track_id == end_track.track_id:
        raise InvalidRequest("the start and end of a path must be different tracks")
    return path_between(
        store,
        start_track,
        end_track,
        steps=steps,
        max_per_artist=max_per_artist,
        fixed_size=fixed_size,
    )


def _seed_vector(store: Store, seed: Seed) -> list[float]:
    if seed.track_id is not None:
        vector = require_track(store, seed.track_id).vector
    else:
        assert seed.artist is not None
        vector = resolve_artist(store, seed.artist, with_centroid=True).centroid
    assert vector is not None
    return vector


def _seed_track(store: Store, seed: Seed, *, toward: list[float]) -> Track:
    if seed.track_id is not None:
        return require_track(store, seed.track_id)
    assert seed.artist is not None
    artist = resolve_artist(store, seed.artist)
    hits = store.search_tracks(toward, limit=1, artist_keys=[artist.artist_key], with_vectors=True)
    if not hits:
        raise InvalidRequest(f"artist {artist.name!r} has no tracks left")
    return hits[0].track


def path_between(
    store: Store,
    start: Track,
    end: Track,
    *,
    steps: int,
    max_per_artist: int | None = None,
    fixed_size: bool = True,
) -> SonicPath:
    """The path between two tracks that carry their vectors."""
    _check(steps, max_per_artist)
    assert start.vector is not None and end.vector is not None
    a, b = _unit(start.vector), _unit(end.vector)
    direct = float(a @ b)
    used = {start.track_id, end.track_id}
    per_artist: dict[str, int] = {}
    for track in (start, end):
        per_artist[track.artist_key] = per_artist.get(track.artist_key, 0) + 1
    chosen: list[tuple[Track, np.ndarray]] = [(start, a)]
    for waypoint in waypoints(a, b, steps - 2):
        previous = chosen[-1][1]
        pick = _pick(
            store, waypoint, previous, b, direct, used, per_artist, max_per_artist, fixed_size
        )
        if pick is None or (not pick[2] and not fixed_size):
            continue
        track, vector, _within = pick
        chosen.append((track, vector))
        used.add(track.track_id)
        per_artist[track.artist_key] = per_artist.get(track.artist_key, 0) + 1
    chosen.append((end, b))
    path = [PathStep(start, None)]
    total = 0.0
    for (_, before), (track, vector) in zip(chosen, chosen[1:], strict=False):
        score = float(np.clip(before @ vector, -1.0, 1.0))
        total += 1.0 - score
        path.append(PathStep(track, score))
    return SonicPath(path, total)


def _pick(
    store: Store,
    waypoint: np.ndarray,
    previous: np.ndarray,
    end: np.ndarray,
    direct: float,
    used: set[str],
    per_artist: dict[str, int],
    max_per_artist: int | None,
    fixed_size: bool,
) -> tuple[Track, np.ndarray, bool] | None:
    """The track for one waypoint: (track, unit vector, whether both its hop from `previous`
    and its distance to `end` are within the direct distance); None when every candidate is
    used or capped. A wider read is made when the first has no usable track (or, without
    `fixed_size`, none within the direct distance)."""
    fallback: tuple[Track, np.ndarray, bool] | None = None
    seen: set[str] = set()
    for limit in (CANDIDATES, WIDE_CANDIDATES):
        hits = store.search_tracks(waypoint, limit=limit, exclude_ids=used)
        allowed = [
            hit.track.track_id
            for hit in hits
            if hit.track.track_id not in seen
            and (max_per_artist is None or per_artist.get(hit.track.artist_key, 0) < max_per_artist)
        ]
        # Vectors are read a few candidates at a time: the first usually fits, and reading
        # every candidate's vector costs more than the search itself.
        for batch_start in range(0, len(allowed), VECTOR_BATCH):
            batch = allowed[batch_start : batch_start + VECTOR_BATCH]
            seen.update(batch)
            for track in store.get_tracks(batch, with_vectors=True):
                assert track.vector is not None
                vector = _unit(track.vector)
                within = (
                    float(previous @ vector) >= direct - _SLACK
                    and float(vector @ end) >= direct - _SLACK
                )
                if within:
                    return track, vector, True
                if fallback is None:
                    fallback = (track, vector, False)
            if fixed_size and fallback is not None and batch_start + VECTOR_BATCH >= 32:
                break  # enough looked at: the nearest usable track keeps the length
        if len(hits) < limit or (fixed_size and fallback is not None):
            break  # every remaining track was read, or a track that keeps the length was
    return fallback
