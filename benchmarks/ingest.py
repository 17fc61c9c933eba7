"""Ingest benchmark: the whole pipeline with the store vs the engine alone, and memory vs size.

    python -m benchmarks.ingest [--tracks 100 1000] [--seconds 12]
        [--model DIR] [--workers 1] [--json]

For each catalogue size, two fresh spawned processes run on the same generated files:
- `engine`: identify → decode → embed (the pipeline's own stages), nothing written;
- `ingest`: the full `ingest()` into a new embedded store (writes, flushes, centroids, HNSW).
Each reports its wall time and peak RSS (getrusage ru_maxrss), so the store's share of the time
and whether memory stays flat with catalogue size can be read off one table. The default model
is a small random checkpoint in MERT's layout, so the store's share is as large as it can get.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    bench_parser,
    document_header,
    environment_without_settings,
    log,
    print_document,
    work_dir,
)
from soundalike.api.bench import peak_rss_mb, run_isolated
from soundalike.api.services import Services
from soundalike.api.settings import Settings
from soundalike.core.errors import AudioError
from soundalike.ingest.devtools.checkpoint import write_mert_checkpoint
from soundalike.ingest.devtools.synth import write_catalogue
from soundalike.ingest.pipeline import IngestOptions, decode, discover, identify, ingest
from soundalike.ingest.sources import FolderSource

MODULE = "benchmarks.ingest"
MODES = ("engine", "ingest")
# MERT's conv strides (75 frames a second) with small layers: fast enough to time 1,000 tracks.
TINY_CONFIG = {
    "hidden_size": 64,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "conv_dim": [32] * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}


def benchmark_model(args: argparse.Namespace, scratch: Path) -> tuple[str, str]:
    """The checkpoint a model benchmark runs (`--model DIR`; `--tiny`: the test-size layout;
    else the MERT-v1-95M architecture with random weights, written into `scratch`) and how the
    report names it."""
    if args.model:
        return str(args.model), str(args.model)
    if args.tiny:
        tiny = write_mert_checkpoint(scratch / "model", config_overrides=TINY_CONFIG)
        return str(tiny), f"random MERT-layout checkpoint {TINY_CONFIG}"
    return str(write_mert_checkpoint(scratch / "model")), "MERT-v1-95M architecture, random weights"


FORMATS = ("flac", "mp3", "ogg", "wav")
EMBED_BATCH = 4


def _run(mode: str, catalogue: Path, model: str, data_dir: Path, workers: int) -> dict[str, Any]:
    # This is a fresh process: dropping the shell's SOUNDALIKE_* settings here measures the
    # defaults, whatever the environment the benchmark was started from configures.
    os.environ.clear()
    os.environ.update(environment_without_settings())
    settings = Settings(
        model=model, device="cpu", batch_size=EMBED_BATCH, workers=workers, data_dir=data_dir
    )
    # Built the way `soundalike ingest` builds them.
    services = Services(settings)
    engine = services.engine()
    source = FolderSource(catalogue)
    started = time.perf_counter()
    if mode == "engine":
        listed, _ = discover(source)
        pending, _ = identify(source, listed, None)
        batch = []
        for _, decoded in decode(source, pending, engine.decoding, engine.sample_rate, workers):
            if isinstance(decoded, AudioError):
                continue
            batch.append(decoded)
            if len(batch) >= settings.batch_size:
                engine.embed(batch)
                batch.clear()
        if batch:
            engine.embed(batch)
        tracks = len(pending)
    else:
        with services:
            options = IngestOptions(workers=workers)
            summary = ingest(source, store=services.store(), engine=engine, options=options)
            tracks = summary.ingested
    return {
        "mode": mode,
        "tracks": tracks,
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }


def store_cost(engine_seconds: float, ingest_seconds: float, tracks: int) -> dict[str, float]:
    """What the store adds to the engine's time: percent, and milliseconds per ingested track."""
    extra = ingest_seconds - engine_seconds
    return {
        "store_overhead_pct": round(100 * extra / engine_seconds, 1),
        "store_ms_per_track": round(1000 * extra / tracks, 2) if tracks else float("nan"),
    }


def measure(catalogue: Path, model: str, workers: int, scratch: Path) -> dict[str, Any]:
    """Both modes on `catalogue`, each in a fresh process, and the store's cost."""
    results: dict[str, Any] = {}
    for mode in MODES:
        data_dir = scratch / f"data-{catalogue.name}-{mode}"
        results[mode] = run_isolated(_run, mode, catalogue, model, data_dir, workers)
        shutil.rmtree(data_dir, ignore_errors=True)
    return results | store_cost(
        results["engine"]["seconds"], results["ingest"]["seconds"], results["ingest"]["tracks"]
    )


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| tracks | engine only | full ingest | store cost | peak RSS engine / ingest |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in results.values():
        engine, full = row["engine"], row["ingest"]
        lines.append(
            f"| {full['tracks']} | {engine['seconds']:.2f} s | {full['seconds']:.2f} s | "
            f"{row['store_overhead_pct']:+.1f} % ({row['store_ms_per_track']} ms per track) | "
            f"{engine['peak_rss_mb']:.0f} / {full['peak_rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser(MODULE, __doc__)
    parser.add_argument("--tracks", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of generated tracks")
    parser.add_argument("--model", help="checkpoint dir (default: a small random MERT-layout one)")
    parser.add_argument("--workers", type=int, default=1, help="decode workers")
    parser.add_argument("--json", action="store_true", help="only the JSON document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.tracks) < 2 or args.seconds <= 0 or args.workers < 1:
        parser.error("--tracks must be >= 2, --seconds > 0 and --workers >= 1")
    document = document_header(MODULE, sys.argv[1:] if argv is None else argv)
    with work_dir(None, "ingest") as scratch:
        model = args.model or str(
            write_mert_checkpoint(scratch / "model", config_overrides=TINY_CONFIG)
        )
        results: dict[str, dict[str, Any]] = {}
        for count in args.tracks:
            catalogue = scratch / f"catalogue-{count}"
            artists = max(2, count // 10)
            write_catalogue(
                catalogue,
                artists=artists,
                tracks_per_artist=count // artists,
                seconds=args.seconds,
                formats=FORMATS,
            )
            results[str(count)] = measure(catalogue, model, args.workers, scratch)
            log(f"[ingest] {count} tracks: {results[str(count)]}")
    document |= {
        "model": args.model or f"random MERT-layout checkpoint {TINY_CONFIG}",
        "track_seconds": args.seconds,
        "workers": args.workers,
        "results": results,
    }
    print_document(document, text=None if args.json else markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
