"""Re-embedding an evaluation's tracks: every requested hidden state from one forward pass per
window, and (for the chunked comparison) the same windows cut into chunks, embedded and averaged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from soundalike.core.errors import AudioError, InvalidRequest, ModelUnavailable
from soundalike.ingest.embed import MIN_WINDOW_SAMPLES, MertEmbedder
from soundalike.ingest.engine import Decoding
from soundalike.ingest.evaluation.gather import EvalTrack, skipped_entry
from soundalike.ingest.model import LoadedMert, model_files

# Decoded tracks are embedded in groups of this many batches' worth of windows.
WINDOW_GROUP_BATCHES = 4

Log = Callable[[str], None]


def model_layer_count(model: str, revision: str | None) -> int:
    """Transformer layers of a checkpoint (12 for MERT-v1-95M), read from its config.json before
    the model is loaded: the layers asked for decide how deep it is loaded."""
    config_path = model_files(model, revision).config
    try:
        return int(json.loads(config_path.read_text())["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"{config_path}: no readable num_hidden_layers: {exc}") from exc


class HiddenStateEmbedder(MertEmbedder):
    """Mean-pooled vectors of several hidden states from one forward pass per window.

    The ingest embedder's preprocessing and batching (equal-length windows, nothing padded),
    keeping every requested hidden state instead of the last one.
    """

    def __init__(self, loaded: LoadedMert, layers: Sequence[int], *, batch_size: int = 4) -> None:
        if max(layers) > loaded.layer:
            raise InvalidRequest(
                f"layers {list(layers)} exceed the {loaded.layer} the model was loaded with"
            )
        super().__init__(loaded, batch_size=batch_size)
        self.layers = list(layers)

    def embed_layers(self, windows: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
        """{layer: (n, dim) float64 mean-pooled vectors}, in input order, not normalised."""
        result = {layer: np.empty((len(windows), self.dim)) for layer in self.layers}
        for positions, output in self.forward_batches(windows, output_hidden_states=True):
            for layer in self.layers:
                pooled = output.hidden_states[layer].float().mean(dim=1).cpu().numpy()
                result[layer][positions] = pooled
        return result


def chunk_window(window: np.ndarray, chunk_samples: int) -> list[np.ndarray]:
    """Equal chunks of `chunk_samples` from the start; a remainder becomes one more chunk that
    ends with the window (overlapping the one before), so every sample is seen and every chunk
    has the same length. A window no longer than a chunk is one chunk."""
    total = len(window)
    if total <= chunk_samples:
        return [window]
    starts = list(range(0, total - chunk_samples + 1, chunk_samples))
    if starts[-1] + chunk_samples < total:
        starts.append(total - chunk_samples)
    return [window[s : s + chunk_samples] for s in starts]


def _mean_unit(vectors: np.ndarray) -> np.ndarray:
    # As the ingest embedder makes a track's vector from its windows: average, then normalise.
    mean = vectors.mean(axis=0)
    return mean / np.linalg.norm(mean)


@dataclass
class Embedded:
    """Re-embedded tracks: per layer, one row per kept track (full window; chunked if asked)."""

    tracks: list[EvalTrack]
    full: dict[int, np.ndarray]
    chunked: dict[int, np.ndarray] | None
    chunks_per_track: float | None
    skipped: list[dict[str, str]]
    seconds: float


class _TrackVectors:
    """Per-layer rows of track vectors, one per track, each the mean of its windows' vectors."""

    def __init__(self, embedder: HiddenStateEmbedder) -> None:
        self.embedder = embedder
        self.rows: dict[int, list[np.ndarray]] = {layer: [] for layer in embedder.layers}

    def add(self, per_track: list[list[np.ndarray]]) -> None:
        vectors = self.embedder.embed_layers([w for windows in per_track for w in windows])
        start = 0
        for windows in per_track:
            for layer, rows in self.rows.items():
                rows.append(_mean_unit(vectors[layer][start : start + len(windows)]))
            start += len(windows)

    def stacked(self) -> dict[int, np.ndarray]:
        dim = self.embedder.dim
        return {
            layer: np.array(rows) if rows else np.empty((0, dim))
            for layer, rows in self.rows.items()
        }


def _chunk_samples(chunk_seconds: float, sample_rate: int) -> int:
    samples = round(chunk_seconds * sample_rate)
    if samples < MIN_WINDOW_SAMPLES:
        raise InvalidRequest(
            f"--compare chunked:{chunk_seconds:g}: chunks must be at least "
            f"{MIN_WINDOW_SAMPLES / sample_rate:.3f} s for the model to see a frame"
        )
    return samples


def embed_tracks(
    tracks: list[EvalTrack],
    embedder: HiddenStateEmbedder,
    decoding: Decoding,
    *,
    chunk_seconds: float | None,
    log: Log | None = None,
) -> Embedded:
    """Decode each track's excerpt as `decoding` says and embed it: every requested layer, the
    full window in one pass, and (with `chunk_seconds`) chunk by chunk, averaged. Tracks that
    cannot be decoded are skipped with the reason."""
    started = time.monotonic()
    sample_rate = embedder.sample_rate
    chunk_samples = None if chunk_seconds is None else _chunk_samples(chunk_seconds, sample_rate)
    kept: list[EvalTrack] = []
    skipped: list[dict[str, str]] = []
    full = _TrackVectors(embedder)
    chunked = _TrackVectors(embedder)
    chunk_counts: list[int] = []
    # Decoded tracks wait here until there are enough windows to fill a few batches: windows
    # of several tracks share forward passes, and memory holds only a group at a time.
    pending: list[tuple[EvalTrack, list[np.ndarray]]] = []
    group_windows = embedder.batch_size * WINDOW_GROUP_BATCHES

    def flush() -> None:
        if not pending:
            return
        full.add([windows for _, windows in pending])
        if chunk_samples is not None:
            per_track = [
                [c for w in windows for c in chunk_window(w, chunk_samples)]
                for _, windows in pending
            ]
            chunk_counts.extend(len(chunks) for chunks in per_track)
            chunked.add(per_track)
        kept.extend(track for track, _ in pending)
        pending.clear()
        if log:
            log(f"embedded {len(kept)} of {len(tracks)} tracks")

    for track in tracks:
        if not track.path:
            skipped.append(skipped_entry(track, "no path stored"))
            continue
        try:
            decoded = decoding.decode(track.path, sample_rate)
        except AudioError as error:
            skipped.append(skipped_entry(track, error.detail))
            continue
        windows = [w for w in decoded.windows if len(w) >= MIN_WINDOW_SAMPLES]
        if not windows:
            skipped.append(skipped_entry(track, "too short"))
            continue
        pending.append((track, windows))
        if sum(len(w) for _, w in pending) >= group_windows:
            flush()
    flush()
    return Embedded(
        tracks=kept,
        full=full.stacked(),
        chunked=chunked.stacked() if chunk_samples is not None else None,
        chunks_per_track=float(np.mean(chunk_counts)) if chunk_counts else None,
        skipped=skipped,
        seconds=time.monotonic() - started,
    )
