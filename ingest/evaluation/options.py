"""What `soundalike eval` is asked to do: one options object, validated when it is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.defaults import (
    DEFAULT_EXCERPT,
    DEFAULT_MIN_DURATION_SECONDS,
    DEFAULT_SILENCE_RMS,
    DEFAULT_WINDOW_SECONDS,
)
from soundalike.ingest.engine import Decoding
from soundalike.ingest.evaluation.metrics import DEFAULT_K
from soundalike.ingest.excerpt import ExcerptPolicy
from soundalike.ingest.model import DEFAULT_LAYER
from soundalike.ingest.sources import ArtistFrom

DEFAULT_CHUNK_SECONDS = 10.0


@dataclass(frozen=True)
class Comparison:
    """`--compare`: full windows vs chunks of them, one centroid per artist vs several, or the
    same tracks embedded in fp32 vs bf16."""

    kind: Literal["chunked", "artist-model", "precision"]
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS

    @classmethod
    def parse(cls, text: str) -> Comparison:
        cleaned = text.strip().lower()
        if cleaned == "artist-model":
            return cls("artist-model")
        if cleaned == "precision":
            return cls("precision")
        head, sep, tail = cleaned.partition(":")
        if head == "chunked":
            if not sep:
                return cls("chunked")
            try:
                seconds = float(tail)
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds <= 0:
                raise InvalidRequest(f"--compare {text}: the chunk length must be seconds > 0")
            return cls("chunked", seconds)
        raise InvalidRequest(
            f"--compare {text!r}: use 'chunked', 'chunked:S', 'artist-model' or 'precision'"
        )


@dataclass(frozen=True)
class LayerChoice:
    """`--layers`: every hidden state, or the ones listed. Which exist depends on the model, so
    the range is checked by `resolve` once its layer count is known."""

    text: str
    every: bool
    listed: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> LayerChoice:
        """'11', 'all' or '0,3,11' (sorted, repeats dropped)."""
        cleaned = text.strip().lower()
        if cleaned == "all":
            return cls(text, every=True)
        parts = [part.strip() for part in cleaned.split(",")]
        if not all(part.isdigit() for part in parts):
            raise InvalidRequest(f"--layers {text!r}: use 'all', one layer or a list like 0,3,11")
        return cls(text, every=False, listed=tuple(sorted({int(part) for part in parts})))

    def resolve(self, total_layers: int) -> list[int]:
        """The hidden states to embed for a model with `total_layers` transformer layers."""
        if self.every:
            return list(range(total_layers + 1))
        beyond = [layer for layer in self.listed if layer > total_layers]
        if beyond:
            raise InvalidRequest(
                f"--layers {self.text!r}: layer {beyond[0]} does not exist; "
                f"the model has 0..{total_layers}"
            )
        return list(self.listed)


@dataclass(frozen=True)
class EvaluationOptions:
    """Everything `run_evaluation` needs besides the store and the model loader.

    `model` None re-embeds with the model that made the stored catalogue. `layer`, `excerpt` and
    `window_seconds` only apply when there is no stored spec (a folder given as `source`); the
    catalogue's own spec wins otherwise, so re-embedded vectors are comparable to the stored ones.
    """

    out_dir: Path
    source: Path | None = None
    layers: str | None = None
    sample: int | None = None
    compare: str | None = None
    reference: Path | None = None
    centre_vectors: bool = False
    k: int = DEFAULT_K
    seed: int = 0
    model: str | None = None
    revision: str | None = None
    batch_size: int = 4
    layer: int = DEFAULT_LAYER
    excerpt: ExcerptPolicy = field(default_factory=lambda: ExcerptPolicy.parse(DEFAULT_EXCERPT))
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_duration_seconds: float = DEFAULT_MIN_DURATION_SECONDS
    silence_rms: float = DEFAULT_SILENCE_RMS
    artist_from: ArtistFrom = "folders"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidRequest(f"--k must be >= 1, got {self.k}")
        if self.sample is not None and self.sample < 1:
            raise InvalidRequest(f"--sample must be >= 1, got {self.sample}")
        if self.batch_size < 1:
            raise InvalidRequest(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.artist_from not in ("folders", "tags"):
            raise InvalidRequest(
                f"--artist-from must be 'folders' or 'tags', not {self.artist_from!r}"
            )
        # Parsed here so that a typo fails before anything is read or loaded.
        self.comparison()
        self.layer_choice()

    def comparison(self) -> Comparison | None:
        return Comparison.parse(self.compare) if self.compare is not None else None

    def layer_choice(self) -> LayerChoice | None:
        return LayerChoice.parse(self.layers) if self.layers is not None else None

    def chunk_seconds(self) -> float | None:
        """The chunk length of a chunked comparison; None when none was asked for."""
        comparison = self.comparison()
        return comparison.chunk_seconds if comparison and comparison.kind == "chunked" else None

    def must_embed(self) -> bool:
        """Whether audio is decoded and embedded, rather than the stored vectors taken."""
        return (
            self.layers is not None
            or self.source is not None
            or self.chunk_seconds() is not None
            or self.compares_precision()
        )

    def compares_precision(self) -> bool:
        """`--compare precision`: the tracks are embedded in fp32, and again in bf16."""
        comparison = self.comparison()
        return comparison is not None and comparison.kind == "precision"

    def decoding(self) -> Decoding:
        return Decoding(
            excerpt=self.excerpt,
            window_seconds=self.window_seconds,
            min_duration_seconds=self.min_duration_seconds,
            silence_rms=self.silence_rms,
        )
