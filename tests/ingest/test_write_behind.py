"""The flow's writer thread: the store is written while the model embeds the next batch, a
failing write fails the run, and every track is reported once, only when durable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.core.events import Event, EventStream, StageTimed, TrackStored
from soundalike.core.types import EmbeddingSpec, Track
from soundalike.ingest.devtools.synth import write_catalogue
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.flow import IngestOptions, run
from soundalike.ingest.sources import source_for
from soundalike.search.store import Store, open_store

STAGE_SECONDS = 0.25


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("write-behind")
    write_catalogue(root, artists=2, tracks_per_artist=3, seconds=4.0, formats=("flac",))
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(data_dir=tmp_path / "data") as opened:
        yield opened


class SlowEmbedder:
    """The tiny model, one track per batch, each embed taking at least STAGE_SECONDS."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spans: list[tuple[float, float]] = []

    @property
    def batch_size(self) -> int:
        return 1

    @property
    def sample_rate(self) -> int:
        return int(self.inner.sample_rate)

    @property
    def precision(self) -> str | None:
        return str(self.inner.precision)

    def embed_tracks(self, tracks: list[list[np.ndarray]]) -> np.ndarray:
        started = time.perf_counter()
        vectors: np.ndarray = self.inner.embed_tracks(tracks)
        time.sleep(max(0.0, STAGE_SECONDS - (time.perf_counter() - started)))
        self.spans.append((started, time.perf_counter()))
        return vectors

    def build_spec(self, excerpt: str, window_seconds: float) -> EmbeddingSpec:
        spec: EmbeddingSpec = self.inner.build_spec(excerpt, window_seconds)
        return spec


def slow_upserts(
    store: Store, spans: list[tuple[float, float]], fail_on: int | None = None
) -> list[str]:
    """Makes each upsert of `store` take STAGE_SECONDS (recorded in `spans`); the `fail_on`th
    one raises. Returns the thread names the upserts ran on."""
    upsert = store.upsert_tracks
    threads: list[str] = []

    def slow(tracks: list[Track]) -> Any:
        started = time.perf_counter()
        threads.append(threading.current_thread().name)
        if fail_on is not None and len(spans) + 1 == fail_on:
            raise OSError("disk full")
        time.sleep(STAGE_SECONDS)
        result = upsert(tracks)
        spans.append((started, time.perf_counter()))
        return result

    store.upsert_tracks = slow  # type: ignore[method-assign]
    return threads


def test_writes_overlap_embedding_and_every_track_is_reported_once(
    catalogue: Path, store: Store, tiny_embedder: Any
) -> None:
    embedder = SlowEmbedder(tiny_embedder)
    writes: list[tuple[float, float]] = []
    threads = slow_upserts(store, writes)
    heard: list[Event] = []
    emitted_on: set[str] = set()

    def sink(event: Event) -> None:
        heard.append(event)
        emitted_on.add(threading.current_thread().name)

    run(
        source_for(catalogue),
        store=store,
        engine=lambda: VectorEngine(embedder, Decoding()),  # type: ignore[arg-type]
        options=IngestOptions(workers=2),
        events=EventStream(sink),
    )
    assert len(embedder.spans) == 6 == len(writes)
    # The store is written on the writer thread while the model embeds: some write runs
    # during an embed, and embedding + writing took less wall time than one after the other.
    assert set(threads) == {"soundalike-writer"}
    assert any(w0 < e1 and e0 < w1 for w0, w1 in writes for e0, e1 in embedder.spans)
    busy = sum(b - a for a, b in embedder.spans) + sum(b - a for a, b in writes)
    assert writes[-1][1] - embedder.spans[0][0] < busy - STAGE_SECONDS
    # Each track reported once, as ingested, with the ids the store holds; sinks still hear
    # every event on the thread that runs the flow.
    stored = [e for e in heard if isinstance(e, TrackStored)]
    assert len(stored) == 6 == len({e.track_id for e in stored})
    assert {e.track_id for e in stored} == {t.track_id for t in store.track_summaries()}
    assert emitted_on == {threading.current_thread().name}
    assert {e.stage for e in heard if isinstance(e, StageTimed)} >= {"embed", "write"}
    timed = [e for e in heard if isinstance(e, StageTimed)]
    assert sum(e.seconds for e in timed if e.stage == "write") >= 6 * STAGE_SECONDS


def test_a_failing_write_fails_the_run_and_reports_only_what_is_durable(
    catalogue: Path, store: Store, tiny_embedder: Any
) -> None:
    embedder = SlowEmbedder(tiny_embedder)
    slow_upserts(store, [], fail_on=2)
    heard: list[Event] = []
    with pytest.raises(OSError, match="disk full"):
        run(
            source_for(catalogue),
            store=store,
            engine=lambda: VectorEngine(embedder, Decoding()),  # type: ignore[arg-type]
            options=IngestOptions(workers=1),
            events=EventStream(heard.append),
        )
    # Only what the writer flushed before the failure is reported (the first batch, flushed
    # at once as the flush interval had passed while the model loaded); the rest is not, so a
    # rerun embeds it again.
    stored = [e.track_id for e in heard if isinstance(e, TrackStored)]
    assert len(stored) <= 1
    assert set(stored) <= {t.track_id for t in store.track_summaries()}


def test_a_stop_leaves_what_was_written_durable_and_reported(
    catalogue: Path, store: Store, tiny_embedder: Any
) -> None:
    embedder = SlowEmbedder(tiny_embedder)
    stop = threading.Event()
    upsert = store.upsert_tracks

    def upsert_then_stop(tracks: list[Track]) -> Any:
        stop.set()
        return upsert(tracks)

    store.upsert_tracks = upsert_then_stop  # type: ignore[method-assign]
    heard: list[Event] = []
    outcome = run(
        source_for(catalogue),
        store=store,
        engine=lambda: VectorEngine(embedder, Decoding()),  # type: ignore[arg-type]
        options=IngestOptions(workers=1),
        events=EventStream(heard.append),
        stop=stop,
    )
    assert outcome.stopped
    stored = {e.track_id for e in heard if isinstance(e, TrackStored)}
    assert stored and len(stored) < 6
    assert stored == {t.track_id for t in store.track_summaries()}
