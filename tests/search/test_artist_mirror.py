"""The embedded store's in-memory copy of its artists: lookups answered without a store read,
list upkeep without reading the catalogue back, and never an answer for another catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.core.types import Artist, EmbeddingSpec
from soundalike.search import neighbour_lists, neighbours
from soundalike.search.queries import artists_like
from soundalike.search.store import Store, open_store

from .conftest import DIM
from .test_neighbours import (
    add_artists,
    add_move_and_delete,
    assert_stored_lists_exact,
    unit_rows,
    with_lists,
)


@pytest.fixture
def k5(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(neighbours, "K", 5)
    return 5


@pytest.fixture
def edge(data_dir: Path, spec: EmbeddingSpec) -> Iterator[Store]:
    store = open_store(data_dir=data_dir)
    store.ensure_spec(spec)
    yield store
    store.close()


class Reads:
    """Counts the backend reads of the artists collection."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        backend = store.backend_for_tests
        for method in ("retrieve", "scroll", "search"):
            real = getattr(backend, method)

            def counting(name: str, *args: Any, _real: Any = real, _m: str = method, **kw: Any):  # type: ignore[no-untyped-def]
                if name == store.artists_collection:
                    self.calls.append(_m)
                return _real(name, *args, **kw)

            monkeypatch.setattr(backend, method, counting)


def keys_of(answer: Any) -> list[str]:
    return [r.hit.artist.artist_key for r in answer.results]


def test_lookups_come_from_memory_and_equal_the_store_and_live_answers(
    edge: Store, k5: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, keys = with_lists(edge, 11, 30)
    assert edge.answers_from_memory()

    reads = Reads(edge, monkeypatch)
    name = edge.get_artist(keys[4])
    assert name is not None
    # Lists of 5; artists have 1 to 3 tracks: a list cannot fill "at least 4 tracks", so that
    # case searches live (and finds no one).
    for limit, min_tracks, answered_from_memory in ((3, 1, True), (5, 1, True), (2, 4, False)):
        from_memory = artists_like(edge, name.name, limit=limit, min_tracks=min_tracks)
        assert (not reads.calls) == answered_from_memory, (limit, min_tracks, reads.calls)
        live = artists_like(edge, name.name, limit=limit, min_tracks=min_tracks, lookup=False)
        assert keys_of(from_memory) == keys_of(live)
        assert [r.hit.artist.track_count for r in from_memory.results] == [
            r.hit.artist.track_count for r in live.results
        ]
        reads.calls.clear()
    # The same artist through the store path (no copy in memory) answers the same.
    fresh = Store(edge.backend_for_tests)
    assert not fresh.answers_from_memory()
    assert keys_of(artists_like(fresh, name.name, limit=5)) == keys_of(
        artists_like(edge, name.name, limit=5)
    )


def test_upkeep_from_memory_reads_only_what_changed_and_stays_exact(
    edge: Store, k5: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(neighbour_lists, "FULL_REBUILD_SHARE", 1.0)
    rng, keys = with_lists(edge, 12, 40)
    reads = Reads(edge, monkeypatch)

    add_move_and_delete(edge, rng, keys)  # keys[9]'s row is refilled from the end
    edge.delete_artist(keys[39])
    assert not edge.answers_from_memory()  # the catalogue moved on: not served
    result = edge.update_neighbour_lists()
    assert not result.full and result.changed == 3
    assert edge.list_artists()[1] == 40
    assert "scroll" not in reads.calls, "the upkeep read the whole catalogue back"
    assert edge.answers_from_memory()
    assert_stored_lists_exact(edge, k5)
    # What memory serves is what is stored: a store with no copy reads the same lists.
    fresh = Store(edge.backend_for_tests)
    for key in keys[:12]:
        if key in (keys[9], keys[39]):
            continue
        in_memory = edge.neighbours_of(key, limit=5)
        stored = fresh.neighbours_of(key, limit=5)
        assert in_memory is not None and stored is not None
        assert [(h.artist.artist_key, h.artist.track_count) for h in in_memory] == [
            (h.artist.artist_key, h.artist.track_count) for h in stored
        ]
        np.testing.assert_allclose(
            [h.score for h in in_memory], [h.score for h in stored], atol=1.6e-5
        )


def test_a_restart_loads_the_copy_and_finds_nothing_changed(
    data_dir: Path, spec: EmbeddingSpec, k5: int
) -> None:
    store = open_store(data_dir=data_dir)
    store.ensure_spec(spec)
    keys = add_artists(store, unit_rows(np.random.default_rng(13), 25, DIM))
    store.rebuild_neighbour_lists()
    store.close()

    again = open_store(data_dir=data_dir)
    try:
        assert not again.answers_from_memory()
        assert again.load_in_memory()
        assert again.answers_from_memory()
        # Centroids held bit for bit as stored: every list's fingerprint still matches.
        result = again.update_neighbour_lists([keys[0]])
        assert result.changed == 1 and result.written <= 1 + 5
        assert_stored_lists_exact(again, k5)
    finally:
        again.close()


def test_artists_written_while_the_copy_loads_are_read_again(
    edge: Store, k5: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng, keys = with_lists(edge, 14, 20)
    fresh = Store(edge.backend_for_tests)  # a second Store on the same backend: no copy yet
    backend = fresh.backend_for_tests
    real_scroll = backend.scroll
    renamed = Artist(
        name="Renamed While Loading",
        artist_key=keys[2],
        track_count=7,
        centroid=unit_rows(rng, 1, DIM)[0].tolist(),
    )

    def scroll_then_write(name: str, scan: Any) -> Iterator[Any]:
        yield from real_scroll(name, scan)
        if name == fresh.artists_collection:
            fresh.upsert_artists([renamed])  # lands after the load read this artist

    monkeypatch.setattr(backend, "scroll", scroll_then_write)
    assert fresh.load_in_memory()
    monkeypatch.setattr(backend, "scroll", real_scroll)
    assert not fresh.answers_from_memory()  # written since: lists not valid
    fresh.update_neighbour_lists()
    assert fresh.answers_from_memory()
    got = fresh.get_artist(keys[2])
    assert got is not None and (got.name, got.track_count) == ("Renamed While Loading", 7)
    assert_stored_lists_exact(fresh, k5)


def test_a_forced_respec_forgets_the_copy(edge: Store, spec: EmbeddingSpec, k5: int) -> None:
    add_artists(edge, unit_rows(np.random.default_rng(15), 10, DIM))
    edge.rebuild_neighbour_lists()
    assert edge.answers_from_memory()
    edge.ensure_spec(spec, force=True)
    assert not edge.answers_from_memory()
    assert edge.list_artists()[1] == 0
    assert edge.neighbours_of("artist 001", limit=3) is None


def test_names_do_not_wait_for_an_upkeep_holding_the_copy(edge: Store, k5: int) -> None:
    import threading
    import time

    keys = add_artists(edge, unit_rows(np.random.default_rng(16), 12, DIM))
    edge.rebuild_neighbour_lists()
    zed = Artist(name="Zed", artist_key="zed", track_count=1, centroid=[1.0] + [0.0] * (DIM - 1))
    edge.upsert_artists([zed])  # the name index must be rebuilt on next use
    mirror = edge._neighbour_lists._mirror  # the copy an upkeep locks while it runs
    assert mirror is not None
    held, release = threading.Event(), threading.Event()

    def long_upkeep() -> None:
        with mirror.lock:
            held.set()
            release.wait(10)

    upkeep = threading.Thread(target=long_upkeep)
    upkeep.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        artists, total = edge.list_artists()  # rebuilt from the store, not from the copy
        assert time.monotonic() - started < 5
        assert total == 13 and "zed" in {a.artist_key for a in artists}
    finally:
        release.set()
        upkeep.join()
    assert set(keys) <= set(edge.artist_names())
