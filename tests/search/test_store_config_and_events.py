"""What the store is opened with (`StoreConfig`, `NeighbourConfig`), what its upkeep reports to
the event stream, and the cheap state of its neighbour lists that monitoring reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from soundalike.core.artist_names import artist_key
from soundalike.core.errors import InvalidRequest
from soundalike.core.events import Event, EventStream, UpkeepDone, UpkeepProgress
from soundalike.core.types import Artist, EmbeddingSpec, Track
from soundalike.search import neighbours
from soundalike.search.store import (
    DEFAULT_SEARCH_EF,
    NeighbourConfig,
    NeighbourListsState,
    Store,
    StoreConfig,
    open_store,
)

DIM = 16  # the conftest's spec
MakeTrack = Callable[..., Track]


def heard(events: list[Event]) -> EventStream:
    return EventStream(events.append)


def add_artists(store: Store, count: int, seed: int = 3) -> list[str]:
    rows = np.random.default_rng(seed).normal(size=(count, DIM))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    names = [f"Artist {i:03d}" for i in range(count)]
    store.upsert_artists(
        [
            Artist(name=name, artist_key=artist_key(name), track_count=1, centroid=row)
            for name, row in zip(names, rows.tolist(), strict=True)
        ]
    )
    return [artist_key(name) for name in names]


@pytest.fixture
def k5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists of 5, and cells of 40 artists of which 2 are probed: 160 artists build
    approximate lists above the threshold."""
    monkeypatch.setattr(neighbours, "K", 5)
    monkeypatch.setattr(neighbours, "CELL_ROWS", 40)
    monkeypatch.setattr(neighbours, "SAMPLE_PER_CELL", 8)
    monkeypatch.setattr(neighbours, "PROBES", 2)


@pytest.fixture
def options(backend_kind: str, data_dir: Path) -> dict[str, object]:
    return {"data_dir": data_dir} if backend_kind == "edge" else {"in_memory": True}


def test_a_config_opens_the_store_it_names_and_fields_replace_its_own(data_dir: Path) -> None:
    config = StoreConfig(data_dir=data_dir, search_ef=64, api_key="secret")
    assert "secret" not in repr(config)  # a config may be logged
    with open_store(config) as store:
        assert store.search_ef == 64
        assert store.tracks_collection == "tracks"
        assert not store.is_shared
    prefixed = dataclasses.replace(config, collection_prefix="x_")
    with open_store(prefixed, search_ef=None) as store:
        assert store.search_ef is None and store.tracks_collection == "x_tracks"
    assert StoreConfig().search_ef == DEFAULT_SEARCH_EF
    assert StoreConfig().neighbours == NeighbourConfig(device="cpu", approximate_above=None)


def test_a_config_is_checked_when_the_store_opens() -> None:
    with pytest.raises(InvalidRequest, match="either a Qdrant url or in_memory"):
        open_store(StoreConfig(url="http://localhost:6333", in_memory=True))
    with pytest.raises(InvalidRequest, match="search_ef"):
        open_store(in_memory=True, search_ef=0)
    with pytest.raises(TypeError):  # not a StoreConfig field
        open_store(in_memory=True, neighbours_device="cpu")


def test_a_server_store_notes_no_owner() -> None:
    with open_store(in_memory=True) as store:  # qdrant-client: no data dir to note in
        assert store.note_owner({"pid": 1, "url": "http://127.0.0.1:1"}) is False


def test_an_embedded_store_notes_its_owner(data_dir: Path) -> None:
    with open_store(data_dir=data_dir) as store:
        assert store.note_owner({"pid": 1, "url": "http://127.0.0.1:1"}) is True


def test_the_neighbour_config_reaches_the_rebuild(
    options: dict[str, object], spec: EmbeddingSpec, k5: None
) -> None:
    approximate = NeighbourConfig(approximate_above=100)
    with open_store(**options, neighbours=approximate) as store:  # type: ignore[arg-type]
        store.ensure_spec(spec)
        add_artists(store, 160)
        assert not store.rebuild_neighbour_lists().exact
    with open_store(**options) as store:  # type: ignore[arg-type]
        assert store.rebuild_neighbour_lists().exact


def test_recomputed_centroids_are_reported(
    options: dict[str, object], spec: EmbeddingSpec, make_track: MakeTrack
) -> None:
    events: list[Event] = []
    with open_store(**options, events=heard(events)) as store:  # type: ignore[arg-type]
        store.ensure_spec(spec)
        store.upsert_tracks([make_track("Alpha", i) for i in range(3)])
        store.upsert_tracks([make_track("Beta", 1)])
        assert store.recompute_centroids(["alpha", "beta", "gone"]) == 3
        assert store.recompute_centroids([]) == 0  # nothing asked: nothing to report
    done = [e for e in events if isinstance(e, UpkeepDone)]
    assert len(done) == 1
    assert (done[0].kind, done[0].artists) == ("centroids", 3) and done[0].seconds >= 0


def test_list_upkeep_reports_progress_and_completion(
    options: dict[str, object], spec: EmbeddingSpec, k5: None
) -> None:
    events: list[Event] = []
    with open_store(**options, events=heard(events)) as store:  # type: ignore[arg-type]
        store.ensure_spec(spec)
        keys = add_artists(store, 40)
        store.rebuild_neighbour_lists()
        progress = [e for e in events if isinstance(e, UpkeepProgress)]
        assert progress and {e.kind for e in progress} == {"neighbour_lists"}
        assert progress[-1].done == progress[-1].total == 40
        assert events[-1] == UpkeepDone("neighbour_lists", 40, events[-1].seconds)  # type: ignore[union-attr]

        events.clear()
        store.upsert_artists([Artist("Artist 000", keys[0], 1, centroid=[1.0] + [0.0] * (DIM - 1))])
        result = store.update_neighbour_lists({keys[0]})
        assert not result.full
        reported = [(e.done, e.total) for e in events if isinstance(e, UpkeepProgress)]
        assert reported and reported[-1] == (40, 40)
        assert isinstance(events[-1], UpkeepDone) and events[-1].artists == 40

        events.clear()
        store.update_neighbour_lists()  # up to date: nothing done, nothing reported
        assert events == []


def test_the_neighbour_lists_state_follows_the_catalogue(
    options: dict[str, object], spec: EmbeddingSpec, k5: None
) -> None:
    with open_store(**options) as store:  # type: ignore[arg-type]
        assert store.neighbour_lists_state() == NeighbourListsState(valid=False, exact=True)
        store.ensure_spec(spec)
        keys = add_artists(store, 30)
        assert not store.neighbour_lists_state().valid  # no lists yet
        store.rebuild_neighbour_lists()
        assert store.neighbour_lists_state() == NeighbourListsState(valid=True, exact=True)
        store.upsert_artists([Artist("Artist 000", keys[0], 1, centroid=[1.0] + [0.0] * (DIM - 1))])
        assert not store.neighbour_lists_state().valid  # a centroid changed since
        store.update_neighbour_lists()
        assert store.neighbour_lists_state().valid
    approximate = NeighbourConfig(approximate_above=100)
    with open_store(**options, neighbours=approximate) as store:  # type: ignore[arg-type]
        store.ensure_spec(spec, force=True)
        add_artists(store, 160)
        store.rebuild_neighbour_lists()
        assert store.neighbour_lists_state() == NeighbourListsState(valid=True, exact=False)
