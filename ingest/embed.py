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
from soundalike.ingest.autosize import auto_batch_size
from soundalike.ingest.defaults import DEFAULT_BATCH_SIZE, DEFAULT_WINDOW_SECONDS
from soundalike.ingest.model import DEFAULT_MODEL, LoadedMert, load_mert

# Wav2Vec2FeatureExtractor's zero-mean/unit-variance normalisation: (x - mean) / sqrt(var + 1e-7).
NORMALIZE_EPSILON = 1e-7
# The conv extractor's receptive field: shorter windows yield no frame at all.
MIN_WINDOW_SAMPLES = 400


class MertEmbedder:
    """Embeds windows with a loaded MERT: one pass per window, equal lengths batched together.
    The `Embedder` of ingest/engine.py (`embed_tracks`: unit vectors); `embed_windows` gives the
    raw per-window vectors the evaluation pools its own way."""

    def __init__(
        self,
        loaded: LoadedMert,
        *,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
    ) -> None:
        """`batch_size` None: sized to the device's free memory for windows of
        `window_seconds` on CUDA, DEFAULT_BATCH_SIZE elsewhere (ingest/autosize.py)."""
        if batch_size is None:
            window_samples = round(window_seconds * loaded.sample_rate)
            batch_size = auto_batch_size(loaded.device, loaded.module, window_samples)
        if batch_size < 1:
            raise InvalidRequest(f"batch_size must be >= 1, not {batch_size}")
        self.loaded = loaded
        self.batch_size = batch_size

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    @property
    def precision(self) -> str:
        return self.loaded.precision

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
        return self.loaded.autocast()

    def forward_batches(
        self, windows: Sequence[np.ndarray], *, output_hidden_states: bool = False
    ) -> Iterator[tuple[list[int], Any]]:
        """The model's output for batches of equal-length windows (never padded), each with the
        input positions it covers. On CUDA the next batch's host→device copy (from pinned
        memory, on a side stream) runs while this batch's forward does; nothing here waits for
        the device, so the host queues work ahead of it. Elsewhere the same loop without those
        steps (today's CPU path: a plain stack and `.to(device)`)."""
        prepared = [self._prepare(window) for window in windows]
        by_length: dict[int, list[int]] = defaultdict(list)
        for position, samples in enumerate(prepared):
            by_length[samples.size].append(position)
        groups = [
            positions[start : start + self.batch_size]
            for positions in by_length.values()
            for start in range(0, len(positions), self.batch_size)
        ]
        module, device = self.loaded.module, self.loaded.device
        copies = torch.cuda.Stream(device) if device.type == "cuda" else None
        with torch.inference_mode(), self._autocast():
            staged = self._stage(prepared, groups[0], copies) if groups else None
            for index, positions in enumerate(groups):
                assert staged is not None  # one staged batch per group
                batch, ready = staged
                # Batch n+1's copy is queued before batch n's forward: they run side by side.
                following = index + 1 < len(groups)
                staged = self._stage(prepared, groups[index + 1], copies) if following else None
                if ready is not None:
                    compute = torch.cuda.current_stream(device)
                    compute.wait_event(ready)
                    # Made on the copy stream, used on this one: the allocator must not reuse
                    # its memory before this stream is done with it.
                    batch.record_stream(compute)
                yield positions, module(batch, output_hidden_states=output_hidden_states)

    def _stage(
        self, prepared: list[np.ndarray], positions: list[int], copies: Any
    ) -> tuple[torch.Tensor, Any]:
        """One batch on the device, and the CUDA event its copy completes (None off CUDA)."""
        if copies is None:
            batch = torch.from_numpy(np.stack([prepared[p] for p in positions]))
            return batch.to(self.loaded.device), None
        # Packed straight into page-locked memory: the copy is a DMA that does not hold the
        # host, and the caching host allocator keeps the buffer until the copy is done.
        host = torch.empty(
            (len(positions), prepared[positions[0]].size), dtype=torch.float32, pin_memory=True
        )
        np.stack([prepared[p] for p in positions], out=host.numpy())
        with torch.cuda.stream(copies):
            batch = host.to(self.loaded.device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(copies)
        return batch, ready

    def _pooled(self, windows: list[np.ndarray]) -> tuple[list[int], torch.Tensor]:
        """(the windows' positions in the order computed, their float32 mean-over-frames
        vectors in that order), left on the device. Gathered, not written per batch: indexing
        with a host list inside the loop is a blocking copy that would make the host wait for
        every queued forward."""
        order: list[int] = []
        pooled: list[torch.Tensor] = []
        for positions, output in self.forward_batches(windows):
            order += positions
            pooled.append(output.last_hidden_state.float().mean(dim=1))
        if not pooled:
            return order, torch.empty((0, self.dim), device=self.loaded.device)
        return order, torch.cat(pooled)

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        """(n, dim) float32 mean-pooled layer-L vectors, not normalised, in input order."""
        device = self.loaded.device
        with torch.inference_mode():
            order, pooled = self._pooled(windows)
            vectors = torch.empty((len(windows), self.dim), dtype=torch.float32, device=device)
            vectors[torch.tensor(order, dtype=torch.long, device=device)] = pooled
            return vectors.cpu().numpy()  # one copy back for all the batches

    def embed_track(self, windows: list[np.ndarray]) -> np.ndarray:
        """One unit float32 vector: the mean of the window vectors, L2-normalised."""
        return self.embed_tracks([windows])[0]

    def embed_tracks(self, tracks: list[list[np.ndarray]]) -> np.ndarray:
        """(n_tracks, dim) unit vectors; equal-length windows are batched across tracks. The
        window vectors are summed per track, averaged and normalised where the model ran (in
        float64, float32 on MPS which has none): the host gets only the unit vectors, in one
        copy."""
        if any(not windows for windows in tracks):
            raise InvalidRequest("every track needs at least one window")
        device = self.loaded.device
        wide = torch.float32 if device.type == "mps" else torch.float64
        owners = [index for index, windows in enumerate(tracks) for _ in windows]
        with torch.inference_mode():
            order, pooled = self._pooled([w for windows in tracks for w in windows])
            owner_of = torch.tensor([owners[p] for p in order], dtype=torch.long, device=device)
            sums = torch.zeros((len(tracks), self.dim), dtype=wide, device=device)
            sums.index_add_(0, owner_of, pooled.to(wide))
            counts = torch.tensor([len(windows) for windows in tracks], dtype=wide, device=device)
            means = sums / counts[:, None]
            unit = (means / torch.linalg.vector_norm(means, dim=1, keepdim=True)).float()
            out: np.ndarray = unit.cpu().numpy()
        # A zero norm gives 0/0 and a non-finite one inf/inf or nan: both leave a non-finite
        # component, checked here on the host copy rather than by a second device sync.
        if not np.isfinite(out).all():
            raise UnusableVector("the model produced a zero or non-finite vector for a track")
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
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    **options: Unpack[LoadOptions],
) -> MertEmbedder:
    """load_mert + MertEmbedder in one call."""
    return MertEmbedder(load_mert(model, **options), batch_size=batch_size)
