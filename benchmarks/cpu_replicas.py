"""CPU throughput on many cores: one model on N threads against k model replicas on N/k threads
each, model-only, full-size architecture.

    python -m benchmarks.cpu_replicas [--replicas 1,2] [--windows 4] [--batch-size 2]
        [--model DIR | --tiny] [--precision P] [--json]

torch's intra-op thread pool belongs to a process, so each replica is its own spawned process
with `torch.set_num_threads(N // k)`. Every replica loads the model the way ingest does
(`load_embedder`, the CPU fast path included), embeds one warm-up window, then all wait at a
barrier and embed their share of `--windows` deterministic 30 s windows. Throughput is all
windows over the span from the first replica's start to the last one's end (windows/s). Nothing
of this is in the product: the benchmark only says which layout wins on the host it runs on.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import bench_parser, document_header, int_list, log, print_document
from benchmarks.common import work_dir as scratch_dir
from benchmarks.ingest import benchmark_model
from soundalike.api.bench import synthetic_clip, usable_cores
from soundalike.api.settings import Settings
from soundalike.ingest.defaults import DEFAULT_LAYER, DEFAULT_WINDOW_SECONDS

MODULE = "benchmarks.cpu_replicas"
START_TIMEOUT_S = 600.0
HAS_PRECISION = "precision" in Settings.model_fields


def _replica(
    model: str, threads: int, first_clip: int, windows: int, batch_size: int,
    precision: str | None, barrier: Any, results: Any,
) -> None:  # fmt: skip
    """One replica: its own process, its own torch thread pool."""
    import torch

    torch.set_num_threads(threads)
    from soundalike.ingest.embed import load_embedder

    # The loader's own default precision unless one is asked for (older loaders have none).
    extra: dict[str, Any] = {"precision": precision} if precision else {}
    embedder = load_embedder(
        model, layer=DEFAULT_LAYER, device="cpu", batch_size=batch_size, **extra
    )
    rate = embedder.sample_rate
    embedder.embed_windows([synthetic_clip(0, rate, DEFAULT_WINDOW_SECONDS)])  # warm-up
    clips = [synthetic_clip(first_clip + i, rate, DEFAULT_WINDOW_SECONDS) for i in range(windows)]
    barrier.wait(timeout=START_TIMEOUT_S)
    started = time.time()  # wall clock: compared across processes
    embedder.embed_windows(clips)
    results.put({"windows": windows, "started": started, "ended": time.time()})


def measure_layout(
    model: str, replicas: int, cores: int, windows: int, batch_size: int,
    precision: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`replicas` processes of `cores // replicas` threads sharing `windows` windows."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(replicas)
    results = context.Queue()
    threads = max(1, cores // replicas)
    shares = [windows // replicas + (1 if i < windows % replicas else 0) for i in range(replicas)]
    processes = []
    first = 1
    for share in shares:
        process = context.Process(
            target=_replica,
            args=(model, threads, first, share, batch_size, precision, barrier, results),
        )
        process.start()
        processes.append(process)
        first += share
    done = [results.get(timeout=START_TIMEOUT_S * 2) for _ in processes]
    for process in processes:
        process.join()
    span = max(r["ended"] for r in done) - min(r["started"] for r in done)
    total = sum(r["windows"] for r in done)
    return {
        "replicas": replicas,
        "threads_each": threads,
        "windows": total,
        "seconds": round(span, 3),
        "windows_per_s": total / span,
        "per_replica_seconds": [round(r["ended"] - r["started"], 3) for r in done],
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| layout | windows | seconds | windows/s |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['replicas']} x {row['threads_each']} threads | {row['windows']} | "
            f"{row['seconds']:.1f} | {row['windows_per_s']:.3f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser(MODULE, __doc__)
    parser.add_argument("--replicas", type=int_list, default=[1, 2], help="e.g. 1,2,4")
    parser.add_argument("--windows", type=int, default=4, help="30 s windows in all, per layout")
    parser.add_argument("--batch-size", type=int, default=2, dest="batch_size")
    if HAS_PRECISION:
        parser.add_argument("--precision", help="the model's precision (default: the loader's)")
    parser.add_argument("--cores", type=int, default=None, help="N (default: usable cores)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", help="checkpoint dir (default: full-size random MERT-v1-95M)")
    model.add_argument("--tiny", action="store_true", help="the test-size random checkpoint")
    parser.add_argument("--json", action="store_true", help="only the JSON document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cores = args.cores or usable_cores()
    if not args.replicas or min(args.replicas) < 1 or max(args.replicas) > cores:
        parser.error(f"--replicas must be between 1 and the {cores} cores")
    if args.windows < max(args.replicas) or args.batch_size < 1:
        parser.error("--windows must be >= the most replicas, --batch-size >= 1")
    document = document_header(MODULE, sys.argv[1:] if argv is None else argv)
    with scratch_dir(None, "cpu-replicas") as scratch:
        model, label = benchmark_model(args, scratch)
        rows = []
        for replicas in args.replicas:
            precision = getattr(args, "precision", None)
            rows.append(
                measure_layout(model, replicas, cores, args.windows, args.batch_size, precision)
            )
            log(f"[cpu-replicas] {rows[-1]}")
    best = max(rows, key=lambda row: row["windows_per_s"])
    document |= {
        "model": label,
        "cores": cores,
        "batch_size": args.batch_size,
        "precision": getattr(args, "precision", None),
        "layouts": rows,
        "fastest": f"{best['replicas']} x {best['threads_each']} threads",
    }
    print_document(document, text=None if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
