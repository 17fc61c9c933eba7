"""What is embedded of a track (the excerpt policy) and what decoding hands the model (the
decoded windows). No FFmpeg here: settings validate an excerpt without loading PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from soundalike.core.errors import InvalidRequest


@dataclass(frozen=True)
class ExcerptPolicy:
    """Which part of a track becomes the model's window(s)."""

    kind: Literal["centre", "start", "windows"] = "centre"
    count: int = 1

    VALID_FORMS = "'centre' (or 'center'), 'start', or 'windows:N' with N >= 1"

    def __post_init__(self) -> None:
        if self.kind not in ("centre", "start", "windows"):
            raise InvalidRequest(f"unknown excerpt policy {self.kind!r}; use {self.VALID_FORMS}")
        if self.count < 1 or (self.kind != "windows" and self.count != 1):
            raise InvalidRequest(f"bad window count {self.count}; use {self.VALID_FORMS}")

    @classmethod
    def parse(cls, text: str) -> ExcerptPolicy:
        cleaned = str(text).strip().lower()
        if cleaned in ("centre", "center"):
            return cls("centre")
        if cleaned == "start":
            return cls("start")
        head, sep, tail = cleaned.partition(":")
        if head == "windows" and sep and tail.strip().isdigit() and int(tail) >= 1:
            return cls("windows", int(tail))
        raise InvalidRequest(f"unknown excerpt policy {text!r}; use {cls.VALID_FORMS}")

    def __str__(self) -> str:
        return f"windows:{self.count}" if self.kind == "windows" else self.kind

    def plan(self, total_samples: int, window_samples: int) -> list[int]:
        """Start samples of the windows for a track of `total_samples`.

        A track no longer than one window gives one window of the whole track (start 0);
        `windows:N` spreads N windows evenly from 0 to the last full window (they overlap when
        the track is shorter than N windows); `windows:1` is the centred window.
        """
        if total_samples <= window_samples:
            return [0]
        last = total_samples - window_samples
        if self.kind == "start":
            return [0]
        if self.kind == "centre" or self.count == 1:
            return [last // 2]
        return [round(i * last / (self.count - 1)) for i in range(self.count)]


@dataclass(frozen=True)
class ExcerptRead:
    """What decoding reads of a file: the excerpt `policy`, the window length, and the rate
    the audio is resampled to (a remote source fetches only that part ahead)."""

    policy: ExcerptPolicy
    window_seconds: float
    sample_rate: int


@dataclass
class DecodedAudio:
    """The excerpt windows of one file, mono float32 at `sample_rate`."""

    path: Path
    windows: list[np.ndarray]
    duration_seconds: float
    window_starts_seconds: list[float]
    sample_rate: int
    source_sample_rate: int
    channels: int
    codec: str
    container_format: str
    # Seconds of source audio decoded to produce the windows (pre-roll included); tells
    # callers and tests that the reader did not decode the whole file.
    decoded_seconds: float = 0.0
    duration_from: Literal["metadata", "decoded"] = "metadata"
