"""Ingest benchmark: the whole pipeline with the store vs the engine alone, and memory vs size.

`python -m soundalike.ingest.ingest_bench --tracks 100 1000 [--model DIR] [--seconds 12]`

For each catalogue size, two fresh spawned processes run on the same generated files:
- `engine`: identify → decode → embed (the pipeline's own stages), nothing written;
- `ingest`: the full `ingest()` into a new embedded store (writes, flushes, centroids, HNSW).
Each reports its wall time and peak RSS (getrusage ru_maxrss), so the store's share of the time
and whether memory stays flat with catalogue size can be read off one table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from soundalike.ingest.audio import ExcerptPolicy
from soundalike.ingest.devtools.checkpoint import write_mert_checkpoint
from soundalike.ingest.devtools.synth import write_catalogue
from soundalike.ingest.embed import load_embedder
from soundalike.ingest.pipeline import IngestOptions, decode, embed, identify, ingest
from soundalike.search.errors import AudioError
from soundalike.search.store import open_store

TINY_CONFIG = {
    "hidden_size": 64,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "conv_dim": [32] * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(
    mode: str, catalogue: Path, model: str, data_dir: Path, workers: int, out: multiprocessing.Queue
) -> None:
    embedder = load_embedder(model, layer=11, device="cpu", batch_size=4)
    options = IngestOptions(excerpt=ExcerptPolicy.parse("centre"), workers=workers)
    started = time.perf_counter()
    if mode == "engine":
        from soundalike.ingest.catalogue import discover

        pending, _ = identify(discover(catalogue).entries, None)
        batch = []
        for _, decoded in decode(pending, options, embedder.sample_rate):
            if isinstance(decoded, AudioError):
                continue
            batch.append(decoded)
            if len(batch) >= embedder.batch_size:
                embed(embedder, batch)
                batch.clear()
        if batch:
            embed(embedder, batch)
        tracks = len(pending)
    else:
        with open_store(data_dir=data_dir) as store:
            tracks = ingest(catalogue, store=store, embedder=embedder, options=options).ingested
    out.put(
        {
            "mode": mode,
            "tracks": tracks,
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": _peak_rss_mb(),
        }
    )


def measure(catalogue: Path, model: str, workers: int, scratch: Path) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    for mode in ("engine", "ingest"):
        out: multiprocessing.Queue = context.Queue()
        data_dir = scratch / f"data-{catalogue.name}-{mode}"
        process = context.Process(
            target=_run, args=(mode, catalogue, model, data_dir, workers, out)
        )
        process.start()
        results[mode] = out.get()
        process.join()
        shutil.rmtree(data_dir, ignore_errors=True)
    engine, full = results["engine"]["seconds"], results["ingest"]["seconds"]
    results["store_overhead_pct"] = round(100 * (full - engine) / engine, 1)
    results["store_ms_per_track"] = round(1000 * (full - engine) / results["ingest"]["tracks"], 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of generated tracks")
    parser.add_argument("--model", help="checkpoint dir (default: a small random MERT-layout one)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="soundalike-ingest-bench-"))
    try:
        model = args.model or str(
            write_mert_checkpoint(scratch / "model", config_overrides=TINY_CONFIG)
        )
        rows = {}
        for count in args.tracks:
            catalogue = scratch / f"catalogue-{count}"
            artists = max(2, count // 10)
            write_catalogue(
                catalogue,
                artists=artists,
                tracks_per_artist=count // artists,
                seconds=args.seconds,
                formats=("flac", "mp3", "ogg", "wav"),
            )
            rows[count] = measure(catalogue, model, args.workers, scratch)
            if not args.json:
                print(count, json.dumps(rows[count]), flush=True)
        print(json.dumps(rows))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
