"""Several Stores on one Qdrant: a spec written or replaced elsewhere is seen, and collection
creation survives workers that start together. Two Store objects over one backend stand in for
two processes on one server."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from qdrant_client.http.exceptions import UnexpectedResponse

from soundalike.core.errors import SpecMismatch, StoreError
from soundalike.core.identity import track_id
from soundalike.core.types import Artist, EmbeddingSpec, Track
from soundalike.search.backend import Backend, StoredPoint
from soundalike.search.edge_store import EdgeBackend
from soundalike.search.schema import SPEC_METADATA_KEY
from soundalike.search.server_store import ServerBackend
from soundalike.search.store import SPEC_RECHECK_S, Store

MakeTrack = Callable[..., Track]


@pytest.fixture
def shared_backend(backend_kind: str, data_dir: Path) -> Iterator[Backend]:
    backend: Backend = (
        EdgeBackend(data_dir) if backend_kind == "edge" else ServerBackend.in_memory()
    )
    yield backend
    backend.close()


@pytest.fixture
def memory_backend() -> Iterator[ServerBackend]:
    backend = ServerBackend.in_memory()
    yield backend
    backend.close()


def _artist(name: str, dim: int = 16) -> Artist:
    centroid = np.zeros(dim)
    centroid[0] = 1.0
    return Artist(name, name.lower(), track_count=1, centroid=centroid.tolist())


# --- the spec seen by a running Store ---------------------------------------------------------


def test_a_store_opened_before_the_first_ingest_sees_it_on_the_next_call(
    shared_backend: Backend, spec: EmbeddingSpec
) -> None:
    api = Store(shared_backend)
    assert api.spec() is None
    assert api.list_artists() == ([], 0)

    ingest = Store(shared_backend)
    ingest.ensure_spec(spec)
    ingest.upsert_artists([_artist("Alpha")])

    assert api.spec() == spec
    assert [a.name for a in api.list_artists()[0]] == ["Alpha"]
    assert api.artist_names() == {"alpha": "Alpha"}


def test_a_replaced_spec_is_seen_within_the_recheck_time(
    memory_backend: ServerBackend, spec: EmbeddingSpec
) -> None:
    assert SPEC_RECHECK_S <= 5.0  # "within a few seconds" by default
    writer = Store(memory_backend)
    writer.ensure_spec(spec)
    writer.upsert_artists([_artist("Old")])
    api = Store(memory_backend, spec_recheck_seconds=0.2)
    assert api.spec() == spec
    assert api.artist_names() == {"old": "Old"}

    rebuilt = dataclasses.replace(spec, dim=8, layer=3)
    writer.ensure_spec(rebuilt, force=True)
    writer.upsert_artists([_artist("New", dim=8)])

    time.sleep(0.3)
    assert api.spec() == rebuilt
    # The names of the dropped collection go with it.
    assert api.artist_names() == {"new": "New"}


def calls_to(target: object, method: str, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records the first argument of every call to `target.method` (which still runs)."""
    calls: list[object] = []
    real = getattr(target, method)

    def counted(first: object, *rest: object, **named: object) -> object:
        calls.append(first)
        return real(first, *rest, **named)

    monkeypatch.setattr(target, method, counted)
    return calls


def test_a_known_spec_is_not_read_again_within_the_recheck_time(
    memory_backend: ServerBackend, spec: EmbeddingSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(memory_backend).ensure_spec(spec)
    api = Store(memory_backend, spec_recheck_seconds=60.0)
    reads = calls_to(memory_backend, "read_metadata", monkeypatch)
    for _ in range(50):
        assert api.spec() == spec
    assert len(reads) == 1


def test_an_absent_spec_is_looked_for_on_every_call(
    memory_backend: ServerBackend, spec: EmbeddingSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Store(memory_backend, spec_recheck_seconds=60.0)
    looks = calls_to(memory_backend, "collection_exists", monkeypatch)
    for _ in range(3):
        assert api.spec() is None
    assert len(looks) == 3


# --- creating the collections -------------------------------------------------------------------


def test_two_stores_creating_at_once_both_succeed(
    shared_backend: Backend, spec: EmbeddingSpec, make_track: MakeTrack
) -> None:
    stores = [Store(shared_backend), Store(shared_backend)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def create(store: Store) -> None:
        start.wait()
        try:
            store.ensure_spec(spec)
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    for n, store in enumerate(stores):
        assert store.spec() == spec
        store.upsert_tracks([make_track("A", n)])
    assert stores[0].count_tracks() == 2


def test_already_exists_from_a_concurrent_create_is_accepted(
    memory_backend: ServerBackend,
    spec: EmbeddingSpec,
    make_track: MakeTrack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server answers 409 when another worker created the collection between our look-up
    and our create: the collection is there, which is all we wanted."""
    client = memory_backend._client
    real_create = client.create_collection
    conflicts: list[str] = []

    def create_then_conflict(name: str, **kwargs: object) -> bool:
        real_create(name, **kwargs)  # type: ignore[arg-type]
        conflicts.append(name)
        raise UnexpectedResponse(
            409,
            "Conflict",
            b'{"status":{"error":"Wrong input: Collection already exists!"}}',
            httpx.Headers(),
        )

    monkeypatch.setattr(client, "create_collection", create_then_conflict)
    store = Store(memory_backend)
    store.ensure_spec(spec)
    assert conflicts == ["tracks", "artists"]
    assert store.spec() == spec
    store.upsert_tracks([make_track("A", 1)])
    assert store.count_tracks() == 1


def test_an_existing_empty_collection_is_completed_not_dropped(
    memory_backend: ServerBackend, spec: EmbeddingSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A creation interrupted before its spec was written (or still under way elsewhere)."""
    memory_backend.create_collection("tracks", spec.dim)

    def no_drop(name: str) -> None:
        raise AssertionError(f"dropped {name} without --force")

    monkeypatch.setattr(memory_backend, "drop_collection", no_drop)
    store = Store(memory_backend)
    store.ensure_spec(spec)
    assert store.spec() == spec


def test_an_existing_collection_of_another_size_is_refused_not_dropped(
    memory_backend: ServerBackend, spec: EmbeddingSpec
) -> None:
    memory_backend.create_collection("tracks", 8)
    store = Store(memory_backend)
    with pytest.raises(StoreError, match="8-dim vectors, the embedding spec asks for 16"):
        store.ensure_spec(spec)
    assert memory_backend.vector_size("tracks") == 8
    assert store.spec() is None


def test_points_without_a_spec_are_refused_and_kept(
    memory_backend: ServerBackend, spec: EmbeddingSpec
) -> None:
    memory_backend.create_collection("tracks", spec.dim)
    stray = StoredPoint(track_id("h", "k"), [1.0] + [0.0] * (spec.dim - 1), {"artist": "?"})
    memory_backend.upsert("tracks", [stray])
    store = Store(memory_backend)
    with pytest.raises(StoreError, match="holds points but no embedding spec.*--force"):
        store.ensure_spec(spec)
    assert memory_backend.count("tracks") == 1
    store.ensure_spec(spec, force=True)
    assert store.spec() == spec and store.count_tracks() == 0


def test_of_two_creators_with_different_specs_the_overwritten_one_is_refused(
    memory_backend: ServerBackend, spec: EmbeddingSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = dataclasses.replace(spec, layer=5)
    real_write = memory_backend.write_metadata

    def write_then_lose_the_race(name: str, metadata: dict) -> None:
        real_write(name, metadata)
        real_write(name, {SPEC_METADATA_KEY: other.to_dict()})  # the other worker, just after

    monkeypatch.setattr(memory_backend, "write_metadata", write_then_lose_the_race)
    store = Store(memory_backend)
    with pytest.raises(SpecMismatch, match="layer: stored 5, requested 11"):
        store.ensure_spec(spec)
    assert store.spec() == other


def test_a_forced_rebuild_with_the_same_spec_forgets_the_old_names(
    store: Store, spec: EmbeddingSpec
) -> None:
    store.upsert_artists([_artist("Alpha")])
    assert store.artist_names() == {"alpha": "Alpha"}
    store.ensure_spec(spec, force=True)
    assert store.artist_names() == {}
    assert store.list_artists() == ([], 0)
