"""The catalogue the HTTP benchmark serves: N artists with random (optionally clustered) unit
centroids, one track each for the track routes, and the neighbour lists built before the index
is optimised; plus how to serve it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks.common import BENCH_DIM, BENCH_SPEC, serve_command
from soundalike.core.artist_names import artist_key
from soundalike.core.identity import track_id
from soundalike.core.types import Artist, Track
from soundalike.search.store import Store

# The benchmark whose `--serve-local` serves a qdrant-client local store.
HTTP_MODULE = "benchmarks.http"
WRITE_BATCH = 2000
CLUSTER_SPREAD = 0.6


def artist_name(index: int) -> str:
    return f"Bench Artist {index:06d}"


def bench_track_ids(tracks: int) -> list[str]:
    """The ids `fill_store` gives the tracks of the first `tracks` artists."""
    keys = [artist_key(artist_name(i)) for i in range(tracks)]
    return [track_id(f"bench-{key}", key) for key in keys]


def random_centroids(
    rng: np.random.Generator, count: int, centres: np.ndarray | None
) -> np.ndarray:
    """Unit vectors: uniform on the sphere, or scattered around random cluster centres (cosine
    ~0.86 to their centre), which is closer to how real artists group into styles."""
    vectors = rng.standard_normal((count, BENCH_DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    if centres is not None:
        vectors = centres[rng.integers(0, len(centres), size=count)] + CLUSTER_SPREAD * vectors
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def fill_store(
    store: Store, artists: int, tracks: int, *, clusters: int = 0, seed: int = 0
) -> list[str]:
    """Writes `artists` artists with random unit centroids and one track for each of the first
    `tracks` artists; returns the track ids."""
    rng = np.random.default_rng(seed)
    centres = random_centroids(rng, clusters, None) if clusters > 0 else None
    store.ensure_spec(BENCH_SPEC)
    track_ids: list[str] = []
    for start in range(0, artists, WRITE_BATCH):
        count = min(WRITE_BATCH, artists - start)
        centroids = random_centroids(rng, count, centres)
        batch = [
            Artist(
                name=artist_name(start + i),
                artist_key=artist_key(artist_name(start + i)),
                track_count=int(rng.integers(1, 20)),
                centroid=centroids[i].tolist(),
            )
            for i in range(count)
        ]
        store.upsert_artists(batch)
        batch_tracks = [
            Track(
                track_id=track_id(f"bench-{a.artist_key}", a.artist_key),
                artist=a.name,
                artist_key=a.artist_key,
                vector=a.centroid,
                title=f"{a.name} - first track",
                album="Bench",
                genre="bench",
                year=2024,
            )
            for index, a in enumerate(batch, start)
            if index < tracks
        ]
        if batch_tracks:
            store.upsert_tracks(batch_tracks)
            track_ids += [t.track_id for t in batch_tracks]
    store.flush()
    # What an ingest leaves behind: exact neighbour lists (artists-like-X is a lookup), then
    # the optimisation, since the lists' payload writes move points out of indexed segments.
    store.rebuild_neighbour_lists()
    store.optimize()
    return track_ids


def open_local_store(path: Path) -> Store:
    """qdrant-client's local mode persisted under `path` (the store's test double)."""
    from soundalike.search.server_store import ServerBackend

    return Store(ServerBackend.local_path(path))


def server_command(backend: str, data_dir: Path, port: int) -> list[str]:
    """The command serving `backend` (the placement pins it; this says what to run)."""
    if backend == "edge":
        return serve_command(data_dir, port)
    # The CLI serves Edge or a Qdrant server only: this module serves local mode itself.
    return [sys.executable, "-m", HTTP_MODULE, "--serve-local", str(data_dir), "--port", str(port)]


def serve_local(data_dir: Path, port: int) -> None:
    """The API over qdrant-client's local mode."""
    import uvicorn

    from soundalike.api.main import create_app
    from soundalike.api.services import Services
    from soundalike.api.settings import Settings
    from soundalike.core.events import EventStream

    settings = Settings(data_dir=data_dir, log_level="warning")

    # Services' StoreOpener signature; the store's upkeep events are not measured here, so the
    # stream is not handed on.
    def open_local(_settings: Settings, _events: EventStream) -> Store:
        return open_local_store(data_dir)

    with Services(settings, store_opener=open_local) as services:
        app = create_app(services=services)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
