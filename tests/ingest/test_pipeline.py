"""The ingest pipeline end to end on a generated catalogue, with the tiny MERT-layout model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest, SpecMismatch
from soundalike.core.types import Artist
from soundalike.ingest.devtools.synth import synth_track, write_audio, write_catalogue
from soundalike.ingest.embed import MertEmbedder, load_embedder
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.pipeline import IngestOptions, IngestSummary, Shard, ingest
from soundalike.ingest.sources import Problem, SourceTrack, source_for
from soundalike.ingest.sources.base import SourceBase
from soundalike.search.centroids import artist_centroid
from soundalike.search.store import Store, open_store


def options(**overrides: object) -> IngestOptions:
    base: dict[str, object] = {"workers": 1}
    base.update(overrides)
    return IngestOptions(**base)  # type: ignore[arg-type]


def run(
    target: Path,
    store: Store,
    embedder: MertEmbedder,
    *,
    report_path: Path | None = None,
    **overrides: object,
) -> IngestSummary:
    """`soundalike ingest TARGET` as the CLI runs it, with these options."""
    engine = VectorEngine(embedder, Decoding())
    source = source_for(target)
    return ingest(
        source, store=store, engine=engine, options=options(**overrides), report_path=report_path
    )


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 artists x 3 tracks in several formats, plus a corrupt, a silent, a short, a text file."""
    root = tmp_path_factory.mktemp("catalogue")
    write_catalogue(
        root, artists=3, tracks_per_artist=3, seconds=6.0, formats=("flac", "mp3", "ogg", "wav")
    )
    first_artist = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (first_artist / "corrupt.mp3").write_bytes(np.random.default_rng(1).bytes(20_000))
    write_audio(first_artist / "silence.wav", np.zeros((1, 24_000 * 5), np.float32), 24_000)
    short = synth_track(artist_seed=9, track_seed=0, seconds=1.0, sample_rate=24_000)
    write_audio(first_artist / "short.wav", short, 24_000)
    (first_artist / "notes.txt").write_text("not audio")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(data_dir=tmp_path / "data")
    yield opened
    opened.close()


def test_ingest_stores_good_files_and_reports_bad_ones(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    report = tmp_path / "report.jsonl"
    summary = run(catalogue, store, tiny_embedder, report_path=report)

    assert summary.ingested == 9
    assert summary.skipped == 0
    reasons = {Path(f.path).name: f.reason for f in summary.failed}
    assert set(reasons) == {"corrupt.mp3", "silence.wav", "short.wav"}
    assert "silent" in reasons["silence.wav"].lower()
    assert "short" in reasons["short.wav"].lower()
    assert summary.artists_updated == 3
    assert store.count_tracks() == 9

    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sum(line["status"] == "ingested" for line in lines) == 9
    assert sum(line["status"] == "failed" for line in lines) == 3
    assert all(line["track_id"] for line in lines if line["status"] == "ingested")


def test_centroids_are_renormalised_means_of_track_vectors(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder
) -> None:
    run(catalogue, store, tiny_embedder)
    artists, total = store.list_artists(limit=50)
    assert total == 3
    for artist in artists:
        tracks = store.tracks_of_artist(artist.artist_key, with_vectors=True)
        assert artist.track_count == len(tracks) == 3
        stored = store.get_artist(artist.artist_key, with_centroid=True)
        expected = artist_centroid(np.asarray([t.vector for t in tracks], np.float32))
        assert np.allclose(stored.centroid, expected, atol=1e-5)
        assert np.isclose(np.linalg.norm(stored.centroid), 1.0, atol=1e-5)


def test_ingest_leaves_exact_neighbour_lists_and_a_rerun_after_a_change_updates_them(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder
) -> None:
    run(catalogue, store, tiny_embedder)
    assert store.neighbour_lists_version() is not None
    artists, _ = store.list_artists(limit=50)
    centroids = {
        a.artist_key: np.asarray(store.get_artist(a.artist_key, with_centroid=True).centroid)
        for a in artists
    }
    for artist in artists:
        others = sorted(
            (k for k in centroids if k != artist.artist_key),
            key=lambda k: (-float(centroids[k] @ centroids[artist.artist_key]), k),
        )
        listed = store.neighbours_of(artist.artist_key, limit=2)
        assert listed is not None
        assert [hit.artist.artist_key for hit in listed] == others

    # A stale centroid (an interrupted run) moves the catalogue on; the rerun repairs the
    # centroid and brings the lists back.
    victim = artists[0]
    dim = store.spec().dim
    store.upsert_artists(
        [Artist(victim.name, victim.artist_key, 1, centroid=[1.0] + [0.0] * (dim - 1))]
    )
    assert store.neighbour_lists_version() is None
    run(catalogue, store, tiny_embedder)
    assert store.neighbour_lists_version() is not None
    assert [h.artist.artist_key for h in store.neighbours_of(victim.artist_key, limit=2)] == sorted(
        (k for k in centroids if k != victim.artist_key),
        key=lambda k: (-float(centroids[k] @ centroids[victim.artist_key]), k),
    )


def test_rerun_skips_stored_and_moved_files_and_force_reembeds(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(catalogue, moved)
    run(moved, store, tiny_embedder)

    artist_dir = sorted(p for p in moved.iterdir() if p.is_dir())[1]
    track = sorted(artist_dir.iterdir())[0]
    track.rename(artist_dir / f"renamed{track.suffix}")

    again = run(moved, store, tiny_embedder)
    assert (again.ingested, again.skipped) == (0, 9)
    assert len(again.failed) == 3  # bad files are reported on every run
    assert store.count_tracks() == 9

    forced = run(moved, store, tiny_embedder, force=True)
    assert forced.ingested == 9
    assert store.count_tracks() == 9  # same ids: re-embedding replaces, never duplicates


def test_other_spec_is_refused_with_how_to_proceed(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder, tiny_mert_dir: Path
) -> None:
    run(catalogue, store, tiny_embedder)
    layer3 = load_embedder(str(tiny_mert_dir), layer=3, device="cpu", batch_size=4)
    with pytest.raises(SpecMismatch) as refused:
        run(catalogue, store, layer3)
    assert "layer" in refused.value.message
    assert "--force" in refused.value.message
    assert store.count_tracks() == 9


def test_stale_centroid_is_repaired_by_the_next_run(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder
) -> None:
    run(catalogue, store, tiny_embedder)
    artists, _ = store.list_artists(limit=50)
    victim = artists[0]
    # What an interrupted run leaves: tracks written, the centroid from before.
    dim = store.spec().dim
    stale = Artist(victim.name, victim.artist_key, 1, centroid=[1.0] + [0.0] * (dim - 1))
    store.upsert_artists([stale])

    rerun = run(catalogue, store, tiny_embedder)
    assert rerun.ingested == 0
    assert rerun.artists_updated == 1
    repaired = store.get_artist(victim.artist_key, with_centroid=True)
    assert repaired.track_count == 3
    assert not np.allclose(repaired.centroid[:2], [1.0, 0.0])


def test_a_run_over_another_folder_repairs_stale_centroids_too(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    engine = VectorEngine(tiny_embedder, Decoding())
    ingest(source_for(catalogue), store=store, engine=engine, options=options())
    victim = store.list_artists(limit=50)[0][0]
    dim = store.spec().dim
    # A crash left this artist's centroid and count stale; the next run ingests another folder.
    store.upsert_artists(
        [Artist(victim.name, victim.artist_key, 1, centroid=[1.0] + [0.0] * (dim - 1))]
    )
    other = tmp_path / "other"
    write_audio(
        other / "Newcomer" / "a.flac", synth_track(artist_seed=5, track_seed=1, seconds=5.0), 44100
    )
    ingest(source_for(other), store=store, engine=engine, options=options())
    repaired = store.get_artist(victim.artist_key, with_centroid=True)
    assert repaired is not None and repaired.track_count == 3
    vectors = np.array(
        [t.vector for t in store.tracks_of_artist(victim.artist_key, with_vectors=True)]
    )
    assert np.allclose(repaired.centroid, artist_centroid(vectors), atol=1e-5)


def test_a_retagged_file_replaces_its_old_point(
    store: Store, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    engine = VectorEngine(tiny_embedder, Decoding())
    library = tmp_path / "library"
    audio = synth_track(artist_seed=3, track_seed=3, seconds=5.0)
    song = write_audio(library / "in" / "song.flac", audio, 44100, tags={"artist": "Old Name"})
    write_audio(library / "in" / "other.flac", audio[:, ::-1].copy(), 44100,
                tags={"artist": "Old Name"})  # fmt: skip
    tags = source_for(library, artist_from="tags")
    ingest(tags, store=store, engine=engine, options=options())
    assert store.get_artist("old name").track_count == 2
    write_audio(song, audio, 44100, tags={"artist": "New Name"})  # retagged in place
    rerun = ingest(tags, store=store, engine=engine, options=options())
    assert (rerun.ingested, rerun.skipped) == (1, 1)
    assert store.count_tracks() == 2  # the old point is gone, not left beside the new one
    assert [t.path for t in store.tracks_of_artist("new name")] == [str(song)]
    assert store.get_artist("old name").track_count == 1


def test_shards_split_artists_disjointly_and_cover_the_catalogue(
    catalogue: Path, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    seen: list[set[str]] = []
    for index in range(2):
        with open_store(data_dir=tmp_path / f"shard{index}") as shard_store:
            ingest(
                source_for(catalogue),
                store=shard_store,
                engine=VectorEngine(tiny_embedder, Decoding()),
                options=options(shard=Shard(index, 2)),
            )
            artists, _ = shard_store.list_artists(limit=50)
            seen.append({a.artist_key for a in artists})
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 3


def test_manifest_keeps_extra_columns_and_media_server_ids(
    tmp_path: Path, tiny_embedder: MertEmbedder
) -> None:
    audio_dir = tmp_path / "files"
    audio_dir.mkdir()
    rows = []
    item_ids = ["0f8fad5bd9cb469fa16570867728950e", ""]
    for index, artist in enumerate(["Ana Ruiz", "Bo Lind"]):
        path = audio_dir / f"t{index}.flac"
        write_audio(path, synth_track(artist_seed=index, track_seed=0, seconds=5.0), 44_100)
        rows.append(f"files/{path.name},{artist},Song {index},Jazz,label-{index},{item_ids[index]}")
    manifest = tmp_path / "catalogue.csv"
    manifest.write_text("path,artist,title,genre,label,item_id\n" + "\n".join(rows) + "\n")

    with open_store(data_dir=tmp_path / "data") as store:
        summary = run(manifest, store, tiny_embedder)
        assert summary.ingested == 2
        tracks = store.tracks_of_artist("ana ruiz")
        assert tracks[0].title == "Song 0"
        assert tracks[0].genre == "Jazz"
        assert tracks[0].extra == {"label": "label-0"}
        assert tracks[0].item_id == item_ids[0]
        assert store.tracks_of_artist("bo lind")[0].item_id is None
        found = store.tracks_by_item_ids([item_ids[0], "unknown"])
        assert list(found) == [item_ids[0]]
        assert found[item_ids[0]].track_id == tracks[0].track_id


def test_shard_parse_rejects_nonsense() -> None:
    assert Shard.parse("1/3") == Shard(1, 3)
    for bad in ["3/3", "-1/2", "a/b", "1", "0/0"]:
        with pytest.raises(InvalidRequest):
            Shard.parse(bad)


def test_ingest_into_the_server_backend(catalogue: Path, tiny_embedder: MertEmbedder) -> None:
    # qdrant-client's :memory: mode stands in for a Qdrant server (none can run here).
    with open_store(in_memory=True) as server_store:
        summary = run(catalogue, server_store, tiny_embedder)
        assert (summary.ingested, len(summary.failed)) == (9, 3)
        artists, total = server_store.list_artists(limit=50)
        assert total == 3 and all(a.track_count == 3 for a in artists)
        rerun = run(catalogue, server_store, tiny_embedder)
        assert (rerun.ingested, rerun.skipped) == (0, 9)


class _DownloadingSource(SourceBase):
    """A source that is not a folder: its tracks are known by ids, and each track's audio is
    copied to a temporary file for decoding and removed afterwards (as a server source does)."""

    description = "a test source"

    def __init__(self, files: dict[str, tuple[str, Path]], scratch: Path) -> None:
        self.files = files
        self.scratch = scratch
        self.live_copies: set[Path] = set()

    def tracks(self) -> Iterator[SourceTrack | Problem]:
        for song_id, (artist, _) in sorted(self.files.items()):
            yield SourceTrack(source_id=song_id, location=f"test://{song_id}", artist=artist)
        yield Problem("test://broken", "the server refused it")

    def identity(self, track: SourceTrack) -> str:
        return f"test:{track.source_id}"

    @contextmanager
    def _copy(self, track: SourceTrack) -> Iterator[Path]:
        copy = self.scratch / f"{track.source_id}.flac"
        shutil.copy(self.files[track.source_id][1], copy)
        self.live_copies.add(copy)
        try:
            yield copy
        finally:
            copy.unlink()
            self.live_copies.discard(copy)

    def audio_file(self, track: SourceTrack) -> Any:
        return self._copy(track)

    def missing(self, stored_locations: Iterable[str]) -> set[str]:
        listed = {f"test://{song_id}" for song_id in self.files}
        return {loc for loc in stored_locations if loc.startswith("test://")} - listed


def test_the_pipeline_ingests_any_source(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    flacs = sorted(catalogue.glob("*/*.flac"))[:2]
    files = {f"song-{i}": (f"Remote {i}", path) for i, path in enumerate(flacs)}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = _DownloadingSource(files, scratch)
    engine = VectorEngine(tiny_embedder, Decoding())
    summary = ingest(source, store=store, engine=engine, options=options())
    assert summary.ingested == 2
    assert [(f.path, f.reason) for f in summary.failed] == [
        ("test://broken", "the server refused it")
    ]
    assert list(scratch.iterdir()) == []  # every temporary copy removed after decoding
    stored = store.tracks_of_artist("remote 0")
    assert [t.path for t in stored] == ["test://song-0"]
    assert source.missing([t.path or "" for t in stored]) == set()
    rerun = ingest(source, store=store, engine=engine, options=options())
    assert (rerun.ingested, rerun.skipped) == (0, 2)  # known by id: nothing fetched again


def test_each_ingested_track_records_the_precision_that_made_it(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder
) -> None:
    # The tiny model runs the fp32 CPU path; its tracks say so in their payload.
    assert tiny_embedder.loaded.precision == "fp32"
    run(catalogue, store, tiny_embedder)
    tracks = [store.get_track(t.track_id) for t in store.track_summaries()]
    assert len(tracks) == 9
    assert {t.precision for t in tracks if t is not None} == {"fp32"}
