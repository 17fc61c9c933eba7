"""A catalogue as real libraries have them: odd names, damaged and hostile files. Ingested end to
end, every good track goes in, every bad one is reported with its real fault, and a rerun is
stable."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from soundalike.ingest.devtools.synth import synth_track, write_audio
from soundalike.ingest.embed import MertEmbedder
from soundalike.ingest.engine import Decoding, VectorEngine
from soundalike.ingest.pipeline import IngestOptions, ingest
from soundalike.ingest.sources import source_for
from soundalike.search.store import Store, open_store

SECONDS = 5.0


def float_wav(path: Path, samples: np.ndarray, sample_rate: int = 24_000) -> Path:
    """A mono IEEE-float WAV (format 3), which can carry NaN and Inf samples."""
    data = samples.astype("<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, sample_rate, sample_rate * 4, 4, 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


def music(seed: int) -> np.ndarray:
    return synth_track(artist_seed=seed, track_seed=seed, seconds=SECONDS, sample_rate=24_000)[0]


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """(root, {displayed path: the fault a user must be told}) plus good tracks alongside."""
    root = tmp_path / "library"
    good = root / "Good Artist"
    write_audio(good / "one.flac", synth_track(artist_seed=1, track_seed=1, seconds=SECONDS), 44100)
    float_wav(good / "two.wav", music(2))
    # A folder and a file whose names are Latin-1 bytes, as copied off an old NAS box.
    latin = os.fsencode(root) + b"/Beyonc\xe9"
    os.makedirs(latin)
    float_wav(Path(os.fsdecode(latin + b"/caf\xe9.wav")), music(3))
    bad_dir = root / "Bad Files"
    nan = music(4)
    nan[1000] = np.nan
    float_wav(bad_dir / "nan.wav", nan)
    inf = music(5)
    inf[2000] = np.inf
    float_wav(bad_dir / "inf.wav", inf)
    (bad_dir / "empty.mp3").write_bytes(b"")
    whole = write_audio(bad_dir / "whole.flac", synth_track(artist_seed=6, track_seed=0,
                                                            seconds=SECONDS), 44100)  # fmt: skip
    truncated = bad_dir / "truncated.flac"
    truncated.write_bytes(whole.read_bytes()[:300])
    whole.unlink()
    (bad_dir / "noise.ogg").write_bytes(np.random.default_rng(7).bytes(30_000))
    faults = {
        str(bad_dir / "nan.wav"): "non-finite",
        str(bad_dir / "inf.wav"): "non-finite",
        str(bad_dir / "empty.mp3"): "",
        str(bad_dir / "truncated.flac"): "",
        str(bad_dir / "noise.ogg"): "",
    }
    return root, faults


def run(root: Path, store: Store, embedder: MertEmbedder, report: Path | None = None):  # noqa: ANN201
    return ingest(
        source_for(root),
        store=store,
        engine=VectorEngine(embedder, Decoding()),
        options=IngestOptions(workers=1),
        report_path=report,
    )


def test_every_good_track_goes_in_and_every_bad_one_is_reported(
    hostile: tuple[Path, dict[str, str]], tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    root, faults = hostile
    report = tmp_path / "report.jsonl"
    with open_store(data_dir=tmp_path / "data") as store:
        summary = run(root, store, tiny_embedder, report)
        assert summary.ingested == 3, summary.to_dict()
        reasons = {f.path: f.reason for f in summary.failed}
        assert set(reasons) == set(faults)
        for path, expected in faults.items():
            assert reasons[path], path
            assert expected.lower() in reasons[path].lower(), (path, reasons[path])
        # The Latin-1 folder is an artist, its name made displayable without losing the byte.
        artists = {a.name: a.track_count for a in store.list_artists(limit=10)[0]}
        assert artists == {"Good Artist": 2, "Beyonc\\xe9": 1}
        (latin_track,) = store.tracks_of_artist("beyonc\\xe9")
        assert latin_track.path == str(root / "Beyonc\\xe9" / "caf\\xe9.wav")
        assert latin_track.title == "caf\\xe9"
        # The report is valid JSON lines, one per file, and names the same files.
        lines = [json.loads(line) for line in report.read_text("utf-8").splitlines()]
        assert sorted(line["path"] for line in lines if line["status"] == "failed") == sorted(
            faults
        )

        rerun = run(root, store, tiny_embedder)
        assert (rerun.ingested, rerun.skipped) == (0, 3)
        assert {f.path for f in rerun.failed} == set(faults)


def test_a_full_disk_stops_the_report_not_the_ingest(
    hostile: tuple[Path, dict[str, str]], tiny_embedder: MertEmbedder, tmp_path: Path
) -> None:
    root, _ = hostile
    with open_store(data_dir=tmp_path / "data") as store:
        summary = run(root, store, tiny_embedder, Path("/dev/full"))
    assert summary.ingested == 3
    assert summary.report_error is not None
    assert "No space left on device" in summary.report_error
    assert summary.to_dict()["report_error"] == summary.report_error
