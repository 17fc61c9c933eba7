"""What goes into each playlist, decided before anything is written to the server.

Mixes: the listener's seeds are grouped by sound (a weighted spherical k-means over their
vectors: groups of seeds that sound alike, whatever their tags say), strongest group first;
each group's weighted centre is a radio station, and its mix takes the station's best tracks
with at most `max_per_artist` per artist, no track already in an earlier mix, no starred song
(the listener has those), and at least `discovery` of its tracks from artists the listener has
not starred or played, when the catalogue has them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from soundalike.core.errors import InvalidRequest
from soundalike.core.types import Track, TrackHit
from soundalike.mixes.taste import ServerCatalogue, Taste, TasteSeed
from soundalike.search.queries import MAX_CANDIDATES
from soundalike.search.radio import radio_towards

MAX_MIXES = 20
MAX_MIX_SIZE = 200
DEFAULT_MIXES = 3
DEFAULT_MIX_SIZE = 25
DEFAULT_PREFIX = "Sonic Mix"
DEFAULT_MAX_PER_ARTIST = 3
DEFAULT_DISCOVERY = 0.3
KMEANS_ROUNDS = 30
# Candidates read per mix, as a multiple of its size: the per-artist cap, the other mixes and
# the discovery share all drop some.
CANDIDATES_PER_SONG = 6


@dataclass(frozen=True)
class PlannedSong:
    """A track of a playlist and the server's id for it."""

    song_id: str
    track: Track

    def to_dict(self) -> dict[str, str | None]:
        return {"id": self.song_id, "artist": self.track.artist, "title": self.track.title}


@dataclass(frozen=True)
class PlannedMix:
    name: str
    seeds: list[TasteSeed]
    songs: list[PlannedSong]


@dataclass(frozen=True)
class MixOptions:
    count: int = DEFAULT_MIXES
    size: int = DEFAULT_MIX_SIZE
    prefix: str = DEFAULT_PREFIX
    max_per_artist: int = DEFAULT_MAX_PER_ARTIST
    discovery: float = DEFAULT_DISCOVERY

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_MIXES:
            raise InvalidRequest(f"the number of mixes must be between 1 and {MAX_MIXES}")
        if not 1 <= self.size <= MAX_MIX_SIZE:
            raise InvalidRequest(f"a mix's size must be between 1 and {MAX_MIX_SIZE}")
        if not self.prefix.strip() or len(self.prefix) > 100:
            raise InvalidRequest("the mixes' name prefix must be 1 to 100 characters")
        if self.max_per_artist < 1:
            raise InvalidRequest("max_per_artist must be at least 1")
        if not 0.0 <= self.discovery <= 1.0:
            raise InvalidRequest("the discovery share must be between 0 and 1")

    def name(self, number: int) -> str:
        return f"{self.prefix.strip()} {number}"


def group_by_sound(vectors: np.ndarray, weights: np.ndarray, count: int) -> list[list[int]]:
    """Up to `count` groups of the rows of `vectors` (unit vectors) that sound alike, as
    lists of row indices, heaviest group (sum of `weights`) first. Deterministic: the first
    centre is the heaviest seed, each next one the seed farthest (weighted) from those
    chosen; then weighted spherical k-means until no seed moves."""
    n = len(vectors)
    if n == 0:
        return []
    centres = [vectors[int(np.argmax(weights))]]
    while len(centres) < min(count, n):
        closeness = np.max(vectors @ np.stack(centres).T, axis=1)
        spread = (1.0 - closeness) * weights
        farthest = int(np.argmax(spread))
        if spread[farthest] <= 1e-6:  # every seed sits on a centre already
            break
        centres.append(vectors[farthest])
    assignment = np.full(n, -1)
    for _ in range(KMEANS_ROUNDS):
        moved = np.argmax(vectors @ np.stack(centres).T, axis=1)
        if np.array_equal(moved, assignment):
            break
        assignment = moved
        for group in range(len(centres)):
            members = assignment == group
            if members.any():
                total = (weights[members, None] * vectors[members]).sum(axis=0)
                norm = float(np.linalg.norm(total))
                if norm > 1e-9:
                    centres[group] = total / norm
    groups = [[int(i) for i in np.flatnonzero(assignment == g)] for g in range(len(centres))]
    groups = [g for g in groups if g]
    return sorted(groups, key=lambda g: (-float(weights[g].sum()), g[0]))


@dataclass(frozen=True)
class MixPlan:
    mixes: list[PlannedMix]
    # Groups of seeds whose station found no song left (the earlier mixes took them, or none
    # is a song of this server): fewer mixes than asked.
    unfilled: list[list[TasteSeed]]


def plan_mixes(catalogue: ServerCatalogue, taste: Taste, options: MixOptions) -> MixPlan:
    """The mixes' songs (see the module's doc); a group whose station finds no song of this
    server is left out, so fewer than `options.count` mixes may come back."""
    vectors = np.stack([seed.vector for seed in taste.seeds]).astype(np.float32)
    weights = np.array([seed.weight for seed in taste.seeds], dtype=np.float32)
    used: set[str] = {t for seed in taste.seeds for t in seed.track_ids}
    planned: list[tuple[list[TasteSeed], list[PlannedSong]]] = []
    unfilled: list[list[TasteSeed]] = []
    for group in group_by_sound(vectors, weights, options.count):
        centre = (weights[group, None] * vectors[group]).sum(axis=0)
        hits = radio_towards(
            catalogue.store,
            [centre],
            limit=min(MAX_CANDIDATES, options.size * CANDIDATES_PER_SONG),
            max_per_artist=None,
            exclude_track_ids=used,
        )
        songs = _pick(catalogue, hits, taste.known_artist_keys, options)
        seeds = sorted((taste.seeds[i] for i in group), key=lambda s: -s.weight)
        if songs:
            used.update(song.track.track_id for song in songs)
            planned.append((seeds, songs))
        else:
            unfilled.append(seeds)
    mixes = [
        PlannedMix(options.name(number), seeds, songs)
        for number, (seeds, songs) in enumerate(planned, 1)
    ]
    return MixPlan(mixes, unfilled)


def _pick(
    catalogue: ServerCatalogue, hits: list[TrackHit], known: set[str], options: MixOptions
) -> list[PlannedSong]:
    """The mix's songs from the station's hits (best first): the per-artist cap, then the
    discovery share from unknown artists, the rest from the best of all; in station order."""
    per_artist: Counter[str] = Counter()
    eligible: list[tuple[int, PlannedSong]] = []
    for rank, hit in enumerate(hits):
        song_id = catalogue.song_id(hit.track)
        if song_id is None or per_artist[hit.track.artist_key] >= options.max_per_artist:
            continue
        per_artist[hit.track.artist_key] += 1
        eligible.append((rank, PlannedSong(song_id, hit.track)))
    discovery_wanted = math.ceil(options.discovery * options.size)
    fresh = [e for e in eligible if e[1].track.artist_key not in known][:discovery_wanted]
    taken = {rank for rank, _ in fresh}
    rest = [e for e in eligible if e[0] not in taken][: options.size - len(fresh)]
    return [song for _, song in sorted(fresh + rest, key=lambda e: e[0])]
