"""Embedding throughput: soundalike's path against the naive reference path, in one run.

Naive path: a full 12-layer HubertModel, eager attention, fp32, batch 1, all hidden states
requested and `hidden_states[layer]` mean-pooled. soundalike's path: `MertEmbedder`. Both embed the
same deterministic synthetic 30 s clips. Each path runs in its own spawned process, so its peak
memory is its own: on CPU the growth of the process's peak RSS (getrusage ru_maxrss) over the RSS
measured after imports, before the model is loaded (weights included); on CUDA
torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import json
import multiprocessing
import queue as queue_module
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from soundalike.ingest.model import DEFAULT_MODEL, model_files, resolve_device

CLIP_SECONDS = 30.0
# Intermediate configurations, in the order that shows where the speed-up comes from.
STEP_PATHS = ("sdpa_full", "sdpa_truncated")


def synthetic_clip(index: int, sample_rate: int, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """A deterministic music-like signal: a melody of harmonic notes, drum hits and noise."""
    rng = np.random.default_rng(1000 + index)
    total = int(round(seconds * sample_rate))
    t = np.arange(total) / sample_rate
    signal = np.zeros(total)
    note_length = int(sample_rate * rng.uniform(0.2, 0.5))
    for start in range(0, total, note_length):
        stop = min(start + note_length, total)
        pitch = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        envelope = np.exp(-np.arange(stop - start) / (0.3 * sample_rate))
        for harmonic in range(1, 6):
            phase = 2 * np.pi * pitch * harmonic * t[start:stop]
            signal[start:stop] += envelope * np.sin(phase) / harmonic
    beat = int(sample_rate * 60 / rng.uniform(80, 160))
    hit = np.exp(-np.arange(beat // 4) / (0.02 * sample_rate)) * rng.standard_normal(beat // 4)
    for start in range(0, total - hit.size, beat):
        signal[start : start + hit.size] += 0.8 * hit
    signal += 0.02 * rng.standard_normal(total)
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _run_path(
    path: str,
    model: str,
    layer: int,
    device: str,
    batch_size: int,
    clips: int,
    clip_seconds: float,
    queue: Any,
) -> None:
    """One path in its own process: load, warm up on one clip, time `clips` clips."""
    import torch

    from soundalike.ingest.embed import MertEmbedder
    from soundalike.ingest.model import load_mert

    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline_mb = _rss_mb()

    if path == "soundalike":
        embedder = MertEmbedder(load_mert(model, layer=layer, device=device), batch_size=batch_size)
        sample_rate = embedder.sample_rate

        def embed(windows: list[np.ndarray]) -> np.ndarray:
            return embedder.embed_windows(windows)

        step = batch_size
    else:
        truncated = path == "sdpa_truncated"
        config = json.loads(model_files(model).config.read_text())
        depth = layer if truncated else int(config.get("num_hidden_layers", 12))
        loaded = load_mert(model, layer=depth, device=device, optimize=False)
        module = loaded.module.float()
        module.set_attn_implementation("eager" if path == "naive" else "sdpa")
        sample_rate = loaded.sample_rate
        normalizer = MertEmbedder(loaded)

        def embed(windows: list[np.ndarray]) -> np.ndarray:
            vectors = []
            with torch.inference_mode():
                for window in windows:
                    batch = torch.from_numpy(normalizer._prepare(window))[None].to(target)
                    if truncated:
                        frames = module(batch).last_hidden_state
                    else:
                        frames = module(batch, output_hidden_states=True).hidden_states[layer]
                    vectors.append(frames.mean(dim=1)[0].float().cpu().numpy())
            return np.stack(vectors)

        step = 1

    embed([synthetic_clip(0, sample_rate, clip_seconds)])
    windows = [synthetic_clip(1 + i, sample_rate, clip_seconds) for i in range(clips)]
    if target.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    vectors = np.concatenate([embed(windows[i : i + step]) for i in range(0, clips, step)])
    if target.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started

    if target.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline_mb
    queue.put({"seconds": seconds, "peak_mem_mb": peak_mb, "vectors": vectors})


def _measure(
    path: str,
    model: str,
    layer: int,
    device: str,
    batch_size: int,
    clips: int,
    clip_seconds: float,
) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_run_path,
        args=(path, model, layer, device, batch_size, clips, clip_seconds, queue),
    )
    process.start()
    result = None
    try:
        while result is None:
            try:
                result = queue.get(timeout=1.0)
            except queue_module.Empty:
                if not process.is_alive():
                    break
    finally:
        process.join()
    if result is None or process.exitcode != 0:
        raise RuntimeError(f"bench path {path!r} failed (exit code {process.exitcode})")
    return result


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run_bench(
    *,
    model: str | None,
    random_weights: bool,
    device: str,
    clips: int,
    batch_size: int,
    layer: int = 11,
    naive: bool = True,
    steps: bool = False,
    clip_seconds: float = CLIP_SECONDS,
) -> dict[str, Any]:
    """Clips per second and peak memory of both paths, their ratio and the vectors' parity.

    `steps` also measures the intermediate configurations (SDPA on the full model; SDPA and
    truncation to `layer`) so a report shows where the speed-up comes from.
    """
    if clips < 1:
        raise ValueError(f"clips must be >= 1, not {clips}")
    target = str(resolve_device(device))
    with tempfile.TemporaryDirectory(prefix="soundalike-bench-") as scratch:
        if random_weights:
            from soundalike.ingest.devtools.checkpoint import write_mert_checkpoint

            model_path = str(write_mert_checkpoint(Path(scratch) / "mert-random"))
            model_label = "MERT-v1-95M architecture, random weights"
        else:
            model_path = model or DEFAULT_MODEL
            model_label = model_path

        # Fail here, with the typed error, rather than inside a spawned process.
        model_files(model_path)
        paths = ["soundalike"]
        if naive:
            paths.insert(0, "naive")
        if steps:
            paths[-1:-1] = list(STEP_PATHS)
        measured = {
            path: _measure(path, model_path, layer, target, batch_size, clips, clip_seconds)
            for path in paths
        }

    def figures(result: dict) -> dict[str, float]:
        return {
            "clips_per_s": clips / result["seconds"],
            "seconds_per_clip": result["seconds"] / clips,
            "peak_mem_mb": round(float(result["peak_mem_mb"]), 1),
        }

    report: dict[str, Any] = {
        "soundalike": figures(measured["soundalike"]),
        "device": target,
        "model": model_label,
        "layer": layer,
        "clips": clips,
        "clip_seconds": clip_seconds,
        "batch_size": batch_size,
    }
    if naive:
        report["naive"] = figures(measured["naive"])
        report["ratio"] = report["soundalike"]["clips_per_s"] / report["naive"]["clips_per_s"]
        ours, reference = (
            _unit(measured["soundalike"]["vectors"]),
            _unit(measured["naive"]["vectors"]),
        )
        report["parity_l2"] = float(np.linalg.norm(ours - reference, axis=1).max())
    if steps:
        report["steps"] = {path: figures(measured[path]) for path in STEP_PATHS}
    return report
