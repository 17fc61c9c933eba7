"""The embedder's device path: pooling and normalisation where the model runs (the CPU path is
the same function with the CUDA steps off), the pinned/side-stream copies on CUDA, and the
batch size and decoding processes chosen when unset (ingest/autosize.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from soundalike.core.errors import UnusableVector
from soundalike.ingest import autosize
from soundalike.ingest.defaults import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS
from soundalike.ingest.embed import MertEmbedder, load_embedder

BF16_TOLERANCE = 0.05  # as tests/ingest/test_embed.py: chosen, not yet measured on a GPU
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")


def _audio(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    samples = int(seconds * 24000)
    tone = np.sin(np.arange(samples) * 2 * np.pi * rng.uniform(100, 900) / 24000)
    return (0.2 * rng.standard_normal(samples) + 0.5 * tone + 0.1).astype(np.float32)


def _tracks() -> list[list[np.ndarray]]:
    """Tracks of 1-3 windows of two lengths: windows of one track land in different batches."""
    return [
        [_audio(2.0, 1)],
        [_audio(2.0, 2), _audio(1.5, 3), _audio(2.0, 4)],
        [_audio(1.5, 5), _audio(1.5, 6)],
        [_audio(2.0, 7)],
    ]


def _previous_embed_tracks(embedder: MertEmbedder, tracks: list[list[np.ndarray]]) -> np.ndarray:
    """The pooling as it was before it moved to the device: per-batch copies to the host, the
    window means averaged per track in float64 with numpy, then normalised."""
    windows = [w for ws in tracks for w in ws]
    vectors = np.empty((len(windows), embedder.dim), dtype=np.float32)
    for positions, output in embedder.forward_batches(windows):
        vectors[positions] = output.last_hidden_state.float().mean(dim=1).cpu().numpy()
    out = np.empty((len(tracks), embedder.dim), dtype=np.float32)
    start = 0
    for index, ws in enumerate(tracks):
        mean = vectors[start : start + len(ws)].astype(np.float64).mean(axis=0)
        start += len(ws)
        out[index] = mean / np.linalg.norm(mean)
    return out


def test_device_pooling_matches_the_previous_host_pooling(tiny_mert_dir: Path) -> None:
    embedder = load_embedder(str(tiny_mert_dir), layer=11, device="cpu", batch_size=2)
    tracks = _tracks()
    pooled = embedder.embed_tracks(tracks)
    assert pooled.dtype == np.float32 and pooled.shape == (4, embedder.dim)
    np.testing.assert_allclose(pooled, _previous_embed_tracks(embedder, tracks), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)
    # embed_windows gathers the batches on the device too, back in input order.
    windows = [w for ws in tracks for w in ws]
    by_window = embedder.embed_windows(windows)
    for index, window in enumerate(windows):
        alone = embedder.embed_windows([window])[0]
        np.testing.assert_allclose(by_window[index], alone, rtol=1e-5, atol=1e-6)


def test_a_zero_vector_is_refused(
    tiny_embedder: MertEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def zeros(windows: list[np.ndarray]) -> tuple[list[int], torch.Tensor]:
        return list(range(len(windows))), torch.zeros((len(windows), tiny_embedder.dim))

    monkeypatch.setattr(tiny_embedder, "_pooled", zeros)
    with pytest.raises(UnusableVector):
        tiny_embedder.embed_tracks([[_audio(1.0, 1)]])


def test_unset_batch_size_is_the_default_off_cuda(tiny_mert_dir: Path) -> None:
    embedder = load_embedder(str(tiny_mert_dir), layer=11, device="cpu", batch_size=None)
    assert embedder.batch_size == DEFAULT_BATCH_SIZE


def test_batch_size_from_free_memory() -> None:
    per_window = autosize.window_bytes(30 * 24000)
    # MERT-95M, a 30 s window: about 0.9 GB at its peak (the first conv layer's group norm).
    assert 0.5e9 < per_window < 1.5e9
    assert autosize.batch_size_for_memory(140 * 2**30, per_window) > 32
    assert autosize.batch_size_for_memory(2**30, per_window) == 1  # never 0
    assert autosize.batch_size_for_memory(2**50, per_window) == autosize.MAX_AUTO_BATCH_SIZE


def test_decoding_processes_follow_the_host_with_a_gpu() -> None:
    assert autosize.workers_for_host(False, cpu_count=64) == DEFAULT_WORKERS
    assert autosize.workers_for_host(True, cpu_count=16) == 14
    assert autosize.workers_for_host(True, cpu_count=2) == DEFAULT_WORKERS
    assert autosize.workers_for_host(True, cpu_count=512) == autosize.MAX_AUTO_WORKERS


def test_usable_cores_respect_a_container_cpu_limit(tmp_path: Path) -> None:
    """In a pod with a CPU limit, os.cpu_count() is the node's cores; the quota is what the
    decoders get."""
    pinned = len(os.sched_getaffinity(0))
    limit = tmp_path / "cpu.max"
    limit.write_text("150000 100000\n")  # 1.5 CPUs: two processes share them
    assert autosize.usable_cores(str(limit)) == min(pinned, 2)
    limit.write_text("max 100000\n")
    assert autosize.usable_cores(str(limit)) == pinned
    assert autosize.usable_cores(str(tmp_path / "absent")) == pinned
    assert autosize.auto_workers(5, "cuda") == 5  # a set value wins
    assert autosize.auto_workers(None, "cpu") == DEFAULT_WORKERS
    assert autosize.device_has_gpu("cuda:1") and autosize.device_has_gpu("mps")
    assert autosize.device_has_gpu("auto") == CUDA


@pytest.mark.gpu
@needs_cuda
def test_cuda_path_agrees_with_the_cpu_path(tiny_mert_dir: Path) -> None:
    cpu = load_embedder(str(tiny_mert_dir), layer=11, device="cpu", batch_size=2)
    # batch_size 1: five forwards, so every copy but the first overlaps a forward.
    gpu = load_embedder(str(tiny_mert_dir), layer=11, device="cuda", batch_size=1)
    tracks = _tracks()
    on_cpu, on_gpu = cpu.embed_tracks(tracks), gpu.embed_tracks(tracks)
    assert np.linalg.norm(on_cpu - on_gpu, axis=1).max() < BF16_TOLERANCE
    # The shared pooling, fed the CUDA path's own window vectors, gives what the host did.
    np.testing.assert_allclose(on_gpu, _previous_embed_tracks(gpu, tracks), atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_overlapped_copies_keep_every_batch_in_place(tiny_mert_dir: Path) -> None:
    gpu = load_embedder(str(tiny_mert_dir), layer=11, device="cuda", batch_size=2)
    windows = [_audio(2.0, seed) for seed in range(9)]
    together = gpu.embed_windows(windows)
    alone = np.stack([gpu.embed_windows([w])[0] for w in windows])
    np.testing.assert_allclose(together, alone, rtol=0.05, atol=0.05)


@pytest.mark.gpu
@needs_cuda
def test_auto_batch_size_fits_the_device(tiny_mert_dir: Path) -> None:
    gpu = load_embedder(str(tiny_mert_dir), layer=11, device="cuda", batch_size=None)
    assert gpu.batch_size >= 1
    real = load_embedder(str(tiny_mert_dir), layer=11, device="cuda", batch_size=1)
    # The estimate reads the shape from the loaded model's config (here the tiny one): a
    # batch of that many 30 s windows must run in the memory that was free.
    windows = [_audio(30.0, seed % 3) for seed in range(gpu.batch_size)]
    real.batch_size = gpu.batch_size
    assert real.embed_tracks([windows]).shape == (1, real.dim)
