"""Audio fixtures for the ingest tests, written once per session with synth.write_audio."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from soundalike.ingest.devtools.synth import synth_track, write_audio

FORMATS = ("wav", "flac", "mp3", "ogg", "opus", "m4a")
SOURCE_RATES = (44100, 48000)
# Where the click sits in the 42 s test files: 0.25 s into the centred window (6.0 s .. 36.0 s).
CLICK_SECONDS = 6.25


@lru_cache(maxsize=8)
def _music(seconds: float, sample_rate: int) -> np.ndarray:
    return synth_track(artist_seed=7, track_seed=1, seconds=seconds, sample_rate=sample_rate)


def music_with_click(seconds: float, sample_rate: int, click_at: float | None) -> np.ndarray:
    """Stereo synthetic music at a quiet level with one loud one-sample click, if asked."""
    audio = 0.4 * _music(seconds, sample_rate)
    if click_at is not None:
        audio[:, round(click_at * sample_rate)] = 0.95
    return audio


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def make_audio(audio_dir: Path) -> Callable[..., Path]:
    """make_audio(name, seconds, rate, channels=2, click_at=None) -> path, cached by name."""
    cache: dict[str, Path] = {}

    def make(
        name: str,
        seconds: float,
        sample_rate: int = 44100,
        *,
        channels: int = 2,
        click_at: float | None = None,
    ) -> Path:
        if name not in cache:
            audio = music_with_click(seconds, sample_rate, click_at)
            if channels == 1:
                audio = audio.mean(axis=0, keepdims=True)
            cache[name] = write_audio(audio_dir / name, audio, sample_rate)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def track_42s(make_audio: Callable[..., Path]) -> Callable[[str, int], Path]:
    """A 42 s stereo file with a click at CLICK_SECONDS, by format and source rate."""

    def get(fmt: str, rate: int) -> Path:
        return make_audio(f"t42_{rate}.{fmt}", 42.0, rate, click_at=CLICK_SECONDS)

    return get
