"""The ingest pipeline end to end on a generated catalogue, with the tiny MERT-layout model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from soundalike.ingest.audio import ExcerptPolicy
from soundalike.ingest.devtools.synth import synth_track, write_audio, write_catalogue
from soundalike.ingest.embed import MertEmbedder, load_embedder
from soundalike.ingest.pipeline import IngestOptions, Shard, ingest
from soundalike.search.centroids import artist_centroid
from soundalike.search.errors import SpecMismatch
from soundalike.search.store import Store, open_store
from soundalike.search.types import Artist

CENTRE = ExcerptPolicy.parse("centre")


def options(**overrides: object) -> IngestOptions:
    base: dict[str, object] = {"excerpt": CENTRE, "workers": 1, "min_duration_seconds": 3.0}
    base.update(overrides)
    return IngestOptions(**base)  # type: ignore[arg-type]


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
    summary = ingest(
        catalogue, store=store, embedder=tiny_embedder, options=options(), report_path=report
    )

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
    ingest(catalogue, store=store, embedder=tiny_embedder, options=options())
    artists, total = store.list_artists(limit=50)
    assert total == 3
    for artist in artists:
        tracks = store.tracks_of_artist(artist.artist_key, with_vectors=True)
        assert artist.track_count == len(tracks) == 3
        stored = store.get_artist(artist.artist_key, with_centroid=True)
        expected = artist_centroid(np.asarray([t.vector for t in tracks], np.float32))
        assert np.allclose(stored.centroid, expected, atol=1e-5)
        assert np.isclose(np.linalg.norm(stored.centroid), 1.0, atol=1e-5)


def test_rerun_skips_stored_and_moved_files_and_force_reembeds(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(catalogue, moved)
    ingest(moved, store=store, embedder=tiny_embedder, options=options())

    artist_dir = sorted(p for p in moved.iterdir() if p.is_dir())[1]
    track = sorted(artist_dir.iterdir())[0]
    track.rename(artist_dir / f"renamed{track.suffix}")

    again = ingest(moved, store=store, embedder=tiny_embedder, options=options())
    assert (again.ingested, again.skipped) == (0, 9)
    assert len(again.failed) == 3  # bad files are reported on every run
    assert store.count_tracks() == 9

    forced = ingest(moved, store=store, embedder=tiny_embedder, options=options(force=True))
    assert forced.ingested == 9
    assert store.count_tracks() == 9  # same ids: re-embedding replaces, never duplicates


def test_other_spec_is_refused_with_how_to_proceed(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder, tiny_mert_dir: Path
) -> None:
    ingest(catalogue, store=store, embedder=tiny_embedder, options=options())
    layer3 = load_embedder(str(tiny_mert_dir), layer=3, device="cpu", batch_size=4)
    with pytest.raises(SpecMismatch) as refused:
        ingest(catalogue, store=store, embedder=layer3, options=options())
    assert "layer" in refused.value.message
    assert "--force" in refused.value.message
    assert store.count_tracks() == 9


def test_stale_centroid_is_repaired_by_the_next_run(
    catalogue: Path, store: Store, tiny_embedder: MertEmbedder
) -> None:
    ingest(catalogue, store=store, embedder=tiny_embedder, options=options())
    artists, _ = store.list_artists(limit=50)
    victim = artists[0]
    # What an interrupted run leaves: tracks written, the centroid from before.
    dim = store.spec().dim
    stale = Artist(victim.name, victim.artist_key, 1, centroid=[1.0] + [0.0] * (dim - 1))
    store.upsert_artists([stale])

    rerun = ingest(catalogue, store=store, embedder=tiny_embedder, options=options())
    assert rerun.ingested == 0
    assert rerun.artists_updated == 1
    repaired = store.get_artist(victim.artist_key, with_centroid=True)
    assert repaired.track_count == 3
    assert not np.allclose(repaired.centroid[:2], [1.0, 0.0])


def test_shards_split_artists_disjointly_and_cover_the_catalogue(
    catalogue: Path, tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    seen: list[set[str]] = []
    for index in range(2):
        with open_store(data_dir=tmp_path / f"shard{index}") as shard_store:
            ingest(
                catalogue,
                store=shard_store,
                embedder=tiny_embedder,
                options=options(shard=Shard(index, 2)),
            )
            artists, _ = shard_store.list_artists(limit=50)
            seen.append({a.artist_key for a in artists})
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 3


def test_manifest_keeps_extra_columns(tmp_path: Path, tiny_embedder: MertEmbedder) -> None:
    audio_dir = tmp_path / "files"
    audio_dir.mkdir()
    rows = []
    for index, artist in enumerate(["Ana Ruiz", "Bo Lind"]):
        path = audio_dir / f"t{index}.flac"
        write_audio(path, synth_track(artist_seed=index, track_seed=0, seconds=5.0), 44_100)
        rows.append(f"files/{path.name},{artist},Song {index},Jazz,label-{index}")
    manifest = tmp_path / "catalogue.csv"
    manifest.write_text("path,artist,title,genre,label\n" + "\n".join(rows) + "\n")

    with open_store(data_dir=tmp_path / "data") as store:
        summary = ingest(manifest, store=store, embedder=tiny_embedder, options=options())
        assert summary.ingested == 2
        tracks = store.tracks_of_artist("ana ruiz")
        assert tracks[0].title == "Song 0"
        assert tracks[0].genre == "Jazz"
        assert tracks[0].extra["label"] == "label-0"


def test_shard_parse_rejects_nonsense() -> None:
    assert Shard.parse("1/3") == Shard(1, 3)
    for bad in ["3/3", "-1/2", "a/b", "1", "0/0"]:
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_ingest_into_the_server_backend(catalogue: Path, tiny_embedder: MertEmbedder) -> None:
    # qdrant-client's :memory: mode stands in for a Qdrant server (none can run here).
    with open_store(in_memory=True) as server_store:
        summary = ingest(catalogue, store=server_store, embedder=tiny_embedder, options=options())
        assert (summary.ingested, len(summary.failed)) == (9, 3)
        artists, total = server_store.list_artists(limit=50)
        assert total == 3 and all(a.track_count == 3 for a in artists)
        rerun = ingest(catalogue, store=server_store, embedder=tiny_embedder, options=options())
        assert (rerun.ingested, rerun.skipped) == (0, 9)
