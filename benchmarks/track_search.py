"""Track search at scale: float32 vs int8 scalar quantization, and `hnsw_ef`.

    python -m benchmarks.track_search [--tracks 1000000] [--per-artist 10]
        [--queries 500] [--ef 64,128,256] [--oversampling default,2,4] [--settings float32,int8]
        [--seconds 20] [--dir DIR] [--reuse]

"Tracks like Y" and clip search walk an HNSW over every track; no precomputation helps
them. This writes the same generated tracks into two embedded stores, one per setting:

- `float32`: the vectors as they are (the default until this study);
- `int8`: Qdrant's scalar quantization (int8, 0.99 quantile) kept in memory for the graph
  walk, the float32 originals memory-mapped and read to rescore the hits.

and measures, for each: the index build; recall@10 against exact top 10 computed in NumPy,
p50/p99 latency through `Store.search_tracks`, and resident memory, in a fresh process per
store and `hnsw_ef`; then throughput and latency of `GET /tracks/{track_id}/similar` under
`wrk` (8 connections) against `soundalike serve` over that store.

Tracks: artist centroids clustered and anisotropic like MERT's (`clustered_centroids`),
each track its artist's centroid plus its own noise (cosine about 0.85 to the centroid).
Two kinds of query, 500 each: a stored track excluding itself ("tracks like Y"), and a new
track of a random artist (a clip). Prints a JSON document on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.store import (
    _artist_names,
    _bench_tracks,
    _disk_mb,
    clustered_centroids,
)
from benchmarks.wrk import Placement, drive_wrk, pinned
from soundalike.api.bench import run_isolated
from soundalike.core.artist_names import artist_key
from soundalike.core.identity import track_id
from soundalike.search.store import Store

MODULE = "benchmarks.track_search"
SETTINGS = ("float32", "int8")
WRITE_CHUNK = 5000
# Squared weight of a track's own noise against its artist's centroid.
TRACK_NOISE = 0.3
K = 10


def track_vectors(n_tracks: int, n_artists: int, seed: int = 0) -> np.ndarray:
    """Track i belongs to artist i % n_artists (as `_bench_tracks` names it)."""
    rng = np.random.default_rng(seed)
    centroids = clustered_centroids(rng, n_artists)
    vectors = np.empty((n_tracks, common.BENCH_DIM), dtype=np.float32)
    for start in range(0, n_tracks, WRITE_CHUNK):
        stop = min(n_tracks, start + WRITE_CHUNK)
        vectors[start:stop] = _track_rows(rng, centroids[np.arange(start, stop) % n_artists])
    return vectors


def _track_rows(rng: np.random.Generator, centroids: np.ndarray) -> np.ndarray:
    noise = rng.standard_normal(centroids.shape, dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    rows = np.sqrt(1 - TRACK_NOISE) * centroids + np.sqrt(TRACK_NOISE) * noise
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _open(path: Path, setting: str, **options: Any) -> Store:
    """The embedded store of `setting`, created as the product creates it (only its tracks
    quantized, for `int8`); `options` go to `Store`."""
    from soundalike.search.edge_store import EdgeBackend

    return Store(EdgeBackend(path), quantize_tracks=setting == "int8", **options)


def write_stores(
    directory: Path, vectors: np.ndarray, n_artists: int, reuse: bool
) -> dict[str, dict[str, Any]]:
    """Both stores with every track, indexed; seconds spent (None where reused)."""
    names = _artist_names(np.random.default_rng(1), n_artists)
    keys = [artist_key(name) for name in names]
    stores: dict[str, Store] = {}
    figures: dict[str, dict[str, Any]] = {}
    for setting in SETTINGS:
        path = directory / setting
        store = _open(path, setting)
        if reuse and path.exists() and store.count_tracks() == len(vectors):
            common.log(f"[{setting}] reusing the {len(vectors)} tracks in {path}")
            store.close()
            figures[setting] = {"write_s": None, "index_s": None}
            continue
        store.close()
        shutil.rmtree(path, ignore_errors=True)
        stores[setting] = _open(path, setting)
        stores[setting].ensure_spec(common.BENCH_SPEC)
        figures[setting] = {"write_s": 0.0}
    for start in range(0, len(vectors), WRITE_CHUNK):
        if not stores:
            break
        tracks = _bench_tracks(vectors[start : start + WRITE_CHUNK], start, names, keys)
        for setting, store in stores.items():
            began = time.perf_counter()
            store.upsert_tracks(tracks)
            figures[setting]["write_s"] += time.perf_counter() - began
        if start % 100_000 == 0:
            common.log(f"[write] {start + len(tracks)} / {len(vectors)} tracks")
    for setting, store in stores.items():
        store.flush()
        began = time.perf_counter()
        store.optimize()
        figures[setting]["index_s"] = round(time.perf_counter() - began, 1)
        figures[setting]["write_s"] = round(figures[setting]["write_s"], 1)
        store.close()
        common.log(
            f"[{setting}] written in {figures[setting]['write_s']} s, indexed in "
            f"{figures[setting]['index_s']} s"
        )
    for setting in SETTINGS:
        figures[setting]["disk"] = _disk_mb(directory / setting)
    return figures


def truth_sets(
    vectors: np.ndarray, queries: np.ndarray, excluded: Sequence[int | None], ids: list[str]
) -> list[list[str]]:
    """Exact top K of each query (cosine; the rows are unit), leaving out its own track."""
    truth: list[list[str]] = []
    for start in range(0, len(queries), 100):
        scores = queries[start : start + 100] @ vectors.T
        for offset, row in enumerate(scores):
            own = excluded[start + offset]
            if own is not None:
                row[own] = -np.inf
            best = np.argpartition(-row, K)[:K]
            truth.append([ids[i] for i in best])
    return truth


def _memory() -> dict[str, float]:
    fields: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile"):
                fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


def measure_in_process(
    path: str,
    setting: str,
    ef: int,
    query_sets: dict[str, tuple[list[list[float]], list[str | None], list[list[str]]]],
    oversampling: float | None = None,
) -> dict[str, Any]:
    """In a fresh process: recall@10 and latency per query kind, and memory at the end."""
    began = time.perf_counter()
    options = {} if oversampling is None else {"oversampling": oversampling}
    store = _open(Path(path), setting, search_ef=ef, **options)
    store.count_tracks()
    opened_s = time.perf_counter() - began
    result: dict[str, Any] = {
        "setting": setting,
        "ef": ef,
        # Only a quantized collection oversamples.
        "oversampling": store.oversampling if setting == "int8" else None,
        "open_s": round(opened_s, 2),
    }
    result["memory_after_open_mb"] = _memory()
    for kind, (queries, excluded, truth) in query_sets.items():
        for query in queries[:20]:  # warm the caches a first search fills
            store.search_tracks(np.asarray(query, dtype=np.float32), limit=K)
        latencies, found = [], 0
        for query, own, expected in zip(queries, excluded, truth, strict=True):
            began = time.perf_counter()
            hits = store.search_tracks(
                np.asarray(query, dtype=np.float32), limit=K, exclude_ids=[own] if own else []
            )
            latencies.append((time.perf_counter() - began) * 1000)
            found += len(set(expected) & {hit.track.track_id for hit in hits})
        result[kind] = {
            "recall_at_10": round(found / (K * len(queries)), 4)
        } | common.latency_summary(latencies)
    result["memory_after_queries_mb"] = _memory()
    store.close()
    return result


def measure_http(
    directory: Path, setting: str, track_ids: list[str], seconds: float, placement: Placement
) -> dict[str, Any]:
    port = common.free_port()
    paths = [f"/tracks/{t}/similar?limit=10" for t in track_ids]
    with (
        pinned(placement.server_cpus),
        common.running_server(
            common.serve_command(directory / setting, port),
            port,
            log_path=directory / f"{setting}-serve.log",
        ),
        pinned(placement.client_cpus),
    ):
        figures = drive_wrk(
            port,
            "GET /tracks/{track_id}/similar",
            paths,
            connections=8,
            seconds=seconds,
            warmup_seconds=5,
            directory=directory / "wrk",
        )
    return {"setting": setting} | figures


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--per-artist", type=int, default=10, help="tracks per artist")
    parser.add_argument("--queries", type=int, default=500, help="queries of each kind")
    parser.add_argument(
        "--ef", type=common.int_list, default="64,128,256", help="comma list of hnsw_ef values"
    )
    parser.add_argument(
        "--oversampling",
        default="default",
        help="comma list of int8 oversampling factors ('default': the store's)",
    )
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma list of stores")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="wrk run per store (0: no HTTP runs)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a tmp dir)")
    parser.add_argument("--reuse", action="store_true", help="keep stores an earlier run wrote")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tracks < 2 * args.queries or args.per_artist < 1:
        parser.error("--tracks must be at least twice --queries, --per-artist at least 1")
    settings = [s for s in args.settings.split(",") if s]
    if set(settings) - set(SETTINGS):
        parser.error(f"--settings takes {', '.join(SETTINGS)}")
    oversamplings: list[float | None] = [
        None if factor == "default" else float(factor) for factor in args.oversampling.split(",")
    ]
    n_artists = max(1, args.tracks // args.per_artist)
    document = common.document_header(MODULE, sys.argv[1:] if argv is None else argv)
    document |= {"tracks": args.tracks, "artists": n_artists, "dim": common.BENCH_DIM}
    with common.work_dir(Path(args.dir) if args.dir else None, "track-search") as scratch:
        common.log(f"[data] generating {args.tracks} track vectors")
        vectors = track_vectors(args.tracks, n_artists)
        document["stores"] = write_stores(scratch, vectors, n_artists, args.reuse)

        keys = [artist_key(name) for name in _artist_names(np.random.default_rng(1), n_artists)]
        rng = np.random.default_rng(7)
        stored = rng.choice(args.tracks, size=args.queries, replace=False)

        def ids_of(rows: Sequence[int]) -> list[str]:
            return [track_id(f"{i:064x}", keys[i % n_artists]) for i in rows]

        all_ids = ids_of(range(args.tracks))
        clip_artists = rng.integers(0, n_artists, size=args.queries)
        centroids = clustered_centroids(np.random.default_rng(0), n_artists)
        clips = _track_rows(rng, centroids[clip_artists])
        del centroids
        common.log("[truth] exact top 10 in NumPy")
        stored_queries = vectors[stored]
        query_sets = {
            "tracks_like_y": (
                stored_queries.tolist(),
                [all_ids[i] for i in stored],
                truth_sets(vectors, stored_queries, stored.tolist(), all_ids),
            ),
            "clip": (
                clips.tolist(),
                [None] * args.queries,
                truth_sets(vectors, clips, [None] * args.queries, all_ids),
            ),
        }
        del vectors
        rows = []
        for setting in settings:
            for ef in args.ef:
                for oversampling in oversamplings if setting == "int8" else [None]:
                    row = run_isolated(
                        measure_in_process,
                        str(scratch / setting),
                        setting,
                        ef,
                        query_sets,
                        oversampling,
                    )
                    common.log(f"[search] {json.dumps(row)}")
                    rows.append(row)
        document["in_process"] = rows
        if args.seconds <= 0:
            common.print_document(document)
            return 0
        cpus = sorted(os.sched_getaffinity(0))
        placement = Placement.split(cpus)
        document["placement"] = placement.to_dict()
        http_ids = [all_ids[i] for i in rng.choice(args.tracks, size=2000, replace=False)]
        document["http"] = []
        for setting in settings:
            figures = measure_http(scratch, setting, http_ids, args.seconds, placement)
            common.log(f"[http] {json.dumps(figures)}")
            document["http"].append(figures)
    common.print_document(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
