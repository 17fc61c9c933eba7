"""The shard plan at scale: `soundalike ingest --shard i/N` over a generated catalogue of
1,000,000 artists, simulated with the product's own `Shard` (no cluster, no audio).

Each worker must get its artists exactly once, and the tracks, whose count per artist is skewed
like a real catalogue's, must spread within a few percent: the slowest worker sets the ingest's
wall time. `python tests/deploy/test_shard_plan.py` prints the spread for this catalogue and for
a heavier-tailed one (docs/kubernetes.md, "How even the shards are").
"""

from __future__ import annotations

import random
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import pytest

from soundalike.core.artist_names import artist_key
from soundalike.ingest.stages import Shard

ARTISTS = 1_000_000
SHARD_COUNTS = (4, 16, 64)
SEED = 20261205
# Tracks per artist: Zipf-Mandelbrot, P(k) proportional to (k + 10)^-3 for k = 1..5,000. Median
# 5 tracks (an album), mean 11 (~11 million tracks), a power-law tail: one artist in a hundred
# has 100 or more, the 100 biggest hold 1.5 % of the catalogue.
TRACKS_EXPONENT = 3.0
TRACKS_SHIFT = 10.0
MOST_TRACKS = 5_000
# How far the fullest and the emptiest worker may be from the mean: about 5 standard deviations
# of a perfectly random assignment of this catalogue (artists are whole: the spread of tracks
# grows with N as each worker's share holds fewer artists).
ARTIST_SPREAD = {4: 0.01, 16: 0.02, 64: 0.04}
TRACK_SPREAD = {4: 0.02, 16: 0.05, 64: 0.10}
# Artists whose ownership is checked worker by worker (every i of N), exactly.
CHECKED_ARTISTS = 1_000

WORDS = ("the", "black", "velvet", "echo", "river", "iron", "quartet", "choir", "owls", "neon")


def artist_names(count: int) -> list[str]:
    """`count` distinct artist names, already folded as artist keys ("silver owls 41")."""
    words = len(WORDS)
    return [
        f"{WORDS[i % words]} {WORDS[i // words % words]} {i // (words * words)}"
        for i in range(count)
    ]


def track_counts(
    count: int, *, exponent: float, shift: float, most: int, seed: int = SEED
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Tracks of each of `count` artists: P(k) proportional to (k + shift)^-exponent."""
    sizes = np.arange(1, most + 1)
    weights = (sizes + shift) ** -exponent
    rng = np.random.default_rng(seed)
    return rng.choice(sizes, size=count, p=weights / weights.sum()).astype(np.int64)


class OwnerProbe:
    """Stands in for `Shard.index`. `Shard(i, N).owns(key)` tells whether the key's hash
    modulo N equals i; comparing this probe records that value instead, i.e. the worker that
    owns the key: the product's own hashing, one call per artist rather than N."""

    def __init__(self) -> None:
        self.owners: list[int] = []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, int):
            return NotImplemented
        self.owners.append(other)
        return False

    __hash__ = None  # type: ignore[assignment]


def owners(keys: Sequence[str], count: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The worker of `--shard i/count` that takes each key."""
    probe = OwnerProbe()
    deque(map(Shard(probe, count).owns, keys), maxlen=0)  # type: ignore[arg-type]
    assert len(probe.owners) == len(keys), "Shard.owns no longer compares a shard with i"
    return np.asarray(probe.owners, dtype=np.int64)


@dataclass(frozen=True)
class Spread:
    """How far the fullest (`over`) and the emptiest (`under`) worker are from the mean."""

    over: float
    under: float

    @classmethod
    def of(cls, loads: np.ndarray[Any, np.dtype[Any]]) -> Spread:
        mean = float(loads.mean())
        return cls(float(loads.max()) / mean - 1, 1 - float(loads.min()) / mean)

    @property
    def worst(self) -> float:
        return max(self.over, self.under)


def spreads(
    plan: np.ndarray[Any, np.dtype[np.int64]],
    count: int,
    tracks: np.ndarray[Any, np.dtype[np.int64]],
) -> tuple[Spread, Spread]:
    """The spread of artists and of tracks over `count` workers."""
    artists = np.bincount(plan, minlength=count)
    return Spread.of(artists), Spread.of(np.bincount(plan, weights=tracks, minlength=count))


@pytest.fixture(scope="module")
def keys() -> list[str]:
    names = artist_names(ARTISTS)
    assert len(set(names)) == ARTISTS
    # The shard owns artist keys; these names are keys already (a sample, to stay fast).
    for name in random.Random(SEED).sample(names, 10_000):
        assert artist_key(name) == name
    return names


@pytest.fixture(scope="module")
def tracks() -> np.ndarray[Any, np.dtype[np.int64]]:
    counts = track_counts(ARTISTS, exponent=TRACKS_EXPONENT, shift=TRACKS_SHIFT, most=MOST_TRACKS)
    # The catalogue the plan is sized for: ~10 million tracks, skewed.
    assert 9e6 < counts.sum() < 13e6
    assert np.median(counts) <= 6 and counts.max() >= 1_000
    return counts


@pytest.fixture(scope="module")
def plans(keys: list[str]) -> dict[int, np.ndarray[Any, np.dtype[np.int64]]]:
    return {count: owners(keys, count) for count in SHARD_COUNTS}


@pytest.mark.parametrize("count", SHARD_COUNTS)
def test_every_worker_gets_its_artists_exactly_once(
    keys: list[str], plans: dict[int, np.ndarray[Any, np.dtype[np.int64]]], count: int
) -> None:
    plan = plans[count]
    assert len(plan) == ARTISTS and plan.min() >= 0 and plan.max() < count
    assert np.bincount(plan, minlength=count).sum() == ARTISTS
    # The real workers, each asked about each checked artist: exactly one takes it.
    checked = random.Random(count).sample(range(ARTISTS), CHECKED_ARTISTS)
    workers = [Shard(i, count) for i in range(count)]
    for index in checked:
        takers = [w.index for w in workers if w.owns(keys[index])]
        assert takers == [plan[index]], keys[index]


@pytest.mark.parametrize("count", SHARD_COUNTS)
def test_artists_and_tracks_spread_within_a_few_percent(
    plans: dict[int, np.ndarray[Any, np.dtype[np.int64]]],
    tracks: np.ndarray[Any, np.dtype[np.int64]],
    count: int,
) -> None:
    artists, songs = spreads(plans[count], count, tracks)
    assert artists.worst <= ARTIST_SPREAD[count], artists
    assert songs.worst <= TRACK_SPREAD[count], songs


def test_the_spread_check_fails_a_poor_partition(
    keys: list[str], tracks: np.ndarray[Any, np.dtype[np.int64]]
) -> None:
    # Splitting by the length of the name: every worker gets artists, far from evenly.
    count = 16
    by_length = np.fromiter((len(key) % count for key in keys), dtype=np.int64, count=len(keys))
    artists, songs = spreads(by_length, count, tracks)
    assert artists.worst > ARTIST_SPREAD[count] and songs.worst > TRACK_SPREAD[count]


def print_spreads() -> None:
    """The spread table of docs/kubernetes.md: this catalogue and a Lotka-tailed one."""
    keys = artist_names(ARTISTS)
    catalogues = {
        "Zipf-Mandelbrot (k+10)^-3": track_counts(
            ARTISTS, exponent=TRACKS_EXPONENT, shift=TRACKS_SHIFT, most=MOST_TRACKS
        ),
        "Lotka k^-2, up to 20,000": track_counts(ARTISTS, exponent=2.0, shift=0.0, most=20_000),
    }
    plans = {count: owners(keys, count) for count in SHARD_COUNTS}
    print("| catalogue | tracks | N | artists: fullest / emptiest | tracks: fullest / emptiest |")
    print("|---|---:|---:|---|---|")
    for (name, counts), count in product(catalogues.items(), SHARD_COUNTS):
        artists, songs = spreads(plans[count], count, counts)
        print(
            f"| {name} | {counts.sum():,} | {count} | +{artists.over:.2%} / "
            f"-{artists.under:.2%} | +{songs.over:.2%} / -{songs.under:.2%} |"
        )


if __name__ == "__main__":
    print_spreads()
    sys.exit(0)
