"""The one ingest flow's events, its declared source hooks and the summary built from events."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.core.events import (
    Event,
    EventStream,
    StageTimed,
    TrackFailed,
    TracksPlanned,
    TrackStored,
)
from soundalike.ingest.devtools.synth import synth_track, write_audio, write_catalogue
from soundalike.ingest.embed import MertEmbedder
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.excerpt import ExcerptPolicy, ExcerptRead
from soundalike.ingest.library import Library, LibraryConfig
from soundalike.ingest.library.files import LibrarySource
from soundalike.ingest.pipeline import IngestOptions, ingest
from soundalike.ingest.sources import CatalogueSource, SourceTrack, SubsonicSource, source_for
from soundalike.ingest.sources.base import SourceBase
from soundalike.ingest.sources.folder import FolderSource
from soundalike.search.store import Store, open_store


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 artists x 2 tracks, plus a corrupt, a silent and a short file."""
    root = tmp_path_factory.mktemp("catalogue")
    write_catalogue(root, artists=2, tracks_per_artist=2, seconds=5.0, formats=("flac",))
    first = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (first / "corrupt.mp3").write_bytes(np.random.default_rng(1).bytes(20_000))
    write_audio(first / "silence.wav", np.zeros((1, 24_000 * 5), np.float32), 24_000)
    short = synth_track(artist_seed=9, track_seed=0, seconds=1.0, sample_rate=24_000)
    write_audio(first / "short.wav", short, 24_000)
    return root


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(data_dir=tmp_path / "data") as opened:
        yield opened


def test_a_cli_ingest_emits_every_track_and_stage_and_the_summary_counts_them(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder
) -> None:
    heard: list[Event] = []
    events = EventStream(heard.append)
    engine = VectorEngine(tiny_embedder, Decoding())
    summary = ingest(
        source_for(catalogue),
        store=store,
        engine=engine,
        options=IngestOptions(workers=1),
        events=events,
    )
    stored = [e for e in heard if isinstance(e, TrackStored)]
    assert len(stored) == 4 == summary.ingested
    assert all(e.outcome == "ingested" and e.origin == "cli" for e in stored)
    failed = {Path(e.location).name: e.reason_class for e in heard if isinstance(e, TrackFailed)}
    assert failed == {
        "corrupt.mp3": "undecodable",
        "silence.wav": "silent",
        "short.wav": "too_short",
    }
    assert sum(e.count for e in heard if isinstance(e, TracksPlanned)) == 7
    timed = [e for e in heard if isinstance(e, StageTimed)]
    assert {e.stage for e in timed} == {"decode", "embed", "write"}
    windows = sum(e.windows for e in timed if e.stage == "embed")
    assert windows == 4 == summary.windows
    document = summary.to_dict()
    assert document["windows"] == 4
    assert set(document["stage_seconds"]) == {"decode", "embed", "write"}
    assert document["stage_seconds"]["embed"] > 0
    # A rerun skips them all, said as events too.
    heard.clear()
    again = ingest(
        source_for(catalogue), store=store, engine=engine, options=IngestOptions(), events=events
    )
    skipped = [e for e in heard if isinstance(e, TrackStored)]
    assert again.skipped == 4 and {e.outcome for e in skipped} == {"skipped"}


def test_a_library_scan_emits_each_track_stored_with_its_origin(
    tmp_path: Path, store: Store, tiny_engine: Any
) -> None:
    root = tmp_path / "music"
    for artist in range(2):
        for track in range(2):
            path = root / f"Artist {artist}" / f"{track}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            audio = synth_track(
                artist_seed=artist, track_seed=track, seconds=4.0, sample_rate=24_000
            )
            write_audio(path, audio, 24_000)
    heard: list[Event] = []
    events = EventStream(heard.append)
    library = Library(
        LibraryConfig(roots=(root,), watch=False, workers=1, debounce_seconds=0.0),
        store=lambda: store,
        engine=lambda: tiny_engine,
        events=events,
    )
    library.start()
    try:
        assert library.wait_idle(60)
    finally:
        library.close()
    stored = [e for e in heard if isinstance(e, TrackStored) and e.outcome == "ingested"]
    assert len(stored) == 4 and {e.origin for e in stored} == {"library"}
    timed = [e for e in heard if isinstance(e, StageTimed)]
    assert {e.stage for e in timed} >= {"decode", "embed", "write"}
    assert {e.origin for e in timed} == {"library"}
    assert library.status().ingested == 4


def test_closing_a_library_restores_the_switch_interval(tmp_path: Path, store: Store) -> None:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        root = tmp_path / "music"
        root.mkdir()
        library = Library(
            LibraryConfig(roots=(root,), watch=False),
            store=lambda: store,
            engine=lambda: None,  # type: ignore[arg-type,return-value]
        )
        library.start()
        assert sys.getswitchinterval() < 0.005
        library.close()
        assert sys.getswitchinterval() == pytest.approx(0.005)
    finally:
        sys.setswitchinterval(previous)


class _Minimal(SourceBase):
    """A source declaring only what it does: the hooks come from SourceBase."""

    description = "minimal"

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.prepared: list[str] = []

    def tracks(self) -> Iterator[SourceTrack]:
        for name in sorted(self.files):
            yield SourceTrack(source_id=name, location=f"mem://{name}", artist="Mina")

    def identity(self, track: SourceTrack) -> str:
        return f"mem:{track.source_id}"

    def audio_file(self, track: SourceTrack) -> Any:
        return self._local(self.files[track.source_id])

    def _local(self, path: Path) -> Any:
        from contextlib import nullcontext

        return nullcontext(path)

    def prepare_fetch(self, tracks: Sequence[SourceTrack], excerpt: ExcerptRead) -> None:
        self.prepared = [t.source_id for t in tracks]


def test_sources_declare_their_hooks_with_no_op_defaults(catalogue: Path) -> None:
    base = SourceBase()
    assert base.lists_everything is False
    assert base.missing(["x"]) == set()
    assert base.check() is None
    excerpt = ExcerptRead(ExcerptPolicy.parse("centre"), 30.0, 24_000)
    assert base.prepare_fetch([], excerpt) is None
    assert FolderSource.lists_everything is False
    assert SubsonicSource.lists_everything is True
    assert LibrarySource.lists_everything is True
    assert isinstance(_Minimal({}), CatalogueSource)


def test_the_flow_tells_a_source_what_it_will_fetch(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder
) -> None:
    flacs = sorted(catalogue.glob("*/*.flac"))[:2]
    source = _Minimal({f"song-{i}": path for i, path in enumerate(flacs)})
    engine = VectorEngine(tiny_embedder, Decoding())
    summary = ingest(source, store=store, engine=engine, options=IngestOptions(workers=1))
    assert summary.ingested == 2
    assert source.prepared == ["song-0", "song-1"]
