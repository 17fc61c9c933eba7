"""The tracks an evaluation looks at: the store's (with or without their vectors) or a folder's
or manifest's, and a fixed per-artist sample of them."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soundalike.core.artist_names import artist_key
from soundalike.core.errors import InvalidRequest
from soundalike.ingest.sources import ArtistFrom, Problem, source_for
from soundalike.search.store import Store

ARTIST_PAGE = 1000


@dataclass
class EvalTrack:
    artist: str
    artist_key: str
    path: str | None
    vector: np.ndarray | None = None


def skipped_entry(track: EvalTrack, reason: str) -> dict[str, str]:
    """A row of the report's skipped list."""
    return {"path": track.path or "", "artist": track.artist, "reason": reason}


def _stable_seed(seed: int, key: str) -> list[int]:
    return [seed, int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:4], "big")]


def sample_tracks(tracks: list[EvalTrack], sample: int | None, seed: int) -> list[EvalTrack]:
    """Up to `sample` tracks per artist, the same ones on every run (per-artist seeds, so adding
    an artist does not change the others' picks). Artists keep their order, tracks their path
    order."""
    by_artist: dict[str, list[EvalTrack]] = defaultdict(list)
    for track in tracks:
        by_artist[track.artist_key].append(track)
    chosen: list[EvalTrack] = []
    for key, group in by_artist.items():
        group = sorted(group, key=lambda t: t.path or "")
        if sample is not None and len(group) > sample:
            rng = np.random.default_rng(_stable_seed(seed, key))
            picks = sorted(rng.choice(len(group), size=sample, replace=False).tolist())
            group = [group[i] for i in picks]
        chosen.extend(group)
    return chosen


def require_two_artists(tracks: Sequence[EvalTrack]) -> None:
    artists = {t.artist_key for t in tracks}
    if len(artists) < 2:
        raise InvalidRequest(
            f"evaluation needs at least two artists with usable tracks; found {len(artists)} "
            f"({len(tracks)} tracks)"
        )


def tracks_from_store(store: Store, *, with_vectors: bool) -> list[EvalTrack]:
    """Every stored track, artist by artist in the store's order."""
    tracks: list[EvalTrack] = []
    offset = 0
    while True:
        artists, total = store.list_artists(limit=ARTIST_PAGE, offset=offset)
        for artist in artists:
            for track in store.tracks_of_artist(artist.artist_key, with_vectors=with_vectors):
                vector = None
                if with_vectors and track.vector is not None:
                    vector = np.asarray(track.vector, dtype=np.float64)
                tracks.append(EvalTrack(artist.name, artist.artist_key, track.path, vector))
        offset += len(artists)
        if not artists or offset >= total:
            return tracks


def tracks_from_source(
    source: Path, artist_from: ArtistFrom
) -> tuple[list[EvalTrack], list[dict[str, str]]]:
    """(the tracks of a folder or manifest sorted by artist key then path, what was refused)."""
    problems: list[dict[str, str]] = []
    display: dict[str, str] = {}
    tracks: list[EvalTrack] = []
    for found in source_for(source, artist_from=artist_from).tracks():
        if isinstance(found, Problem):
            problems.append({"path": found.location, "reason": found.reason})
            continue
        try:
            key = artist_key(found.artist)
        except InvalidRequest:
            problems.append({"path": found.location, "reason": "empty artist name"})
            continue
        # One display name per key: "ABBA" and "abba" are one artist.
        name = display.setdefault(key, found.artist)
        tracks.append(EvalTrack(name, key, found.location))
    tracks.sort(key=lambda t: (t.artist_key, t.path or ""))
    return tracks, problems
