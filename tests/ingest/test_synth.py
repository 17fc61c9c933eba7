"""Synthetic music: determinism, artist timbre, encoding and tags."""

from __future__ import annotations

from pathlib import Path

import mutagen
import numpy as np
import pytest

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.audio import decode_full
from soundalike.ingest.devtools.synth import synth_track, write_audio, write_catalogue


def test_synth_track_is_deterministic_and_shaped() -> None:
    a = synth_track(artist_seed=3, track_seed=1, seconds=4.0)
    b = synth_track(artist_seed=3, track_seed=1, seconds=4.0)
    assert a.shape == (2, 4 * 44100) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() == pytest.approx(0.5, abs=1e-6)
    other_track = synth_track(artist_seed=3, track_seed=2, seconds=4.0)
    assert not np.allclose(a, other_track)
    mono = synth_track(artist_seed=3, track_seed=1, seconds=2.0, sample_rate=24000, channels=1)
    assert mono.shape == (1, 48000)


def _spectral_profile(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log energy in 40 log-spaced bands of the long-term spectrum, mean removed."""
    mono = audio.mean(axis=0)
    frames = mono[: mono.size // 2048 * 2048].reshape(-1, 2048) * np.hanning(2048)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(2048, 1 / sample_rate)
    edges = np.geomspace(60, 16000, 41)
    bands = np.array(
        [
            power[(freqs >= lo) & (freqs < hi)].sum()
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    profile = np.log(bands + 1e-9)
    return profile - profile.mean()


def test_tracks_of_one_artist_sound_more_alike_than_other_artists() -> None:
    profiles = {
        (artist, track): _spectral_profile(
            synth_track(artist_seed=artist, track_seed=track, seconds=6.0), 44100
        )
        for artist in range(4)
        for track in range(3)
    }

    def distance(a: tuple[int, int], b: tuple[int, int]) -> float:
        return float(np.linalg.norm(profiles[a] - profiles[b]))

    keys = list(profiles)
    same = [distance(a, b) for a in keys for b in keys if a < b and a[0] == b[0]]
    other = [distance(a, b) for a in keys for b in keys if a < b and a[0] != b[0]]
    assert np.mean(same) < 0.6 * np.mean(other)
    for key in keys:  # every track's closest other track is by the same artist
        nearest = min((k for k in keys if k != key), key=lambda k: distance(key, k))
        assert nearest[0] == key[0]


TAGS = {
    "artist": "Éclair Ensemble",
    "album_artist": "Éclair Ensemble",
    "title": "Lanterns à l'aube",
    "album": "Première",
    "genre": "jazz",
    "date": "2004",
}


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "opus", "m4a"])
def test_write_audio_round_trips_audio_and_tags(tmp_path: Path, fmt: str) -> None:
    audio = synth_track(artist_seed=1, track_seed=0, seconds=3.0)
    path = write_audio(tmp_path / f"song.{fmt}", audio, 44100, tags=TAGS)
    decoded = decode_full(path)
    assert abs(decoded.size - 3 * 24000) < 0.06 * 24000
    assert np.sqrt(np.mean(decoded**2)) > 0.05
    tags = mutagen.File(path, easy=True).tags
    if fmt == "wav":  # an ID3 chunk, read through its frames
        assert str(tags["TPE1"]) == TAGS["artist"]
        assert str(tags["TIT2"]) == TAGS["title"]
        assert str(tags["TALB"]) == TAGS["album"]
    else:
        assert tags["artist"] == [TAGS["artist"]]
        assert tags["title"] == [TAGS["title"]]
        assert tags["album"] == [TAGS["album"]]
        assert tags["genre"] == [TAGS["genre"]]


def test_write_audio_refuses_unknown_extensions(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="unknown extension"):
        write_audio(tmp_path / "song.xyz", np.zeros((1, 100), np.float32), 44100)


def test_write_catalogue_writes_artist_folders_and_cycles_formats(tmp_path: Path) -> None:
    written = write_catalogue(
        tmp_path, artists=3, tracks_per_artist=2, seconds=3.0, formats=("flac", "mp3", "ogg")
    )
    assert len(written) == 6
    assert [w.path.suffix for w in written] == [".flac", ".mp3", ".ogg"] * 2
    assert written[0].artist == "Éclair Ensemble"
    for track in written:
        assert track.path.is_file()
        assert track.path.parent == tmp_path / track.artist
        assert track.path.stem == track.title
    assert len({w.artist for w in written}) == 3
