"""File → unit vector with one embedding spec: the one place where "decode a file like the
catalogue was decoded, then embed it" is written.

`Decoding` says how a file becomes windows (excerpt policy, window length, the minimum duration
and the silence threshold); `VectorEngine` pairs it with an `Embedder` (batches of windows in,
unit vectors out), built once by the composition root: the flow never imports torch nor knows
the device. The ingest
pipeline, uploads, `soundalike embed` and the evaluation all go through these two.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from soundalike.core.errors import SpecMismatch
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.audio import decode_excerpt
from soundalike.ingest.defaults import (
    DEFAULT_EXCERPT,
    DEFAULT_MIN_DURATION_SECONDS,
    DEFAULT_SILENCE_RMS,
    DEFAULT_WINDOW_SECONDS,
)
from soundalike.ingest.excerpt import DecodedAudio, ExcerptPolicy


class Embedder(Protocol):
    """What the flow needs of a model (`MertEmbedder` is one; tests and benchmarks pass
    others): tracks' windows in, batched `batch_size` windows per forward, unit vectors out."""

    @property
    def batch_size(self) -> int: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def precision(self) -> str | None:
        """The compute precision its vectors are made in ('fp32', 'bf16'), recorded with each
        track; None when it does not say."""
        ...

    def embed_tracks(self, tracks: list[list[np.ndarray]]) -> np.ndarray:
        """(n_tracks, dim) float32 unit vectors: each track's windows embedded and pooled.
        Raises for a track whose vector is unusable (zero or non-finite)."""
        ...

    def build_spec(self, excerpt: str, window_seconds: float) -> EmbeddingSpec:
        """The embedding spec of vectors made with this model, excerpt and window."""
        ...


@dataclass(frozen=True)
class Decoding:
    """How a file becomes the windows that are embedded. Picklable: decode workers get a copy."""

    excerpt: ExcerptPolicy = field(default_factory=lambda: ExcerptPolicy.parse(DEFAULT_EXCERPT))
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_duration_seconds: float = DEFAULT_MIN_DURATION_SECONDS
    silence_rms: float = DEFAULT_SILENCE_RMS

    def for_spec(self, spec: EmbeddingSpec) -> Decoding:
        """The same thresholds with the excerpt and window a stored catalogue was made with."""
        return replace(
            self, excerpt=ExcerptPolicy.parse(spec.excerpt), window_seconds=spec.window_seconds
        )

    def decode(self, path: str | Path, sample_rate: int) -> DecodedAudio:
        """The file's excerpt windows; AudioError subclasses for what cannot be embedded."""
        return decode_excerpt(
            path,
            policy=self.excerpt,
            sample_rate=sample_rate,
            window_seconds=self.window_seconds,
            min_duration_seconds=self.min_duration_seconds,
            silence_rms=self.silence_rms,
        )


class VectorEngine:
    """An embedder and a decoding: files in, unit vectors of one spec out."""

    def __init__(self, embedder: Embedder, decoding: Decoding) -> None:
        self.embedder = embedder
        self.decoding = decoding

    @property
    def spec(self) -> EmbeddingSpec:
        return self.embedder.build_spec(str(self.decoding.excerpt), self.decoding.window_seconds)

    @property
    def sample_rate(self) -> int:
        return self.embedder.sample_rate

    @property
    def precision(self) -> str | None:
        """The compute precision the embedder's vectors are made in, recorded with each track."""
        return self.embedder.precision

    def for_spec(self, stored: EmbeddingSpec) -> VectorEngine:
        """An engine that embeds like the stored catalogue, or SpecMismatch saying what differs
        (the model, its layer or sample rate cannot be changed without loading another model)."""
        engine = VectorEngine(self.embedder, self.decoding.for_spec(stored))
        differences = engine.spec.differences(stored)
        if differences:
            described = "; ".join(
                f"{name}: loaded {mine!r}, catalogue {theirs!r}"
                for name, (mine, theirs) in differences.items()
            )
            raise SpecMismatch(
                f"the loaded model does not embed like the stored catalogue ({described}); "
                "use the catalogue's --model/--layer"
            )
        return engine

    def decode(self, path: str | Path) -> DecodedAudio:
        return self.decoding.decode(path, self.sample_rate)

    def embed(self, decoded: list[DecodedAudio]) -> np.ndarray:
        """(n, dim) unit vectors, equal-length windows batched across the tracks."""
        return self.embedder.embed_tracks([audio.windows for audio in decoded])

    def embed_file(self, path: str | Path) -> tuple[np.ndarray, DecodedAudio]:
        """One file's unit vector and what was decoded to make it."""
        audio = self.decode(path)
        return self.embed([audio])[0], audio
