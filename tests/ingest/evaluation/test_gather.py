"""Which tracks an evaluation looks at: a fixed per-artist sample, a folder's tracks."""

from __future__ import annotations

from pathlib import Path

from soundalike.ingest.evaluation.gather import EvalTrack, sample_tracks, tracks_from_source


def test_sampling_is_deterministic_and_per_artist() -> None:
    tracks = [EvalTrack(a, a.lower(), f"/{a}/{i}.flac") for a in ("A", "B") for i in range(6)]
    first = sample_tracks(tracks, 2, seed=0)
    assert [t.path for t in first] == [t.path for t in sample_tracks(tracks, 2, seed=0)]
    assert [t.artist for t in first] == ["A", "A", "B", "B"]
    # Adding an artist does not change the others' picks.
    more = tracks + [EvalTrack("C", "c", f"/C/{i}.flac") for i in range(6)]
    assert [t.path for t in sample_tracks(more, 2, seed=0)][:4] == [t.path for t in first]
    assert len(sample_tracks(tracks, None, seed=0)) == 12
    # An artist with no more tracks than the sample keeps them all, in path order.
    assert [t.path for t in sample_tracks(tracks[:3], 5, seed=0)] == [
        "/A/0.flac",
        "/A/1.flac",
        "/A/2.flac",
    ]


def test_a_folder_gives_one_artist_per_key(tmp_path: Path) -> None:
    for folder, name in [("ABBA", "b.wav"), ("abba", "a.wav"), ("Queen", "c.wav")]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(b"RIFF")
    (tmp_path / "loose.wav").write_bytes(b"RIFF")
    tracks, problems = tracks_from_source(tmp_path, "folders")
    # "ABBA" and "abba" are one artist, named as first found; sorted by key, then path.
    assert [(t.artist, t.artist_key, Path(t.path or "").name) for t in tracks] == [
        ("ABBA", "abba", "b.wav"),
        ("ABBA", "abba", "a.wav"),
        ("Queen", "queen", "c.wav"),
    ]
    assert [Path(p["path"]).name for p in problems] == ["loose.wav"]
