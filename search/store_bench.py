"""Store benchmark: Qdrant Edge vs qdrant-client local mode, through `Store`.

    python -m soundalike.search.store_bench [--tracks 100000] [--artists 100000]
        [--local-tracks 5000] [--local-artists 5000] [--queries 500] [--dir DIR]

Random unit vectors (dim 768); measures upserts, the index build (optimize), "artists like X"
latency, list_artists latency, reopen time and disk size. Prints a JSON document on the last
line of stdout.

qdrant-client's local mode commits every point to SQLite on its own (~17 ms each on a 2-core
VM), so it runs at a smaller N by default; 100k points would take about an hour there.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from soundalike.search.names import artist_key
from soundalike.search.store import Store, open_store, track_id
from soundalike.search.types import Artist, EmbeddingSpec, Track

DIM = 768
CHUNK = 5000
GENRES = ["rock", "jazz", "pop", "folk", "electronic", "classical", "hip hop", "metal"]
SYLLABLES = ["ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "do", "be", "ze", "qu", "an", "or"]

SPEC = EmbeddingSpec(
    model="bench/random",
    revision=None,
    layer=11,
    window_seconds=30.0,
    excerpt="middle",
    pooling="mean",
    sample_rate=24000,
    dim=DIM,
)


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def _artist_names(rng: np.random.Generator, n: int) -> list[str]:
    """Pronounceable, distinct names, so prefixes select realistic slices."""
    names = []
    for i in range(n):
        parts = rng.choice(SYLLABLES, size=3)
        names.append(f"{''.join(parts).capitalize()} {i:06d}")
    return names


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def _disk_mb(path: Path) -> dict[str, float]:
    """Allocated blocks (what `du` reports) and apparent size; Edge preallocates sparse files."""
    files = [p.stat() for p in path.rglob("*") if p.is_file()]
    return {
        "allocated_mb": round(sum(st.st_blocks * 512 for st in files) / 2**20, 1),
        "apparent_mb": round(sum(st.st_size for st in files) / 2**20, 1),
    }


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_backend(
    name: str,
    opener: Callable[[], Store],
    path: Path,
    *,
    n_tracks: int,
    n_artists: int,
    n_queries: int,
    seed: int = 0,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    names = _artist_names(rng, n_artists)
    keys = [artist_key(n) for n in names]
    result: dict[str, Any] = {"backend": name, "tracks": n_tracks, "artists": n_artists}
    print(f"[{name}] {n_tracks} tracks, {n_artists} artists, dim {DIM}", file=sys.stderr)

    store = opener()
    store.ensure_spec(SPEC)

    upsert_s = 0.0
    for start in range(0, n_tracks, CHUNK):
        count = min(CHUNK, n_tracks - start)
        vectors = _unit_rows(rng, count)
        tracks = []
        for offset in range(count):
            i = start + offset
            a = i % n_artists
            content_hash = f"{i:064x}"
            tracks.append(
                Track(
                    track_id=track_id(content_hash, keys[a]),
                    artist=names[a],
                    artist_key=keys[a],
                    vector=vectors[offset].tolist(),
                    title=f"Track {i}",
                    album=f"Album {a % 997}",
                    genre=GENRES[i % len(GENRES)],
                    year=1960 + i % 60,
                    path=f"/music/{names[a]}/{i}.flac",
                    duration_seconds=200.0,
                    content_hash=content_hash,
                )
            )
        seconds, _ = _timed(lambda tracks=tracks: store.upsert_tracks(tracks))
        upsert_s += seconds
    result["upsert_tracks_s"] = round(upsert_s, 2)

    upsert_s = 0.0
    for start in range(0, n_artists, CHUNK):
        count = min(CHUNK, n_artists - start)
        vectors = _unit_rows(rng, count)
        artists = [
            Artist(
                artist=names[start + o],
                artist_key=keys[start + o],
                track_count=1 + (start + o) % 12,
                centroid=vectors[o].tolist(),
                genres=[GENRES[(start + o) % len(GENRES)]],
            )
            for o in range(count)
        ]
        seconds, _ = _timed(lambda artists=artists: store.upsert_artists(artists))
        upsert_s += seconds
    result["upsert_artists_s"] = round(upsert_s, 2)
    seconds, _ = _timed(store.flush)
    result["flush_s"] = round(seconds, 2)

    seconds, _ = _timed(store.optimize)
    result["optimize_s"] = round(seconds, 2)
    print(f"[{name}] writes and index done", file=sys.stderr)

    queries = _unit_rows(rng, n_queries)
    excluded = rng.integers(0, n_artists, size=n_queries)
    store.search_artists(queries[0], limit=10)  # warm caches
    latencies = []
    for q, x in zip(queries, excluded, strict=True):
        seconds, hits = _timed(
            lambda q=q, x=x: store.search_artists(q, limit=10, exclude_keys={keys[x]})
        )
        assert len(hits) == 10
        latencies.append(seconds)
    result["search_artists"] = _percentiles(latencies) | {"queries": n_queries}

    latencies = []
    for q in queries[: min(100, n_queries)]:
        seconds, hits = _timed(
            lambda q=q: store.search_tracks(q, limit=10, filters={"genre": "jazz"})
        )
        latencies.append(seconds)
    result["search_tracks_genre_filter"] = _percentiles(latencies)

    seconds, (_, total) = _timed(lambda: store.list_artists(limit=50))
    result["list_artists_first_call_s"] = round(seconds, 3)
    latencies = []
    for i in range(200):
        prefix = SYLLABLES[i % len(SYLLABLES)] if i % 2 else ""
        seconds, _ = _timed(
            lambda p=prefix, i=i: store.list_artists(prefix=p, limit=50, offset=(i % 5) * 50)
        )
        latencies.append(seconds)
    result["list_artists"] = _percentiles(latencies) | {"total": total}

    store.close()
    result["disk"] = _disk_mb(path)

    def reopen() -> Store:
        again = opener()
        again.spec()
        again.search_artists(queries[0], limit=10)
        return again

    seconds, store = _timed(reopen)
    result["reopen_to_first_search_s"] = round(seconds, 2)
    result["count_after_reopen"] = {
        "tracks": store.count_tracks(),
        "artists": store.count_artists(),
    }
    store.close()
    print(f"[{name}] {json.dumps(result)}", file=sys.stderr)
    return result


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--artists", type=int, default=100_000)
    parser.add_argument("--local-tracks", type=int, default=5_000)
    parser.add_argument("--local-artists", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--local-queries", type=int, default=100)
    parser.add_argument("--backends", default="edge,local", help="comma list: edge, local")
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a tmp dir)")
    args = parser.parse_args(argv)

    from soundalike.search.server_store import ServerBackend

    scratch = Path(args.dir or tempfile.mkdtemp(prefix="soundalike-store-bench-"))
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": _cpu_model(), "cores": _cores()},
        "command": "python -m soundalike.search.store_bench " + " ".join(sys.argv[1:]),
        "dim": DIM,
        "results": [],
    }
    try:
        for backend in args.backends.split(","):
            path = scratch / backend
            shutil.rmtree(path, ignore_errors=True)
            if backend == "edge":
                result = run_backend(
                    "edge",
                    lambda path=path: open_store(data_dir=path),
                    path,
                    n_tracks=args.tracks,
                    n_artists=args.artists,
                    n_queries=args.queries,
                )
            elif backend == "local":
                result = run_backend(
                    "qdrant-client local (path)",
                    lambda path=path: Store(ServerBackend.local_path(path)),
                    path,
                    n_tracks=args.local_tracks,
                    n_artists=args.local_artists,
                    n_queries=args.local_queries,
                )
            else:
                parser.error(f"unknown backend {backend!r}: use edge or local")
            report["results"].append(result)
    finally:
        if args.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(report))
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
