"""Store fixtures: one suite runs against Qdrant Edge (tmp dir) and qdrant-client :memory:."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from soundalike.core.artist_names import artist_key
from soundalike.core.identity import track_id
from soundalike.core.types import EmbeddingSpec, Track
from soundalike.search.store import Store, open_store

DIM = 16


@pytest.fixture
def spec() -> EmbeddingSpec:
    return EmbeddingSpec(
        model="test/random",
        revision=None,
        layer=11,
        window_seconds=30.0,
        excerpt="centre",
        pooling="mean",
        sample_rate=24000,
        dim=DIM,
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


UnitVector = Callable[..., np.ndarray]
MakeTrack = Callable[..., Track]


@pytest.fixture
def unit(rng: np.random.Generator) -> UnitVector:
    """unit(dim=16): a random unit vector."""

    def make(dim: int = DIM) -> np.ndarray:
        vector = rng.standard_normal(dim).astype(np.float32)
        return vector / np.linalg.norm(vector)

    return make


@pytest.fixture
def make_track(unit: UnitVector) -> MakeTrack:
    """make_track(artist, n, vector=None, **fields): track number n of an artist."""

    def make(artist: str, n: int, *, vector: np.ndarray | None = None, **fields: object) -> Track:
        key = artist_key(artist)
        content_hash = f"hash-{key}-{n}"
        values: dict[str, object] = {
            "title": f"{artist} song {n}",
            "path": f"/music/{artist}/{n}.flac",
            "duration_seconds": 180.0 + n,
            "content_hash": content_hash,
        }
        values.update(fields)
        return Track(
            track_id=track_id(content_hash, key),
            artist=artist,
            artist_key=key,
            vector=(vector if vector is not None else unit()).tolist(),
            **values,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture(params=["edge", "memory"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def empty_store(backend_kind: str, data_dir: Path) -> Iterator[Store]:
    store = open_store(data_dir=data_dir) if backend_kind == "edge" else open_store(in_memory=True)
    yield store
    store.close()


@pytest.fixture
def store(empty_store: Store, spec: EmbeddingSpec) -> Store:
    empty_store.ensure_spec(spec)
    return empty_store


@pytest.fixture
def stored_tracks(store: Store, make_track: MakeTrack) -> Callable[[list[str], int], list[Track]]:
    """stored_tracks(artists, per_artist): tracks 0 to per_artist - 1 of each artist written to
    the store, with their artists' centroids; gives the tracks."""

    def add(artists: list[str], per_artist: int) -> list[Track]:
        made = [make_track(artist, n) for artist in artists for n in range(per_artist)]
        store.upsert_tracks(made)
        store.recompute_centroids({t.artist_key for t in made})
        return made

    return add
