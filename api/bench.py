"""`soundalike bench`: embedding throughput, soundalike's path against the naive reference path,
in one run.

    soundalike bench [--random-weights | --model M] [--device auto] [--precision auto]
        [--clips 3] [--batch-size 1] [--layer 11] [--no-naive] [--steps] [--json]

(`python -m benchmarks.engine`, from a checkout, runs the same.) Naive path: a full 12-layer
HubertModel, eager attention, fp32, batch 1, all hidden states requested and
`hidden_states[layer]` mean-pooled. soundalike's path: `MertEmbedder` in `--precision` (auto:
bf16 on CUDA and on CPUs with native bf16); when that is not fp32, the same path in fp32
(`soundalike_fp32`) is timed too, so the precision's speed-up and how far its vectors move are
printed from one run. All paths embed the same
deterministic synthetic 30 s clips (devtools.synth). Each path runs in its own spawned process,
so its peak memory is its own: on CPU the growth of the process's peak RSS (getrusage ru_maxrss)
over the RSS measured after imports, before the model is loaded (weights included); on CUDA
torch.cuda.max_memory_allocated.

This is the one benchmark the wheel carries; the others live in the checkout's `benchmarks/` and
take the machine description, memory figures and isolated processes from here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue as queue_module
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.defaults import DEFAULT_LAYER, DEFAULT_MODEL, DEFAULT_WINDOW_SECONDS
from soundalike.ingest.devtools.synth import synth_track

CLIP_SECONDS = DEFAULT_WINDOW_SECONDS
# Intermediate configurations, in the order that shows where the speed-up comes from.
STEP_PATHS = ("sdpa_full", "sdpa_truncated")
# The instruction sets that decide which kernels torch and Qdrant can use on an x86 CPU.
FLAGS_THAT_MATTER = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

Result = TypeVar("Result")


# --- the machine -----------------------------------------------------------------------------


def parse_cpu_description(text: str) -> dict[str, Any]:
    """CPU model name, family and the flags that matter, from `lscpu` or /proc/cpuinfo text
    (both spell the keys the same way once lower-cased; cpuinfo repeats them per core)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "cpu": fields.get("model name") or platform.processor() or platform.machine(),
        "cpu_family": fields.get("cpu family"),
        "cpu_flags": [flag for flag in FLAGS_THAT_MATTER if flag in flags],
    }


def _cpu_text() -> str:
    try:
        return subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        try:
            return Path("/proc/cpuinfo").read_text()
        except OSError:
            return ""


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 0


def machine() -> dict[str, Any]:
    return parse_cpu_description(_cpu_text()) | {
        "cores": usable_cores(),
        "python": platform.python_version(),
    }


# --- memory and isolated measurements --------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _call_into_queue(target: Callable[..., Any], args: tuple[Any, ...], results: Any) -> None:
    results.put(target(*args))


def run_isolated(target: Callable[..., Result], *args: Any) -> Result:
    """`target(*args)` in a fresh spawned process, so its peak memory and its imports are its
    own; returns what it returned. `target` must be a module-level function."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_call_into_queue, args=(target, args, results))
    process.start()
    received: list[Result] = []
    try:
        while not received:
            # Asked before waiting: a result put just before the exit is still read.
            alive = process.is_alive()
            try:
                received.append(results.get(timeout=1.0))
            except queue_module.Empty:
                if not alive:
                    break
    finally:
        process.join()
    if not received or process.exitcode != 0:
        name = getattr(target, "__name__", repr(target))
        raise RuntimeError(f"benchmark process {name} failed (exit code {process.exitcode})")
    return received[0]


# --- the embedding benchmark -----------------------------------------------------------------


def synthetic_clip(index: int, sample_rate: int, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """Clip `index`: deterministic mono synthetic music, a different artist for each index."""
    return synth_track(
        artist_seed=index, track_seed=0, seconds=seconds, sample_rate=sample_rate, channels=1
    )[0]


@dataclass(frozen=True)
class PathMeasurement:
    """One path's run: seconds for all clips, peak memory, and the clips' vectors."""

    seconds: float
    peak_mem_mb: float
    vectors: np.ndarray


@dataclass(frozen=True)
class PathRun:
    """What to time: one path on `clips` clips of `clip_seconds`."""

    path: str
    model: str
    layer: int
    device: str
    batch_size: int
    clips: int
    clip_seconds: float
    precision: str = "fp32"


MeasurePath = Callable[[PathRun], PathMeasurement]


def _run_path(run: PathRun) -> PathMeasurement:
    """One path in its own process: load, warm up on one clip, time `clips` clips."""
    import torch

    from soundalike.ingest.embed import MertEmbedder
    from soundalike.ingest.model import load_mert

    path, model, layer, device = run.path, run.model, run.layer, run.device
    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline_mb = rss_mb()

    if path in ("soundalike", "soundalike_fp32"):
        precision = "fp32" if path == "soundalike_fp32" else run.precision
        embedder = MertEmbedder(
            load_mert(model, layer=layer, device=device, precision=precision),
            batch_size=run.batch_size,
        )
        sample_rate = embedder.sample_rate

        def embed(windows: list[np.ndarray]) -> np.ndarray:
            return embedder.embed_windows(windows)

        step = run.batch_size
    else:
        from soundalike.ingest.model import model_files

        truncated = path == "sdpa_truncated"
        config = json.loads(model_files(model).config.read_text())
        depth = layer if truncated else int(config.get("num_hidden_layers", 12))
        loaded = load_mert(model, layer=depth, device=device, optimize=False)
        module = loaded.module.float()
        # A transformers model; nn.Module's __getattr__ types its extra methods Tensor | Module.
        module.set_attn_implementation(  # type: ignore[operator]
            "eager" if path == "naive" else "sdpa"
        )
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

    embed([synthetic_clip(0, sample_rate, run.clip_seconds)])
    windows = [synthetic_clip(1 + i, sample_rate, run.clip_seconds) for i in range(run.clips)]
    if target.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    vectors = np.concatenate([embed(windows[i : i + step]) for i in range(0, run.clips, step)])
    if target.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started

    if target.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = peak_rss_mb() - baseline_mb
    return PathMeasurement(seconds, peak_mb, vectors)


def measure_path(run: PathRun) -> PathMeasurement:
    """Times one path in a fresh spawned process."""
    return run_isolated(_run_path, run)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _figures(measured: PathMeasurement, clips: int) -> dict[str, float]:
    return {
        "clips_per_s": clips / measured.seconds,
        "seconds_per_clip": measured.seconds / clips,
        "peak_mem_mb": round(float(measured.peak_mem_mb), 1),
    }


def run_bench(
    *,
    model: str | None,
    random_weights: bool,
    device: str,
    clips: int,
    batch_size: int,
    layer: int = DEFAULT_LAYER,
    naive: bool = True,
    steps: bool = False,
    clip_seconds: float = CLIP_SECONDS,
    precision: str | None = None,
    measure: MeasurePath = measure_path,
) -> dict[str, Any]:
    """Clips per second and peak memory of both paths, their ratio and the vectors' parity.

    `steps` also measures the intermediate configurations (SDPA on the full model; SDPA and
    truncation to `layer`) so a report shows where the speed-up comes from. soundalike's path
    runs in `precision` (resolved here: an explicit bf16 on a CPU without native bf16 is refused
    before anything is timed); when a named precision resolves to bf16, the fp32 fast path is
    timed too. None (the default here) is load_mert's default, bf16 on CUDA and fp32 elsewhere
    (exact parity with the naive path), with nothing else timed; the CLI's `--precision` is auto.
    `measure` runs one path; the default times it in its own process.
    """
    from soundalike.ingest.model import model_files, resolve_device
    from soundalike.ingest.precision import resolve_precision

    if clips < 1:
        raise InvalidRequest(f"clips must be >= 1, not {clips}")
    resolved_device = resolve_device(device)
    target = str(resolved_device)
    # None: load_mert's own default (bf16 on CUDA, fp32 elsewhere), nothing else timed.
    named = precision is not None
    if precision is None:
        precision = "bf16" if resolved_device.type == "cuda" else "fp32"
    compute = resolve_precision(precision, resolved_device)
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
        if named and compute != "fp32":
            paths.insert(paths.index("soundalike"), "soundalike_fp32")
        measured = {
            path: measure(
                PathRun(path, model_path, layer, target, batch_size, clips, clip_seconds, compute)
            )
            for path in paths
        }

    report: dict[str, Any] = {
        "soundalike": _figures(measured["soundalike"], clips),
        "device": target,
        "model": model_label,
        "layer": layer,
        "clips": clips,
        "clip_seconds": clip_seconds,
        "batch_size": batch_size,
        "precision": precision,
        "compute_precision": compute,
        "machine": machine(),
    }
    if "soundalike_fp32" in measured:
        fp32 = _figures(measured["soundalike_fp32"], clips)
        report["soundalike_fp32"] = fp32
        report["precision_ratio"] = report["soundalike"]["clips_per_s"] / fp32["clips_per_s"]
        moved = _unit(measured["soundalike"].vectors) - _unit(measured["soundalike_fp32"].vectors)
        distances = np.linalg.norm(moved, axis=1)
        report["precision_l2_mean"] = float(distances.mean())
        report["precision_l2_max"] = float(distances.max())
    if naive:
        report["naive"] = _figures(measured["naive"], clips)
        report["ratio"] = report["soundalike"]["clips_per_s"] / report["naive"]["clips_per_s"]
        ours = _unit(measured["soundalike"].vectors)
        reference = _unit(measured["naive"].vectors)
        report["parity_l2"] = float(np.linalg.norm(ours - reference, axis=1).max())
    if steps:
        report["steps"] = {path: _figures(measured[path], clips) for path in STEP_PATHS}
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as a few aligned lines: clips/s and peak memory per path, then the ratio."""
    names = ("naive", "soundalike_fp32", "soundalike")
    rows = [(name, report[name]) for name in names if name in report]
    rows[1 if "naive" in report else 0 : 0] = list(report.get("steps", {}).items())
    lines = [
        f"{name:<16} {row['clips_per_s']:8.3f} clips/s  peak {row['peak_mem_mb']:8.1f} MB"
        for name, row in rows
    ]
    if report.get("ratio") is not None:
        lines.append(f"{'ratio':<16} {report['ratio']:8.2f}x on {report['device']}")
    if report.get("precision_ratio") is not None:
        cpu = report["machine"]
        lines.append(
            f"{'precision':<16} {report['precision']} ({report['compute_precision']}) vs fp32: "
            f"{report['precision_ratio']:.2f}x, unit-vector L2 mean "
            f"{report['precision_l2_mean']:.4f} max {report['precision_l2_max']:.4f} on "
            f"{report['device']} (cpu family {cpu.get('cpu_family')}, "
            f"flags {' '.join(cpu.get('cpu_flags', [])) or 'none of note'})"
        )
    return "\n".join(lines)


def add_bench_flags(parser: argparse.ArgumentParser) -> None:
    """`soundalike bench`'s flags; `python -m benchmarks.engine` takes the same."""
    parser.add_argument("--model", help="checkpoint to time (default: --random-weights)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        dest="random_weights",
        help="full MERT-v1-95M architecture with random weights (no download)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="soundalike's path (auto: bf16 with native bf16); also times fp32 when not fp32",
    )
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1, dest="batch_size")
    parser.add_argument("--layer", type=int, default=DEFAULT_LAYER)
    parser.add_argument(
        "--no-naive", action="store_true", dest="no_naive", help="time only soundalike's path"
    )
    parser.add_argument(
        "--steps", action="store_true", help="also time SDPA, then SDPA + truncation"
    )
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS, dest="clip_seconds")


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """`run_bench` with the flags of `add_bench_flags` (no --model: random weights)."""
    return run_bench(
        model=args.model,
        random_weights=args.random_weights or args.model is None,
        device=args.device,
        clips=args.clips,
        batch_size=args.batch_size,
        layer=args.layer,
        naive=not args.no_naive,
        steps=args.steps,
        clip_seconds=args.clip_seconds,
        precision=args.precision,
    )
