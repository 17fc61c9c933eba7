"""Store benchmark: Qdrant Edge vs qdrant-client local mode, through `Store`.

    python -m benchmarks.store [--tracks 100000] [--artists 100000]
        [--local-tracks 5000] [--local-artists 5000] [--queries 500] [--dir DIR]
    python -m benchmarks.store --recall [--artists 100000] [--queries 500]
        [--ef 64,128,256,512] [--hnsw-m 16] [--hnsw-ef-construct 100] [--int8]

Random unit vectors (dim 768); measures upserts, the index build (optimize), "artists like X"
latency, list_artists latency, reopen time and disk size. Prints a JSON document on the last
line of stdout.

`--recall` measures "artists like X" quality on Edge instead: artist centroids clustered and
anisotropic like real MERT centroids (see `clustered_centroids`), each query an artist's own
centroid excluding that artist; recall@10 against exact top 10 in NumPy, and latency, for
Qdrant's default search, each `--ef` and exact search; with `min_tracks` 1 and 3.

qdrant-client's local mode commits every point to SQLite on its own (~17 ms each on a 2-core
VM), so it runs at a smaller N by default; 100k points would take about an hour there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from soundalike.core.artist_names import artist_key
from soundalike.core.identity import track_id
from soundalike.core.types import Artist, Track
from soundalike.search.store import Store, open_store

MODULE = "benchmarks.store"
CHUNK = 5000
GENRES = ["rock", "jazz", "pop", "folk", "electronic", "classical", "hip hop", "metal"]
SYLLABLES = ["ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "do", "be", "ze", "qu", "an", "or"]


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, common.BENCH_DIM), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def clustered_centroids(
    rng: np.random.Generator,
    n: int,
    *,
    clusters: int = 1000,
    dim: int = common.BENCH_DIM,
    subspace: int = 64,
    mix: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> np.ndarray:
    """Unit rows shaped like MERT artist centroids: a shared direction (every cosine is high),
    cluster offsets in a low-dimensional subspace with a decaying spectrum (anisotropic, and
    clusters resemble each other), and per-artist noise. Pairwise cosines sit at about
    0.45-0.75 and an artist's nearest neighbours near 0.8: crowded, as in real centroids.
    `mix`: squared weights of the shared direction, the cluster offset and the noise."""

    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.linalg.norm(rows, axis=-1, keepdims=True)

    shared = unit(rng.standard_normal(dim))
    basis = np.linalg.qr(rng.standard_normal((dim, subspace)))[0]
    spectrum = 1.0 / np.sqrt(np.arange(1, subspace + 1))
    centers = unit((rng.standard_normal((clusters, subspace)) * spectrum) @ basis.T)
    labels = rng.integers(0, clusters, size=n)
    rows = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        noise = unit(rng.standard_normal((stop - start, dim)))
        shared_w, cluster_w, noise_w = (float(np.sqrt(w)) for w in mix)
        block = shared_w * shared + cluster_w * centers[labels[start:stop]]
        rows[start:stop] = unit(block + noise_w * noise)
    return rows


def _artist_names(rng: np.random.Generator, n: int) -> list[str]:
    """Pronounceable, distinct names, so prefixes select realistic slices."""
    names = []
    for i in range(n):
        parts = rng.choice(SYLLABLES, size=3)
        names.append(f"{''.join(parts).capitalize()} {i:06d}")
    return names


def _latencies(samples_s: Sequence[float]) -> dict[str, float | None]:
    return common.latency_summary([seconds * 1000.0 for seconds in samples_s])


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


def _bench_tracks(
    vectors: np.ndarray, start: int, names: list[str], keys: list[str]
) -> list[Track]:
    tracks = []
    for offset, vector in enumerate(vectors):
        i = start + offset
        a = i % len(names)
        content_hash = f"{i:064x}"
        tracks.append(
            Track(
                track_id=track_id(content_hash, keys[a]),
                artist=names[a],
                artist_key=keys[a],
                vector=vector.tolist(),
                title=f"Track {i}",
                album=f"Album {a % 997}",
                genre=GENRES[i % len(GENRES)],
                year=1960 + i % 60,
                path=f"/music/{names[a]}/{i}.flac",
                duration_seconds=200.0,
                content_hash=content_hash,
            )
        )
    return tracks


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
    common.log(f"[{name}] {n_tracks} tracks, {n_artists} artists, dim {common.BENCH_DIM}")

    store = opener()
    store.ensure_spec(common.BENCH_SPEC)

    upsert_s = 0.0
    for start in range(0, n_tracks, CHUNK):
        tracks = _bench_tracks(_unit_rows(rng, min(CHUNK, n_tracks - start)), start, names, keys)
        seconds, _ = _timed(lambda tracks=tracks: store.upsert_tracks(tracks))
        upsert_s += seconds
    result["upsert_tracks_s"] = round(upsert_s, 2)

    upsert_s = 0.0
    for start in range(0, n_artists, CHUNK):
        count = min(CHUNK, n_artists - start)
        vectors = _unit_rows(rng, count)
        artists = [
            Artist(
                name=names[start + o],
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
    common.log(f"[{name}] writes and index done")

    queries = _unit_rows(rng, n_queries)
    excluded = rng.integers(0, n_artists, size=n_queries)
    store.search_artists(queries[0], limit=10)  # warm caches
    latencies = []
    for q, x in zip(queries, excluded, strict=True):
        seconds, hits = _timed(
            lambda q=q, x=x: store.search_artists(q, limit=10, exclude_keys={keys[x]})
        )
        if len(hits) != min(10, n_artists - 1):
            raise RuntimeError(f"[{name}] search_artists returned {len(hits)} hits")
        latencies.append(seconds)
    result["search_artists"] = _latencies(latencies) | {"queries": n_queries}

    latencies = []
    for q in queries[: min(100, n_queries)]:
        seconds, hits = _timed(
            lambda q=q: store.search_tracks(q, limit=10, filters={"genre": "jazz"})
        )
        latencies.append(seconds)
    result["search_tracks_genre_filter"] = _latencies(latencies)

    seconds, (_, total) = _timed(lambda: store.list_artists(limit=50))
    result["list_artists_first_call_s"] = round(seconds, 3)
    latencies = []
    for i in range(200):
        prefix = SYLLABLES[i % len(SYLLABLES)] if i % 2 else ""
        seconds, _ = _timed(
            lambda p=prefix, i=i: store.list_artists(prefix=p, limit=50, offset=(i % 5) * 50)
        )
        latencies.append(seconds)
    result["list_artists"] = _latencies(latencies) | {"total": total}

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
    common.log(f"[{name}] {json.dumps(result)}")
    return result


def run_recall(
    path: Path,
    *,
    n_artists: int,
    n_queries: int,
    efs: list[int],
    hnsw_m: int | None,
    hnsw_ef_construct: int | None,
    quantize_int8: bool,
    mix: tuple[float, float, float] = (0.6, 0.2, 0.2),
    k: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    from soundalike.search.edge_store import EdgeBackend, EdgeIndexSettings

    rng = np.random.default_rng(seed)
    centroids = clustered_centroids(rng, n_artists, mix=mix)
    track_counts = 1 + np.arange(n_artists) % 12
    keys = [f"artist {i:07d}" for i in range(n_artists)]
    result: dict[str, Any] = {
        "artists": n_artists,
        "queries": n_queries,
        "hnsw_m": hnsw_m,
        "hnsw_ef_construct": hnsw_ef_construct,
        "int8": quantize_int8,
        "mix": list(mix),
    }
    defaults = EdgeIndexSettings()
    index = EdgeIndexSettings(
        m=hnsw_m if hnsw_m is not None else defaults.m,
        ef_construct=hnsw_ef_construct if hnsw_ef_construct is not None else defaults.ef_construct,
        quantize_int8=quantize_int8,
    )
    backend = EdgeBackend(path, index=index)
    store = Store(backend)
    store.ensure_spec(common.BENCH_SPEC)
    for start in range(0, n_artists, CHUNK):
        stop = min(n_artists, start + CHUNK)
        store.upsert_artists(
            [
                Artist(
                    name=keys[i],
                    artist_key=keys[i],
                    track_count=int(track_counts[i]),
                    centroid=centroids[i].tolist(),
                )
                for i in range(start, stop)
            ]
        )
    store.flush()
    seconds, _ = _timed(store.optimize)
    result["optimize_s"] = round(seconds, 1)
    common.log(f"[recall] {n_artists} artists indexed in {seconds:.1f} s")

    # "stored": an artist's own centroid, excluding that artist ("artists like X");
    # "fresh": a new vector from the same distribution (a query track's embedding).
    chosen = rng.choice(n_artists, size=n_queries, replace=False)
    query_sets = {
        "stored": (centroids[chosen], [keys[q] for q in chosen]),
        "fresh": (clustered_centroids(np.random.default_rng(seed), n_queries, mix=mix), []),
    }
    rows: list[dict[str, Any]] = []
    for kind, (queries, excluded) in query_sets.items():
        for min_tracks in (1, 3):
            truth = []
            for i, query in enumerate(queries):
                scores = centroids @ query
                if excluded:
                    scores[chosen[i]] = -np.inf
                scores[track_counts < min_tracks] = -np.inf
                truth.append({keys[j] for j in np.argpartition(-scores, k)[:k]})
            settings: list[tuple[str, int | None, bool]] = [("default", None, False)]
            settings += [(f"ef {ef}", ef, False) for ef in efs]
            settings.append(("exact", None, True))
            for label, ef, exact in settings:
                searcher = Store(backend, search_ef=ef, exact_search=exact)
                for query in queries[:20]:  # warm caches
                    searcher.search_artists(query, limit=k)
                latencies, found = [], 0
                for i, (query, expected) in enumerate(zip(queries, truth, strict=True)):
                    exclude = {excluded[i]} if excluded else set()
                    seconds, hits = _timed(
                        lambda s=searcher, q=query, x=exclude, m=min_tracks: s.search_artists(
                            q, limit=k, exclude_keys=x, min_tracks=m
                        )
                    )
                    latencies.append(seconds)
                    found += len(expected & {h.artist.artist_key for h in hits})
                row = {
                    "queries": kind,
                    "min_tracks": min_tracks,
                    "search": label,
                    "recall_at_10": round(found / (k * len(queries)), 4),
                } | _latencies(latencies)
                common.log(f"[recall] {json.dumps(row)}")
                rows.append(row)
    store.close()
    result["rows"] = rows
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser(MODULE, __doc__)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--artists", type=int, default=100_000)
    parser.add_argument("--local-tracks", type=int, default=5_000)
    parser.add_argument("--local-artists", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--local-queries", type=int, default=100)
    parser.add_argument("--backends", default="edge,local", help="comma list: edge, local")
    parser.add_argument("--dir", type=Path, default=None, help="scratch dir (default: a tmp dir)")
    parser.add_argument("--recall", action="store_true", help="measure search recall instead")
    parser.add_argument(
        "--ef", type=common.int_list, default="64,128,256,512", help="comma list of hnsw_ef values"
    )
    parser.add_argument("--hnsw-m", type=int, default=None)
    parser.add_argument("--hnsw-ef-construct", type=int, default=None)
    parser.add_argument("--int8", action="store_true", help="scalar int8 quantization")
    parser.add_argument(
        "--mix",
        default="0.6,0.2,0.2",
        help="squared weights of shared direction, cluster offset, noise (--recall)",
    )
    return parser


def _run_backends(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    from soundalike.search.server_store import ServerBackend

    results = []
    for backend in args.backends.split(","):
        path = scratch / backend
        shutil.rmtree(path, ignore_errors=True)
        if backend == "edge":
            results.append(
                run_backend(
                    "edge",
                    lambda path=path: open_store(data_dir=path),
                    path,
                    n_tracks=args.tracks,
                    n_artists=args.artists,
                    n_queries=args.queries,
                )
            )
        else:
            results.append(
                run_backend(
                    "qdrant-client local (path)",
                    lambda path=path: Store(ServerBackend.local_path(path)),
                    path,
                    n_tracks=args.local_tracks,
                    n_artists=args.local_artists,
                    n_queries=args.local_queries,
                )
            )
    return results


def _run_recall(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    path = scratch / "recall"
    shutil.rmtree(path, ignore_errors=True)
    mix = tuple(float(w) for w in args.mix.split(","))
    return run_recall(
        path,
        n_artists=args.artists,
        n_queries=args.queries,
        efs=args.ef,
        hnsw_m=args.hnsw_m,
        hnsw_ef_construct=args.hnsw_ef_construct,
        quantize_int8=args.int8,
        mix=(mix[0], mix[1], mix[2]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = set(args.backends.split(",")) - {"edge", "local"}
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}: use edge or local")
    if len(args.mix.split(",")) != 3:
        parser.error("--mix takes three comma-separated weights")
    if args.recall and args.queries > args.artists:
        parser.error("--recall needs --queries <= --artists (each query is a distinct artist)")

    document = common.document_header(MODULE, sys.argv[1:] if argv is None else argv)
    document["dim"] = common.BENCH_DIM
    with common.work_dir(Path(args.dir) if args.dir else None, "store") as scratch:
        if args.recall:
            document["results"] = [_run_recall(args, scratch)]
        else:
            document["results"] = _run_backends(args, scratch)
    common.print_document(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
