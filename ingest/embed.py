"""Windows of audio → MERT layer-L vectors (mean-pooled frames), batched without padding."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, TypedDict, Unpack

import numpy as np
import torch

from soundalike.core.errors import AudioTooShort, InvalidRequest, UnusableVector
from soundalike.core.types import EmbeddingSpec
from soundalike.ingest.defaults import DEFAULT_BATCH_SIZE
from soundalike.ingest.model import DEFAULT_MODEL, LoadedMert, load_mert

# Wav2Vec2FeatureExtractor's zero-mean/unit-variance normalisation: (x - mean) / sqrt(var + 1e-7).
NORMALIZE_EPSILON = 1e-7
# The conv extractor's receptive field: shorter windows yield no frame at all.
MIN_WINDOW_SAMPLES = 400


class MertEmbedder:
    """Embeds windows with a loaded MERT: one pass per window, equal lengths batched together.
    The `Embedder` of ingest/engine.py (`embed_tracks`: unit vectors); `embed_windows` gives the
    raw per-window vectors the evaluation pools its own way."""

    def __init__(self, loaded: LoadedMert, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise InvalidRequest(f"batch_size must be >= 1, not {batch_size}")
        self.loaded = loaded
        self.batch_size = batch_size

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    @property
    def dim(self) -> int:
        return self.loaded.hidden_size

    def _prepare(self, window: np.ndarray) -> np.ndarray:
        samples = np.asarray(window, dtype=np.float32).reshape(-1)
        if samples.size < MIN_WINDOW_SAMPLES:
            raise AudioTooShort(
                "<window>",
                f"{samples.size} samples; MERT needs at least {MIN_WINDOW_SAMPLES} "
                f"({MIN_WINDOW_SAMPLES / self.sample_rate * 1000:.0f} ms)",
            )
        if not self.loaded.do_normalize:
            return samples
        # float32 statistics, as Wav2Vec2FeatureExtractor computes them.
        return (samples - samples.mean()) / np.sqrt(samples.var() + NORMALIZE_EPSILON)

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.loaded.device.type == "cuda":
            return torch.autocast("cuda", dtype=self.loaded.dtype)
        return contextlib.nullcontext()

    def forward_batches(
        self, windows: Sequence[np.ndarray], *, output_hidden_states: bool = False
    ) -> Iterator[tuple[list[int], Any]]:
        """The model's output for batches of equal-length windows (never padded), each with the
        input positions it covers."""
        prepared = [self._prepare(window) for window in windows]
        by_length: dict[int, list[int]] = defaultdict(list)
        for position, samples in enumerate(prepared):
            by_length[samples.size].append(position)

        module, device = self.loaded.module, self.loaded.device
        with torch.inference_mode(), self._autocast():
            for positions in by_length.values():
                for start in range(0, len(positions), self.batch_size):
                    batch_positions = positions[start : start + self.batch_size]
                    batch = torch.from_numpy(np.stack([prepared[p] for p in batch_positions]))
                    output = module(batch.to(device), output_hidden_states=output_hidden_states)
                    yield batch_positions, output

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        """(n, dim) float32 mean-pooled layer-L vectors, not normalised, in input order."""
        vectors = np.empty((len(windows), self.dim), dtype=np.float32)
        for positions, output in self.forward_batches(windows):
            vectors[positions] = output.last_hidden_state.float().mean(dim=1).cpu().numpy()
        return vectors

    def embed_track(self, windows: list[np.ndarray]) -> np.ndarray:
        """One unit float32 vector: the mean of the window vectors, L2-normalised."""
        return self.embed_tracks([windows])[0]

    def embed_tracks(self, tracks: list[list[np.ndarray]]) -> np.ndarray:
        """(n_tracks, dim) unit vectors; equal-length windows are batched across tracks."""
        if any(not windows for windows in tracks):
            raise InvalidRequest("every track needs at least one window")
        vectors = self.embed_windows([window for windows in tracks for window in windows])
        out = np.empty((len(tracks), self.dim), dtype=np.float32)
        start = 0
        for index, windows in enumerate(tracks):
            mean = vectors[start : start + len(windows)].astype(np.float64).mean(axis=0)
            start += len(windows)
            norm = np.linalg.norm(mean)
            if not np.isfinite(norm) or norm == 0.0:
                raise UnusableVector("the model produced a zero or non-finite vector for a track")
            out[index] = mean / norm
        return out

    def build_spec(self, excerpt: str, window_seconds: float) -> EmbeddingSpec:
        return EmbeddingSpec(
            model=self.loaded.model_id,
            revision=self.loaded.revision,
            layer=self.loaded.layer,
            window_seconds=float(window_seconds),
            excerpt=excerpt,
            pooling="mean",
            sample_rate=self.loaded.sample_rate,
            dim=self.loaded.hidden_size,
        )


class LoadOptions(TypedDict, total=False):
    """load_mert's keywords that load_embedder hands through (the defaults stay load_mert's)."""

    revision: str | None
    layer: int
    device: str


def load_embedder(
    model: str = DEFAULT_MODEL,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **options: Unpack[LoadOptions],
) -> MertEmbedder:
    """load_mert + MertEmbedder in one call."""
    return MertEmbedder(load_mert(model, **options), batch_size=batch_size)
